"""Encryption at rest: the keyring (master and data keys, ``keyring``) and the sealed format
(``envelope``). Everything that encrypts a value or a file goes through :func:`keyring_for`."""

from __future__ import annotations

import threading
from pathlib import Path

from service.crypto.envelope import CHUNK, DecryptionFailed, NotSealed, is_sealed
from service.crypto.keyring import KeyFileExposed, Keyring, KeysMissing, MasterKeyInUse
from service.settings import Settings

__all__ = [
    "CHUNK",
    "DecryptionFailed",
    "KeyFileExposed",
    "Keyring",
    "KeysMissing",
    "MasterKeyInUse",
    "NotSealed",
    "is_sealed",
    "keyring_for",
]

_rings: dict[tuple[Path, str], Keyring] = {}
_rings_lock = threading.Lock()


def keyring_for(settings: Settings) -> Keyring:
    """The process's one keyring for the settings' keys folder and cipher (its data keys are
    unwrapped once and kept in memory)."""
    with _rings_lock:
        key = (settings.keys_folder, settings.cipher)
        ring = _rings.get(key)
        if ring is None:
            ring = _rings[key] = Keyring(settings.keys_folder, settings.cipher)
        return ring
