"""A backup's files, encrypted and authenticated in chunks, so that archives of any size stream.

The operator's passphrase (or key file) gives a master key through scrypt; each sealed file has a
key of its own, derived from the master key, the backup's id, the file's name and a random salt
(HKDF-SHA256), so a file renamed, or copied in from another backup, does not open. A file is a
short header (magic, version, salt) and then chunks of :data:`CHUNK` bytes, each sealed with
AES-256-GCM under the nonce ``counter || last`` (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár): chunks cannot be reordered, dropped, or cut off at the end unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from service.backup.errors import BackupPassphraseWrong, BackupTampered

MAGIC = b"DSBK"
FORMAT_VERSION = 1
#: Plaintext bytes per chunk: 1 MiB keeps memory flat and the 16-byte tag per chunk negligible.
CHUNK = 1 << 20
TAG = 16
SALT = 16
HEADER = len(MAGIC) + 1 + SALT
#: scrypt's cost (RFC 7914): N = 2^17, r = 8 takes 128 MiB and about a quarter of a second here,
#: paid once per backup or restore; an offline guess costs the same.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1
_CHECK = b"docsign backup passphrase check"


@dataclass(frozen=True)
class Kdf:
    """How the master key is derived; kept in the backup's plain header (``backup.json``)."""

    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def new(cls) -> Kdf:
        return cls(os.urandom(SALT))

    def to_dict(self) -> dict[str, object]:
        return {"name": "scrypt", "salt": self.salt.hex(), "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Kdf:
        if data.get("name") != "scrypt":
            raise BackupTampered("备份头部（backup.json）中的密钥派生方式无法识别，备份可能已被改动。")
        try:
            n, r, p = int(data["n"]), int(data["r"]), int(data["p"])  # type: ignore[call-overload]
            salt = bytes.fromhex(str(data["salt"]))
        except (KeyError, TypeError, ValueError):
            raise BackupTampered("备份头部（backup.json）不完整，备份可能已被改动。") from None
        # a header edited to ask for absurd work would otherwise tie the machine up
        if not (1 << 14 <= n <= 1 << 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise BackupTampered("备份头部（backup.json）中的密钥派生参数不合理，备份可能已被改动。")
        return cls(salt, n, r, p)


class BackupKey:
    """The master key of one backup: derives each file's key and the passphrase check."""

    def __init__(self, secret: bytes, kdf: Kdf, backup_id: str) -> None:
        self.backup_id = backup_id
        self._master = Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(secret)

    def _derive(self, purpose: str, salt: bytes | None = None) -> bytes:
        info = f"docsign backup v{FORMAT_VERSION}|{self.backup_id}|{purpose}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(self._master)

    def check_value(self) -> str:
        """What ``backup.json`` keeps to tell a wrong passphrase from a damaged file."""
        return hmac.new(self._derive("check"), _CHECK, hashlib.sha256).hexdigest()

    def check(self, expected: str) -> None:
        if not hmac.compare_digest(self.check_value(), expected):
            raise BackupPassphraseWrong()

    def file_key(self, name: str, salt: bytes) -> AESGCM:
        return AESGCM(self._derive(f"file|{name}", salt))


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealedWriter(io.RawIOBase):
    """A file object that seals what is written to it into ``path`` (tarfile can write to it).

    The file is written to ``path`` with a ``.partial`` suffix and renamed on :meth:`close`, so a
    backup interrupted halfway leaves no file that looks whole. ``sha256`` and ``size`` describe the
    plaintext, for the manifest."""

    def __init__(self, key: BackupKey, path: Path, name: str) -> None:
        super().__init__()
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        salt = os.urandom(SALT)
        self._header = MAGIC + bytes([FORMAT_VERSION]) + salt
        self._aead = key.file_key(name, salt)
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._out: BinaryIO = os.fdopen(fd, "wb")
        self._out.write(self._header)
        self._buffer = bytearray()
        self._counter = 0
        self._digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._digest.update(view)
        self.size += len(view)
        self._buffer += view
        # a full chunk is sealed only once more follows: the last chunk is never a full one unsealed
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(view)

    def _seal(self, plain: bytes, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._counter, last), plain, self._header))
        self._counter += 1

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        if self.closed:
            return
        self._seal(bytes(self._buffer), last=True)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self._partial, self.path)
        super().close()

    def discard(self) -> None:
        """Drop what was written (a backup that failed)."""
        if not self.closed:
            self._out.close()
            self._partial.unlink(missing_ok=True)
            io.RawIOBase.close(self)


class SealedReader(io.RawIOBase):
    """Reads and opens a sealed file chunk by chunk; a chunk that does not open raises
    :class:`BackupTampered` before any of its bytes is handed out."""

    def __init__(self, key: BackupKey, path: Path, name: str) -> None:
        super().__init__()
        self.name_in_backup = name
        try:
            self._in: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise BackupTampered(f"备份中缺少文件 {path.name}，备份不完整或已被改动。") from None
        self._header = self._in.read(HEADER)
        if len(self._header) != HEADER or not self._header.startswith(MAGIC):
            self._in.close()
            raise BackupTampered(f"备份文件 {path.name} 不是加密的备份文件，或已被改动。")
        if self._header[len(MAGIC)] != FORMAT_VERSION:
            self._in.close()
            raise BackupTampered(f"备份文件 {path.name} 的格式版本无法识别。")
        self._aead = key.file_key(name, self._header[len(MAGIC) + 1 :])
        self._counter = 0
        self._next = self._in.read(CHUNK + TAG)
        self._plain = b""
        self._pos = 0
        self._done = False
        self._file = path.name

    def readable(self) -> bool:
        return True

    def _open_next(self) -> None:
        sealed, self._next = self._next, self._in.read(CHUNK + TAG)
        last = not self._next
        try:
            self._plain = self._aead.decrypt(_nonce(self._counter, last), sealed, self._header)
            self._pos = 0
        except InvalidTag:
            raise BackupTampered(
                f"备份文件 {self._file} 的第 {self._counter + 1} 块未通过校验：文件已被改动或损坏；没有恢复任何内容。"
            ) from None
        self._counter += 1
        self._done = last

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._pos == len(self._plain) and not self._done:
            self._open_next()
        n = min(len(buffer), len(self._plain) - self._pos)
        buffer[:n] = memoryview(self._plain)[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._in.close()
        super().close()


def seal_bytes(key: BackupKey, path: Path, name: str, data: bytes) -> None:
    writer = SealedWriter(key, path, name)
    try:
        writer.write(data)
    except BaseException:
        writer.discard()
        raise
    writer.close()


def open_bytes(key: BackupKey, path: Path, name: str) -> bytes:
    with SealedReader(key, path, name) as reader:
        return reader.read()
