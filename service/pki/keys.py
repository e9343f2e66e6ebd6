"""Where the PKI's private keys are kept. The CAs, the TSA and the units ask a :class:`KeyStore` for
a key by name and never open key files themselves, so another kind of store can take a key's place.

A key's name is the path of its file under ``certs/``: ``root/ca.key``, ``issuing/ca.key``,
``issuing/retired/<name>/ca.key``, ``tsa/tsa.key``, ``units/<key>/key.pem``, and the same names
under a folder's ``.next/`` while a new key waits to be committed with its certificate
(:meth:`service.pki.files.CertsFolder.commit` moves it into place with the other files).

:class:`FileKeyStore` keeps each key in that file: PKCS#8 ``ENCRYPTED PRIVATE KEY`` (PBES2:
PBKDF2-HMAC-SHA256 of :data:`KDF_ROUNDS` rounds, AES-256-CBC) under the passphrase from settings
(``DOCSIGN_PKI_PASSPHRASE``), mode 0600 in a folder of mode 0700. Files written by older versions
(OpenSSL's PKCS#8 default of 2,048 rounds) are re-wrapped by :meth:`FileKeyStore.rewrap`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from asn1crypto.algos import Pbkdf2Salt
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from service.pki.errors import PkiNotInitialized, PkiPassphraseWrong
from service.pki.files import write_atomic
from service.settings import PKI_KDF_ROUNDS

#: PBKDF2-HMAC-SHA256 rounds that protect a key file: OWASP's figure for PBKDF2-SHA256 (2023), about
#: 0.1 s to unlock a key here, paid once per key and process (the parts keep parsed keys). OpenSSL's
#: PKCS#8 default, which ``BestAvailableEncryption`` and older versions of this service used, is 2,048:
#: a stolen file then costs a guesser 300 times less per passphrase tried.
KDF_ROUNDS = PKI_KDF_ROUNDS
#: Files whose key is found under these names, by glob under ``certs/``.
KEY_FILES = ("root/ca.key", "issuing/ca.key", "issuing/retired/*/ca.key", "tsa/tsa.key", "units/*/key.pem")


class KeyStore(Protocol):
    """Private keys by name."""

    def save(self, name: str, key: PrivateKeyTypes) -> None:
        """Keep ``key`` under ``name``, replacing any key of that name."""
        ...

    def load(self, name: str) -> PrivateKeyTypes:
        """The key kept under ``name``: :class:`PkiNotInitialized` when there is none,
        :class:`PkiPassphraseWrong` when it cannot be unlocked."""
        ...

    def exists(self, name: str) -> bool:
        """Whether a key is kept under ``name``."""
        ...

    def remove(self, name: str) -> None:
        """Keep no key under ``name`` any more (the root's, once exported)."""
        ...

    def where(self, name: str) -> str:
        """Where and how the key ``name`` is kept, in Chinese, for ``docsign pki status``."""
        ...


@dataclass(frozen=True)
class Protection:
    """How a key file is encrypted: its scheme in words, and the PBKDF2-SHA256 rounds (0 for any
    other scheme: PBES1, PBKDF2 with HMAC-SHA1, or no encryption)."""

    scheme: str
    rounds: int

    def weaker_than(self, rounds: int) -> bool:
        return self.rounds < rounds


def wrap(key: PrivateKeyTypes, passphrase: bytes, rounds: int = KDF_ROUNDS) -> bytes:
    """``key`` as PEM PKCS#8 ``ENCRYPTED PRIVATE KEY``: PBES2 with PBKDF2-HMAC-SHA256 of ``rounds``
    and AES-256-CBC (RFC 8018), which OpenSSL and every PKCS#8 reader open. ``cryptography`` writes
    PKCS#8 only with OpenSSL's 2,048 rounds, so the envelope is built here with asn1crypto."""
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = os.urandom(16), os.urandom(16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, rounds).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": Pbkdf2Salt("specified", salt),
                            "iteration_count": rounds,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": sealed,
        }
    )
    pem: bytes = asn1_pem.armor("ENCRYPTED PRIVATE KEY", info.dump())
    return pem


