"""Keys in a PKCS#11 token (a UKey, a 密码机 (hardware security module); SoftHSM2 in the tests):
generated there or imported into it, and used there. A key in the token is marked sensitive and not
extractable; signing asks the token for the signature, so the private key never leaves it.

:class:`TokenKey` stands where a parsed key from a file stands: it implements ``cryptography``'s
``RSAPrivateKey`` with :meth:`TokenKey.sign` computed by the token, so the fast signing path
(``key.sign(data, PKCS1v15(), SHA256())``) and pyHanko's signer (through ``UnitSigner.sign_raw``)
sign with it unchanged. ``private_bytes`` and ``private_numbers`` refuse.

Settings name the module (``DOCSIGN_PKCS11_MODULE``), the token's label (``DOCSIGN_PKCS11_TOKEN``)
and the PIN (``DOCSIGN_PKCS11_PIN`` or a file, ``DOCSIGN_PKCS11_PIN_FILE``). Each process opens its
own session on first use (the signing workers too); a session signs one thing at a time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import pkcs11
from asn1crypto import algos
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa, utils
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.rsa import decode_rsa_private_key

from service.pki.errors import TokenKeyNotExportable, TokenUnavailable

#: The token's combined hash-and-sign mechanism for each digest a signature uses.
RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}


@dataclass(frozen=True)
class TokenSettings:
    """Which token: the PKCS#11 module's path, the token's label and its user PIN."""

    module: str
    label: str
    pin: str


class Token:
    """One PKCS#11 token, opened on first use by this process; thread-safe."""

    def __init__(self, settings: TokenSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._session: Any = None
        self._keys: dict[bytes, Any] = {}

    @property
    def label(self) -> str:
        return self.settings.label

    def _open(self) -> Any:
        """The session; under the lock."""
        if self._session is None:
            try:
                token = pkcs11.lib(self.settings.module).get_token(token_label=self.settings.label)
                try:
                    self._session = token.open(user_pin=self.settings.pin, rw=True)
                except pkcs11.UserAlreadyLoggedIn:
                    # PKCS#11 logs in a process, not a session: another PKI object of this
                    # process has a session open and logged in, and this one shares the login
                    self._session = token.open(rw=True)
            except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
                raise TokenUnavailable(
                    f"无法打开 PKCS#11 令牌「{self.settings.label}」（模块 {self.settings.module}）：{type(exc).__name__}。"
                    "请检查令牌是否插入、标签和 PIN 是否正确。"
                ) from exc
        return self._session

    def generate_rsa(self, name: str, bits: int) -> TokenKey:
        """A new RSA key pair made inside the token (the private half never leaves it)."""
        key_id = os.urandom(16)
        with self._lock:
            session = self._open()
            public, private = session.generate_keypair(
                KeyType.RSA,
                bits,
                id=key_id,
                label=name,
                store=True,
                public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False},
                private_template=_PRIVATE,
            )
            self._keys[key_id] = private
            n = int.from_bytes(public[Attribute.MODULUS], "big")
            e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return TokenKey(self, key_id, rsa.RSAPublicNumbers(e, n).public_key())

    def import_rsa(self, name: str, key: rsa.RSAPrivateKey) -> TokenKey:
        """Put ``key`` into the token as a sensitive, non-extractable key; the caller forgets it."""
        key_id = os.urandom(16)
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        attributes = decode_rsa_private_key(der) | _PRIVATE | {Attribute.ID: key_id, Attribute.LABEL: name}
        with self._lock:
            self._keys[key_id] = self._open().create_object(attributes)
        return TokenKey(self, key_id, key.public_key())

    def key(self, key_id: bytes, public: rsa.RSAPublicKey) -> TokenKey:
        """The token's key ``key_id``, whose public half is ``public`` (from its certificate)."""
        return TokenKey(self, key_id, public)

    def sign(self, key_id: bytes, data: bytes, mechanism: Mechanism) -> bytes:
        """The token's signature over ``data`` with its key ``key_id``."""
        with self._lock:
            try:
                private = self._keys.get(key_id)
                if private is None:
                    private = self._open().get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
                    self._keys[key_id] = private
                signature: bytes = private.sign(data, mechanism=mechanism)
            except pkcs11.NoSuchKey as exc:
                raise TokenUnavailable(
                    f"PKCS#11 令牌「{self.settings.label}」中找不到该单位的私钥（标识 {key_id.hex()}）。"
                    "请确认插入的是签发证书时使用的令牌。"
                ) from exc
            except pkcs11.PKCS11Error as exc:
                raise TokenUnavailable(
                    f"PKCS#11 令牌「{self.settings.label}」签名失败：{type(exc).__name__}。"
                ) from exc
        return signature

    def destroy(self, key_id: bytes) -> None:
        """Remove the key pair ``key_id`` from the token (a replaced key is not kept)."""
        with self._lock:
            session = self._open()
            self._keys.pop(key_id, None)
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                for found in session.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id}):
                    found.destroy()


#: What every private key this service puts in a token is: kept, private, for signing only, and
#: never to be read out.
_PRIVATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
}


class TokenKey(rsa.RSAPrivateKey):
    """An RSA key in a PKCS#11 token, as ``cryptography`` sees a private key: it signs (in the
    token, PKCS#1 v1.5) and gives its public key; it cannot be exported."""

    def __init__(self, token: Token, key_id: bytes, public: rsa.RSAPublicKey) -> None:
        self.token = token
        self.key_id = key_id
        self._public = public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(
        self,
        data: bytes,
        padding: asym_padding.AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, asym_padding.PKCS1v15):
            raise TokenUnavailable(f"PKCS#11 令牌中的私钥只用 PKCS#1 v1.5 签名，不支持 {padding.name}。")
        if isinstance(algorithm, utils.NoDigestInfo):  # the caller's own DigestInfo
            return self.token.sign(self.key_id, data, Mechanism.RSA_PKCS)
        if isinstance(algorithm, utils.Prehashed):
            # a digest computed outside: the token pads and signs the DigestInfo as it is
            info = algos.DigestInfo(
                {"digest_algorithm": {"algorithm": algorithm._algorithm.name}, "digest": data}
            ).dump()
            return self.token.sign(self.key_id, info, Mechanism.RSA_PKCS)
        mechanism = RSA_MECHANISMS.get(algorithm.name)
        if mechanism is None:
            raise TokenUnavailable(f"PKCS#11 令牌签名不支持摘要算法 {algorithm.name}。")
        return self.token.sign(self.key_id, data, mechanism)

    def decrypt(self, ciphertext: bytes, padding: asym_padding.AsymmetricPadding) -> bytes:
        raise TokenKeyNotExportable("该私钥只用于签名。")

    def private_numbers(self) -> NoReturn:
        raise TokenKeyNotExportable()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> NoReturn:
        raise TokenKeyNotExportable()

    def __copy__(self) -> TokenKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenKey:
        return self
