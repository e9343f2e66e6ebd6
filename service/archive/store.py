"""The archive: files stored under their SHA-256, written once, never overwritten.

:class:`ArchiveStore` is the interface the rest of the service uses; :func:`open_store` picks the
implementation from the settings (``DOCSIGN_ARCHIVE_URL``). :class:`LocalArchive` keeps files in a
folder (the embedded profile); ``service.archive.s3.S3Archive`` keeps them in an object store (the
scale-out profile). Writes to the folder are atomic: a temporary file in the same folder is written and
fsynced, then linked to its final name, which fails if the name exists; so a reader never sees a
partial file and a second write of the same content changes nothing. Reads check the content
against its hash, streamed reads included (a mismatch is raised at the end of the stream).
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
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, cast

from service.errors import ConfigurationError, DocsignError, NotFound
from service.settings import Settings

_HEX = frozenset("0123456789abcdef")
#: Read and write block: large enough to stream at disk speed, small enough to keep memory flat.
BLOCK = 1 << 20
#: The stores the service keeps: signed documents, filed reports, case files (evidence, attachments).
StoreName = Literal["documents", "reports", "files"]


class ArchiveCorrupt(DocsignError):
    code = "ARCHIVE_CORRUPT"
    http_status = 500
    default_message = "归档文件与其摘要不符，归档可能已损坏，请联系管理员。"


class ArchivedFileMissing(NotFound):
    code = "ARCHIVED_FILE_MISSING"
    default_message = "归档中没有这个文件。"


class ArchiveUnavailable(DocsignError):
    """The object store did not answer for as long as the store was told to keep retrying."""

    code = "ARCHIVE_UNAVAILABLE"
    http_status = 503
    default_message = (
        "暂时无法连接归档存储（对象存储），重试后仍未恢复。已完成的工作不会丢失，请稍后重试，"
        "工作会从中断处继续；如果持续出现，请联系管理员检查对象存储。"
    )


class ArchiveStoreError(DocsignError):
    """The object store refused a request for a reason retrying cannot fix."""

    code = "ARCHIVE_STORE_ERROR"
    http_status = 502
    default_message = "归档存储（对象存储）拒绝了请求，请联系管理员检查对象存储的配置与状态。"


#: Told about each retry while the object store cannot be reached: ``on_retry(attempt, error)``,
#: ``attempt`` counting from 1. A batch job shows :data:`RETRYING_MESSAGE` meanwhile.
OnRetry = Callable[[int, Exception], None]
RETRYING_MESSAGE = "对象存储暂时不可用，正在重试……"


class ArchiveStore(Protocol):
    """Write-once, content-addressed storage of files (local folder or object store)."""

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its SHA-256 (hex). Storing the same bytes again is a no-op."""

    def put_many(self, items: list[bytes]) -> list[str]:
        """Store several files at once (a slice of a batch), each as :meth:`put` would; returns their
        SHA-256s in order. Every file is durably in place when this returns."""

    def put_file(self, path: Path) -> str:
        """Store a file's content without reading it into memory (print files of many megabytes)."""

    def get(self, sha256: str) -> bytes:
        """The whole content, checked against its hash."""

    def stream(self, sha256: str) -> Iterator[bytes]:
        """The content in blocks, for responses and exports; raises ArchiveCorrupt after the last
        block if the content does not match its hash, ArchivedFileMissing before the first."""

    def local_path(self, sha256: str) -> AbstractContextManager[Path]:
        """A local file with the content, for tools that need a path (qpdf, pdftoppm): the stored file
        itself for a local folder, a temporary copy (removed on exit) for an object store."""

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove a file. Only recovery calls this, for a write that no committed row points to."""

    def keys(self) -> Iterator[str]: ...

    def clean_incomplete(self, older_than: dt.timedelta) -> int:
        """Remove what interrupted writes left behind (temporary files, unfinished uploads) older
        than ``older_than``; returns how many were removed."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ArchivedFileMissing(f"「{sha256[:80]}」不是有效的 SHA-256 摘要。")
    return sha256


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
        return _checked_blocks(fh, sha256, path.name)

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


def _checked_blocks(stream: BinaryIO, sha256: str, name: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    with stream:
        while block := stream.read(BLOCK):
            digest.update(block)
            yield block
    if digest.hexdigest() != sha256:
        raise ArchiveCorrupt(f"归档文件 {name} 与其摘要不符，可能已被改动。")


def open_store(settings: Settings, name: StoreName, *, on_retry: OnRetry | None = None) -> ArchiveStore:
    """The store ``name`` of the configured archive: a local folder (the default, or ``file:``
    URLs), or an object store (``s3://bucket[/prefix]``, the scale-out profile), which calls
    ``on_retry`` while it waits for the object store to come back."""
    url = settings.archive_url
    if not url or url.startswith("file:"):
        root = Path(url.removeprefix("file://").removeprefix("file:")) if url else settings.archive_dir
        if name == "documents":
            return LocalArchive(root)
        return LocalArchive(root / name, suffix="")
    if url.startswith("s3://"):
        from service.archive.s3 import S3Archive  # boto3 is loaded only by the scale-out profile

        return S3Archive.from_settings(settings, name, on_retry=on_retry)
    raise ConfigurationError(
        f"归档地址「{url}」无法识别：请留空（本地目录），或写成 file:///路径 或 s3://存储桶/前缀。"
    )
