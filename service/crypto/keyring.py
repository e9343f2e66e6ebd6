"""Envelope encryption: data keys wrapped by a master key held outside the database.

The keys live in one owner-only folder (``DOCSIGN_KEYS_DIR``, by default ``{data_dir}/keys``, 0700):

- ``master-<id>.key``: a master key, 32 random bytes, 0600. Only the newest (``keyring.json``'s
  ``master``) wraps; older ones stay until no data key is wrapped by them (``docsign keys retire``).
- ``keyring.json`` (0600): every data key, wrapped (RFC 3394 AES key wrap) by the master key named
  beside it, and which data key seals new values (``active``) and which one the blind indexes are
  derived from (``index``). The data keys themselves never change: rotating the master key
  re-wraps them, so nothing sealed has to be rewritten.

A sealed value names its data key in its header (``envelope``), so it opens after any number of
rotations. A process unwraps every data key once, when it first needs one, and reads the keyring
again only for a key id it does not know (made by another process since).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from service.crypto import envelope
from service.crypto.envelope import CipherName, DecryptionFailed
from service.errors import ConfigurationError, DocsignError
from service.settings import private_dir

KEY_BYTES = 32
FILE_MODE = 0o600
KEYRING = "keyring.json"


class KeysMissing(DocsignError):
    code = "KEYS_MISSING"
    default_message = "加密密钥缺失：找不到主密钥或数据密钥，已加密的数据无法读取。请从备份恢复密钥目录。"


class UnknownDataKey(DecryptionFailed):
    code = "UNKNOWN_DATA_KEY"


class KeyFileExposed(ConfigurationError):
    code = "KEY_FILE_EXPOSED"
    default_message = "密钥文件的权限过宽（其他用户可读），服务拒绝使用。请改为仅属主可读写（0600）。"


class MasterKeyInUse(DocsignError):
    code = "MASTER_KEY_IN_USE"
    http_status = 409
    default_message = "该主密钥仍在封装数据密钥，不能停用。请先运行 docsign keys rotate 完成轮换。"


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """``data`` written whole (a synced temporary file renamed into place), 0600. ``exclusive``:
    refuse to replace an existing file (``FileExistsError``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private(path: Path) -> bytes:
    """A key file's bytes; refused if others may read it."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise KeysMissing(f"找不到密钥文件 {path}。已加密的数据需要它才能读取，请从备份恢复。") from None
    if mode & 0o077:
        raise KeyFileExposed(f"密钥文件 {path} 的权限是 {mode:04o}，其他用户可读；请运行 chmod 600 {path}。")
    return path.read_bytes()


@dataclass(frozen=True)
class MasterKeyStatus:
    id: str
    created: str
    current: bool
    wraps: int


@dataclass(frozen=True)
class DataKeyStatus:
    id: str
    master: str
    created: str
    active: bool
    index: bool


@dataclass(frozen=True)
class KeysStatus:
    folder: Path
    cipher: CipherName
    masters: list[MasterKeyStatus]
    data_keys: list[DataKeyStatus]

    @property
    def rotation_unfinished(self) -> bool:
        current = next((m.id for m in self.masters if m.current), None)
        return any(k.master != current for k in self.data_keys)


#: Told after each data key a rotation re-wraps: ``progress(done, total)``.
Progress = Callable[[int, int], None]


class Keyring:
    """The master and data keys in ``folder``; ``cipher`` is what new values are sealed with."""

    def __init__(self, folder: Path, cipher: CipherName = "aes-256-gcm") -> None:
        self.folder = Path(folder)
        self.cipher: CipherName = cipher
        self._lock = threading.RLock()
        self._keys: dict[bytes, bytes] = {}  # data key id -> data key
        self._derived: dict[tuple[bytes, str], bytes] = {}
        self._active: bytes | None = None
        self._index: bytes | None = None

    # --- the files ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.folder / KEYRING

    def _master_path(self, master_id: str) -> Path:
        if not master_id.isalnum():
            raise KeysMissing(f"密钥环中的主密钥编号「{master_id[:40]}」无效。")
        return self.folder / f"master-{master_id}.key"

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This thread alone, and this process alone among those sharing the folder."""
        with self._lock:
            private_dir(self.folder)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _read(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        ring: dict[str, Any] = json.loads(read_private(self.path))
        return ring

    def _write(self, ring: dict[str, Any]) -> None:
        write_private(self.path, json.dumps(ring, indent=2).encode())

    def _new_master(self, ring: dict[str, Any]) -> tuple[str, bytes]:
        master_id = secrets.token_hex(4)
        key = secrets.token_bytes(KEY_BYTES)
        write_private(self._master_path(master_id), key, exclusive=True)
        ring.setdefault("masters", {})[master_id] = {"created": _now()}
        ring["master"] = master_id
        return master_id, key

    def _master(self, master_id: str) -> bytes:
        key = read_private(self._master_path(master_id))
        if len(key) != KEY_BYTES:
            raise KeysMissing(f"主密钥文件 {self._master_path(master_id)} 的长度不对，可能已损坏。")
        return key

    @staticmethod
    def _new_data_key(ring: dict[str, Any], master_id: str, master: bytes) -> str:
        key_id = secrets.token_hex(8)
        ring.setdefault("data_keys", {})[key_id] = {
            "master": master_id,
            "wrapped": base64.b64encode(aes_key_wrap(master, secrets.token_bytes(KEY_BYTES))).decode(),
            "created": _now(),
        }
        return key_id

    def ensure(self) -> bool:
        """Create the folder, a master key and the first data keys unless they exist; returns
        whether anything was created. Every process may call it: the first one makes the keys."""
        with self._exclusive():
            if self._read() is not None:
                return False
            ring: dict[str, Any] = {"format": 1}
            master_id, master = self._new_master(ring)
            ring["active"] = self._new_data_key(ring, master_id, master)
            ring["index"] = self._new_data_key(ring, master_id, master)
            self._write(ring)
            return True

    def _load(self) -> None:
        """Unwrap every data key (a rotation in another process may retire a master key later)."""
        ring = self._read()
        if ring is None:
            self.ensure()
            ring = self._read()
            assert ring is not None
        masters: dict[str, bytes] = {}
        keys: dict[bytes, bytes] = {}
        for key_id, entry in ring["data_keys"].items():
            master_id = entry["master"]
            if master_id not in masters:
                masters[master_id] = self._master(master_id)
            try:
                keys[bytes.fromhex(key_id)] = aes_key_unwrap(masters[master_id], base64.b64decode(entry["wrapped"]))
            except InvalidUnwrap:
                raise KeysMissing(
                    f"数据密钥 {key_id} 无法用主密钥 {master_id} 解开：主密钥文件与密钥环不匹配或已损坏。"
                ) from None
        self._keys = keys
        self._active = bytes.fromhex(ring["active"])
        self._index = bytes.fromhex(ring["index"])

    def _data_key(self, key_id: bytes) -> bytes:
        with self._lock:
            if key_id not in self._keys:
                self._load()
            try:
                return self._keys[key_id]
            except KeyError:
                raise UnknownDataKey(
                    f"加密数据所用的数据密钥 {key_id.hex()} 不在密钥环中：数据可能已被改动，"
                    "或密钥目录不是写入时的那一份（请从备份恢复）。"
                ) from None

    def _cipher_key(self, key_id: bytes, cipher: CipherName) -> bytes:
        derived = self._derived.get((key_id, cipher))
        if derived is None:
            derived = self._derived[(key_id, cipher)] = envelope.cipher_key(self._data_key(key_id), cipher)
        return derived

    def _sealing(self) -> tuple[bytes, bytes]:
        with self._lock:
            if self._active is None:
                self._load()
            assert self._active is not None
            return self._active, self._cipher_key(self._active, self.cipher)

    # --- sealing ------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed under the active data key; ``aad`` (e.g. ``b"cases:42:id_number"``,
        the row's identity) must be given again to open it."""
        key_id, key = self._sealing()
        return envelope.seal(key, key_id, self.cipher, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of a sealed value or file; ``DecryptionFailed`` if it was altered or ``aad``
        differs from the one it was sealed with."""
        return envelope.open_sealed(self._cipher_key, blob, aad)

    def encrypt_stream(self, blocks: Iterable[bytes], aad: bytes) -> Iterator[bytes]:
        """A file sealed chunk by chunk as ``blocks`` come (memory stays at one chunk)."""
        key_id, key = self._sealing()
        return envelope.seal_stream(key, key_id, self.cipher, blocks, aad)

    def decrypt_stream(self, stream: BinaryIO, aad: bytes) -> Iterator[bytes]:
        """The plaintext of a sealed file read from ``stream``, chunk by chunk; a chunk that fails
        raises ``DecryptionFailed`` before it is handed out."""
        return envelope.open_stream(self._cipher_key, stream, aad)

    def blind_index(self, value: str, purpose: str) -> str:
        """A keyed digest of ``value`` (HMAC-SHA256, hex) for equality lookups of a sealed column:
        the same value and purpose (e.g. ``"id_number"``) always give the same index, and nobody
        without the keys can compute it. The key is derived from the index data key per purpose,
        so an index of one column says nothing about another; it survives master key rotations."""
        with self._lock:
            if self._index is None:
                self._load()
            assert self._index is not None
            cache = (self._index, "index:" + purpose)
            key = self._derived.get(cache)
            if key is None:
                info = b"docsign/blind-index/" + purpose.encode()
                key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(self._data_key(self._index))
                self._derived[cache] = key
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

    def files(self) -> dict[str, bytes]:
        """The keyring's files (``keyring.json`` and every master key it names), read under its
        lock so no rotation is half-copied: what a backup carries. Empty while there are no keys."""
        with self._exclusive():
            ring = self._read()
            if ring is None:
                return {}
            out = {KEYRING: read_private(self.path)}
            for master_id in ring["masters"]:
                path = self._master_path(master_id)
                out[path.name] = read_private(path)
            return out

    # --- rotation -----------------------------------------------------------------------------

    def rotate(self, progress: Progress | None = None) -> tuple[str, int]:
        """Make a new master key and re-wrap every data key under it, saving after each, so an
        interrupted rotation resumes (a rerun finishes it before starting another). Returns the
        new master key's id and how many data keys were re-wrapped."""
        with self._exclusive():
            ring = self._read()
            if ring is None:
                raise KeysMissing("还没有加密密钥（请先运行 docsign init）。")
            current = ring["master"]
            behind = [k for k, e in ring["data_keys"].items() if e["master"] != current]
            if behind:  # an earlier rotation stopped halfway: finish it
                master_id, master = current, self._master(current)
            else:
                master_id, master = self._new_master(ring)
                self._write(ring)
                behind = list(ring["data_keys"])
            total = len(behind)
            olds: dict[str, bytes] = {}
            for done, key_id in enumerate(behind, 1):
                entry = ring["data_keys"][key_id]
                old = olds.setdefault(entry["master"], self._master(entry["master"]))
                data_key = aes_key_unwrap(old, base64.b64decode(entry["wrapped"]))
                entry["wrapped"] = base64.b64encode(aes_key_wrap(master, data_key)).decode()
                entry["master"] = master_id
                self._write(ring)
                if progress is not None:
                    progress(done, total)
            return master_id, total

    def retire(self) -> list[str]:
        """Delete the old master keys no data key is wrapped by any more; returns their ids.
        Refused while a rotation is unfinished (the old key still wraps a data key)."""
        with self._exclusive():
            ring = self._read()
            if ring is None:
                return []
            used = {e["master"] for e in ring["data_keys"].values()} | {ring["master"]}
            if used != {ring["master"]}:
                raise MasterKeyInUse(details={"in_use": sorted(used - {ring["master"]})})
            retired = []
            for master_id in sorted(set(ring["masters"]) - used):
                path = self._master_path(master_id)
                with contextlib.suppress(FileNotFoundError):
                    _shred(path)
                del ring["masters"][master_id]
                self._write(ring)
                retired.append(master_id)
            return retired

    def status(self) -> KeysStatus:
        ring = self._read()
        if ring is None:
            return KeysStatus(self.folder, self.cipher, [], [])
        wraps: dict[str, int] = {}
        for entry in ring["data_keys"].values():
            wraps[entry["master"]] = wraps.get(entry["master"], 0) + 1
        masters = [
            MasterKeyStatus(m, info["created"], m == ring["master"], wraps.get(m, 0))
            for m, info in ring["masters"].items()  # oldest first: the order they were made
        ]
        data_keys = [
            DataKeyStatus(k, e["master"], e["created"], k == ring["active"], k == ring["index"])
            for k, e in ring["data_keys"].items()
        ]
        return KeysStatus(self.folder, self.cipher, masters, data_keys)


def _shred(path: Path) -> None:
    """Overwrite a key file, then remove it (a copy-on-write file system may keep the old blocks)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
