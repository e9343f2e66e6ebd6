"""The archive in a local folder (the embedded profile).

Writes are atomic: a temporary file in the same folder is written and fsynced, then linked to its
final name, which fails if the name exists; so a reader never sees a partial file and a second write
of the same content changes nothing.

Given a keyring (``DOCSIGN_ARCHIVE_ENCRYPTION``, on by default), files are sealed at rest as
streams of chunks (``service.crypto.envelope``, format 2) whose associated data is the file's
name, the SHA-256 of its plaintext: names, verification codes and digests stay what they were, and
a file moved under another name does not open. Files written before encryption was on (no
header) are still read as they are; :meth:`LocalArchive.seal_existing` seals them in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from service.crypto import DecryptionFailed, Keyring, is_sealed
from service.settings import private_dir
from service.storage.base import (
    BLOCK,
    ArchiveCorrupt,
    ArchivedFileMissing,
    check_key,
    checked,
    checked_blocks,
    read_blocks,
    sha256_hex,
)
from service.workdir import temp_dir

#: Archived files hold minors' personal data: readable by the service's own user only (and never
#: writable: a file is replaced by nobody), in folders nobody else may list or enter.
FILE_MODE = 0o400
DIR_MODE = 0o700


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


#: Told after each file :meth:`LocalArchive.seal_existing` looks at: ``progress(done, total)``.
Progress = Callable[[int, int], None]


#: Less free disk than this under the archive and the service is not ready (a batch would fail).
READY_FREE_BYTES = 200 * 1024 * 1024


class LocalArchive:
    """A folder: ``{root}/ab/cd/abcd....pdf``, owner-only (files 0400 in 0700 folders); files
    sealed with ``keyring`` if one is given. ``temp_root``: where :meth:`local_path` decrypts to
    (the process's work folder, ``service.workdir``)."""

    def __init__(
        self, root: Path, suffix: str = ".pdf", *, keyring: Keyring | None = None, temp_root: Path | None = None
    ) -> None:
        self.root = Path(root)
        self.suffix = suffix
        self.keyring = keyring
        self.temp_root = temp_root

    @staticmethod
    def _aad(sha256: str) -> bytes:
        return b"archive:" + sha256.encode()

    def _stored(self, data: bytes, digest: str) -> bytes:
        """What goes on disk for ``data``: sealed with the keyring, or as it is."""
        if self.keyring is None:
            return data
        return b"".join(self.keyring.encrypt_stream([data], self._aad(digest)))

    def _ring(self, path: Path) -> Keyring:
        if self.keyring is None:
            raise ArchiveCorrupt(
                f"归档文件 {path.name} 已加密，但未启用归档加密（DOCSIGN_ARCHIVE_ENCRYPTION），无法读取。"
            )
        return self.keyring

    def path_for(self, sha256: str) -> Path:
        check_key(sha256)
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{self.suffix}"

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        final = self.path_for(digest)
        if final.exists():
            return digest
        self._folders(final.parent)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._stored(data, digest))
                fh.flush()
                os.fsync(fh.fileno())
            self._publish(Path(tmp), final)
        finally:
            os.unlink(tmp)
        return digest

    def _folders(self, folder: Path) -> None:
        """The root and the two levels under it, each created 0700 (``mkdir(parents=True)`` would
        give the parents the default mode)."""
        private_dir(self.root.parent)
        target = self.root
        for part in ("", *folder.relative_to(self.root).parts):
            target = target / part if part else target
            with contextlib.suppress(FileExistsError):
                target.mkdir(mode=DIR_MODE)
            if stat_mode(target) != DIR_MODE:
                os.chmod(target, DIR_MODE)

    def put_many(self, items: list[bytes]) -> list[str]:
        """Every file written to a temporary name first, then the file system flushed once (its
        data durable), then each linked to its final name, then flushed once more (the names
        durable): two flushes per slice instead of two fsyncs per file, and still no final name
        that could point at data not yet on disk. Without syncfs(2), file by file."""
        if len(items) < 2 or _syncfs is None:
            return [self.put(data) for data in items]
        digests = [sha256_hex(data) for data in items]
        pending: dict[str, Path] = {}
        try:
            for digest, data in zip(digests, items, strict=True):
                final = self.path_for(digest)
                if digest in pending or final.exists():
                    continue
                self._folders(final.parent)
                fd, name = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
                pending[digest] = Path(name)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._stored(data, digest))
                os.chmod(name, FILE_MODE)
            if not pending:
                return digests
            _sync_file_system(self.root)
            for digest, tmp in pending.items():
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, self.path_for(digest))
            _sync_file_system(self.root)
        finally:
            for tmp in pending.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return digests

    def put_file(self, path: Path) -> str:
        if self.keyring is not None:
            return self._put_file_sealed(path, self.keyring)
        self._folders(self.root)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while block := src.read(BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            final = self.path_for(digest.hexdigest())
            if not final.exists():
                self._folders(final.parent)
                self._publish(Path(tmp), final)
        finally:
            os.unlink(tmp)
        return digest.hexdigest()

    def _put_file_sealed(self, path: Path, keyring: Keyring) -> str:
        """Two reads of the file: its digest first (the associated data of every chunk, and a file
        already stored is not sealed again), then sealed chunk by chunk into place."""
        with open(path, "rb") as src:
            first = hashlib.sha256()
            for block in read_blocks(src):
                first.update(block)
        sha256 = first.hexdigest()
        final = self.path_for(sha256)
        if final.exists():
            return sha256
        self._folders(final.parent)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                for sealed in keyring.encrypt_stream(checked(read_blocks(src), sha256, path.name), self._aad(sha256)):
                    out.write(sealed)
                out.flush()
                os.fsync(out.fileno())
            self._publish(Path(tmp), final)
        finally:
            os.unlink(tmp)
        return sha256

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        os.chmod(tmp, FILE_MODE)
        # atomic, and refuses to replace an existing file (a concurrent writer of the same bytes won)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, final)
        _sync_folder(final.parent)

    def _missing(self, sha256: str) -> ArchivedFileMissing:
        return ArchivedFileMissing(f"归档中没有摘要为 {sha256[:12]}… 的文件。")

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._missing(sha256) from None
        if is_sealed(data):
            try:
                data = self._ring(path).decrypt(data, self._aad(sha256))
            except DecryptionFailed:
                raise self._undecryptable(path) from None
        if sha256_hex(data) != sha256:
            raise ArchiveCorrupt(f"归档文件 {path.name} 与其摘要不符，可能已被改动。")
        return data

    @staticmethod
    def _undecryptable(path: Path) -> ArchiveCorrupt:
        return ArchiveCorrupt(f"归档文件 {path.name} 无法解密：可能已被改动、截断，或被换了名字。")

    def stream(self, sha256: str) -> Iterator[bytes]:
        path = self.path_for(sha256)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - the generator below closes it
        except FileNotFoundError:
            raise self._missing(sha256) from None
        sealed = is_sealed(fh.read(8))
        fh.seek(0)
        if not sealed:
            return checked_blocks(fh, sha256, path.name)
        return checked(self._opened(path, self._ring(path).decrypt_stream(fh, self._aad(sha256))), sha256, path.name)

    def _opened(self, path: Path, chunks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from chunks
        except DecryptionFailed:
            raise self._undecryptable(path) from None

    def sealed(self, sha256: str) -> bool:
        """Whether the stored file is sealed (False for one written before encryption was on)."""
        try:
            with open(self.path_for(sha256), "rb") as fh:
                return is_sealed(fh.read(8))
        except FileNotFoundError:
            raise self._missing(sha256) from None

    @contextlib.contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        """The stored file itself if it is not sealed; else a decrypted copy in a folder of this
        process under the work folder (0700, removed on exit, and by the next start if the process
        dies first)."""
        path = self.path_for(sha256)
        if not path.exists():
            raise self._missing(sha256)
        if not self.sealed(sha256):
            yield path
            return
        with temp_dir(self.temp_root, "archive") as folder:
            copy = folder / path.name
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for block in self.stream(sha256):
                    out.write(block)
            yield copy

    def seal_existing(self, progress: Progress | None = None) -> int:
        """Seal in place every file written before encryption was on (each one replaced whole by its
        sealed copy, so a reader sees one or the other); a rerun after an interruption goes on where
        it stopped. Returns how many files were sealed."""
        keyring = self._ring(self.root)
        names = list(self.keys())
        done = 0
        for number, sha256 in enumerate(names, 1):
            if not self.sealed(sha256):
                final = self.path_for(sha256)
                fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
                try:
                    with os.fdopen(fd, "wb") as out, open(final, "rb") as src:
                        for sealed in keyring.encrypt_stream(
                            checked_blocks(src, sha256, final.name), self._aad(sha256)
                        ):
                            out.write(sealed)
                        out.flush()
                        os.fsync(out.fileno())
                    os.chmod(tmp, FILE_MODE)
                    os.replace(tmp, final)
                    _sync_folder(final.parent)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                done += 1
            if progress is not None:
                progress(number, len(names))
        return done

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def check_ready(self) -> str | None:
        """The folder (or, before the first file, the nearest folder above it) can be written,
        with room left."""
        folder = self.root
        if folder.exists() and not folder.is_dir():
            return f"归档位置 {folder} 不是文件夹。"
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return f"不能写入归档文件夹 {folder}：请检查它的所有者与权限。"
        free = shutil.disk_usage(folder).free
        if free < READY_FREE_BYTES:
            return f"归档所在磁盘只剩 {free // (1024 * 1024)} MB，请清理或扩容。"
        return None

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha256).unlink()

    def keys(self) -> Iterator[str]:
        n = len(self.suffix)
        for path in sorted(self.root.glob(f"??/??/*{self.suffix}")):
            yield path.name[:-n] if n else path.name

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def clean_incomplete(self, older_than: dt.timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for tmp in [*self.root.glob(".incoming-*"), *self.root.glob("??/??/.incoming-*")]:
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed


def _sync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _load_syncfs() -> Callable[[int], int] | None:
    """syncfs(2) from the C library (Linux), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return cast(Callable[[int], int], libc.syncfs)
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def _sync_file_system(path: Path) -> None:
    """Flush the file system holding ``path``: file data, directory entries and all."""
    assert _syncfs is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)
