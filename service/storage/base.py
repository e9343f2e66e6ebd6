"""What every archive store is: files stored under their SHA-256, written once, never overwritten.

:class:`ArchiveStore` is the interface the rest of the service uses; ``service.storage.open_store``
picks the implementation from the settings (``DOCSIGN_ARCHIVE_URL``): a local folder
(``service.storage.local.LocalArchive``, the embedded profile) or an object store
(``service.storage.s3.S3Archive``, the scale-out profile). Reads check the content against its hash,
streamed reads included (a mismatch is raised at the end of the stream).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from service.errors import DocsignError, NotFound

_HEX = frozenset("0123456789abcdef")
#: Read and write block: large enough to stream at disk speed, small enough to keep memory flat.
BLOCK = 1 << 20
#: The stores the service keeps: signed documents, filed reports, case files (evidence, attachments).
#: (``checkpoints`` holds the audit checkpoints: written once, read by ``docsign audit verify``; no row names them.)
StoreName = Literal["documents", "reports", "files", "checkpoints"]
STORE_NAMES: tuple[StoreName, ...] = ("documents", "reports", "files")


class ArchiveCorrupt(DocsignError):
    code = "ARCHIVE_CORRUPT"
    http_status = 500
    default_message = "归档文件与其摘要不符，归档可能已损坏，请联系管理员。"


class ArchivedFileMissing(NotFound):
    code = "ARCHIVED_FILE_MISSING"
    default_message = "归档中没有这个文件。"


#: While a request is answered: how long the store may keep retrying an unreachable object store
#: (None outside requests: background work waits the store's whole patience). A person waiting for
#: a download hears of an outage in seconds; a job rides it out.
REQUEST_PATIENCE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "docsign_request_patience", default=None
)


def patience_now(patience: float) -> float:
    """How long to keep retrying now: ``patience``, or less while a request waits."""
    limit = REQUEST_PATIENCE.get()
    return patience if limit is None else min(patience, limit)


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
        """Remove a file: recovery, for a write that no committed row points to, and retention,
        once the removal of what named it has committed."""

    def check_ready(self) -> str | None:
        """None when the store can be read and written now, or what is wrong (Chinese, for /readyz)."""

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


def read_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """``stream`` in blocks of :data:`BLOCK`, closed at the end."""
    with stream:
        while block := stream.read(BLOCK):
            yield block


def checked(blocks: Iterable[bytes], sha256: str, name: str) -> Iterator[bytes]:
    """``blocks`` handed on, then ArchiveCorrupt if together they do not match ``sha256``."""
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block)
        yield block
    if digest.hexdigest() != sha256:
        raise ArchiveCorrupt(f"归档文件 {name} 与其摘要不符，可能已被改动。")


def checked_blocks(stream: BinaryIO, sha256: str, name: str) -> Iterator[bytes]:
    return checked(read_blocks(stream), sha256, name)
