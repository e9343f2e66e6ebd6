"""The archive in a local folder (the embedded profile).

Writes are atomic: a temporary file in the same folder is written and fsynced, then linked to its
final name, which fails if the name exists; so a reader never sees a partial file and a second write
of the same content changes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from service.storage.base import BLOCK, ArchiveCorrupt, ArchivedFileMissing, check_key, checked_blocks, sha256_hex

#: Archived files hold minors' personal data: readable by the service's own user only (and never
#: writable: a file is replaced by nobody), in folders nobody else may list or enter.
FILE_MODE = 0o400
DIR_MODE = 0o700


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


class LocalArchive:
    """A folder: ``{root}/ab/cd/abcd....pdf``, owner-only (files 0400 in 0700 folders)."""

    def __init__(self, root: Path, suffix: str = ".pdf") -> None:
        self.root = Path(root)
        self.suffix = suffix

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
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._publish(Path(tmp), final)
        finally:
            os.unlink(tmp)
        return digest

    def _folders(self, folder: Path) -> None:
        """The root and the two levels under it, each created 0700 (``mkdir(parents=True)`` would
        give the parents the default mode)."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
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
                    fh.write(data)
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

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        os.chmod(tmp, FILE_MODE)
        # atomic, and refuses to replace an existing file (a concurrent writer of the same bytes won)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _missing(self, sha256: str) -> ArchivedFileMissing:
        return ArchivedFileMissing(f"归档中没有摘要为 {sha256[:12]}… 的文件。")

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._missing(sha256) from None
        if sha256_hex(data) != sha256:
            raise ArchiveCorrupt(f"归档文件 {path.name} 与其摘要不符，可能已被改动。")
        return data

    def stream(self, sha256: str) -> Iterator[bytes]:
        path = self.path_for(sha256)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - the generator below closes it
        except FileNotFoundError:
            raise self._missing(sha256) from None
        return checked_blocks(fh, sha256, path.name)

    @contextlib.contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        path = self.path_for(sha256)
        if not path.exists():
            raise self._missing(sha256)
        yield path

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

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