def protection(pem: bytes) -> Protection:
    """How the PEM key ``pem`` is encrypted, read from its envelope without unlocking it."""
    if not asn1_pem.detect(pem):
        return Protection("未知格式", 0)
    kind, _, der = asn1_pem.unarmor(pem)
    if kind != "ENCRYPTED PRIVATE KEY":
        return Protection("未加密", 0)
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    if algorithm["algorithm"].native != "pbes2":
        return Protection(f"PKCS#5 v1（{algorithm['algorithm'].native}）", 0)
    kdf = algorithm["parameters"]["key_derivation_func"]
    if kdf["algorithm"].native != "pbkdf2":
        return Protection(f"PBES2（{kdf['algorithm'].native}）", 0)
    prf = kdf["parameters"]["prf"]["algorithm"].native
    rounds = int(kdf["parameters"]["iteration_count"].native)
    scheme = f"PBKDF2-HMAC-{prf.upper().replace('SHA', 'SHA-')} {rounds:,} 次"
    return Protection(scheme, rounds if prf == "sha256" else 0)


class FileKeyStore:
    """Keys in encrypted files under ``certs/`` (see the module's docstring)."""

    def __init__(self, certs_dir: Path, passphrase: str, rounds: int = KDF_ROUNDS) -> None:
        self.dir = Path(certs_dir)
        self._passphrase = passphrase.encode()
        #: PBKDF2 rounds of every key written; development and tests may lower it, production
        #: refuses fewer than :data:`KDF_ROUNDS` (``Settings.check_ready``).
        self.rounds = rounds

    def path(self, name: str) -> Path:
        """The file that holds the key ``name``; never outside ``certs/``."""
        parts = PurePosixPath(name).parts
        if not parts or parts[0] == "/" or ".." in parts:
            raise ValueError(f"not a key name under certs/: {name!r}")
        return self.dir.joinpath(*parts)

    def save(self, name: str, key: PrivateKeyTypes) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        write_atomic(path, wrap(key, self._passphrase, self.rounds), 0o600)

    def load(self, name: str) -> PrivateKeyTypes:
        path = self.path(name)
        try:
            return serialization.load_pem_private_key(path.read_bytes(), self._passphrase)
        except FileNotFoundError:
            raise PkiNotInitialized() from None
        except (ValueError, TypeError) as exc:
            raise PkiPassphraseWrong() from exc

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def where(self, name: str) -> str:
        try:
            protection = self.protection(name)
        except FileNotFoundError:
            return "无"
        weak = "，下次启动时重新加密" if protection.weaker_than(self.rounds) else ""
        return f"文件（{protection.scheme}{weak}）"

    def names(self) -> Iterator[str]:
        """The names of every key file in ``certs/``, staged ones excepted."""
        for pattern in KEY_FILES:
            for path in sorted(self.dir.glob(pattern)):
                yield path.relative_to(self.dir).as_posix()

    def protection(self, name: str) -> Protection:
        return protection(self.path(name).read_bytes())

    def rewrap_due(self) -> bool:
        """Whether a key file is protected by fewer rounds than :attr:`rounds` (read without the lock)."""
        for name in self.names():
            try:
                if self.protection(name).weaker_than(self.rounds):
                    return True
            except FileNotFoundError:
                continue  # replaced by a renewal meanwhile: the new file is ours
        return False

    def rewrap(self) -> list[str]:
        """Encrypt again, with :attr:`rounds`, every key file protected by fewer (older versions
        wrote 2,048): the names re-wrapped. The caller holds the lock of ``certs/``; a file is
        replaced atomically, so a process reading it meanwhile gets the old or the new one, the
        same key either way."""
        done = []
        for name in self.names():
            if self.protection(name).weaker_than(self.rounds):
                self.save(name, self.load(name))
                done.append(name)
        return done
