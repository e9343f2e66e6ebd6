"""Second-factor secrets sealed at rest: AES-GCM under a key derived from the service's secret
key, which is held outside the database (like the audit chain's). A copy of the database alone
gives no one the means to make a staff member's codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.errors import DocsignError

PREFIX = "v1."


class SecretUnreadable(DocsignError):
    code = "TOTP_SECRET_UNREADABLE"
    http_status = 500
    default_message = (
        "动态口令的密钥无法解开：服务的密钥（DOCSIGN_SECRET_KEY）与开通时不同。"
        "请恢复原密钥，或由管理员为该账号重置动态口令。"
    )


class SecretBox:
    def __init__(self, service_secret: bytes) -> None:
        self._aead = AESGCM(hmac.new(service_secret, b"docsign totp secret v1", hashlib.sha256).digest())

    def seal(self, user_id: int, secret: str) -> str:
        """The secret, bound to its account (a sealed value moved to another row does not open)."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), str(user_id).encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, user_id: int, stored: str) -> str:
        """The secret; a value stored before sealing existed is returned as it is."""
        if not is_sealed(stored):
            return stored
        body = stored[len(PREFIX) :]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], str(user_id).encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable() from exc


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
