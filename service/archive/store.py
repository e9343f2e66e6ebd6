"""The archive: signed PDFs stored under their SHA-256, written once, never overwritten.

:class:`ArchiveStore` is the interface the rest of the service uses; :class:`LocalArchive` keeps
files in a folder (the embedded profile). An object store (the scale-out profile) implements
the same three methods. Writes are atomic: a temporary file in the same folder is written and
fsynced, then linked to its final name, which fails if the name exists; so a reader never sees a
partial file and a second write of the same content changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from service.errors import DocsignError, NotFound

_HEX = frozenset("0123456789abcdef")


class ArchiveCorrupt(DocsignError):
    code = "ARCHIVE_CORRUPT"
    http_status = 500
    default_message = "归档文件与其摘要不符，归档可能已损坏，请联系管理员。"


class ArchivedFileMissing(NotFound):
    code = "ARCHIVED_FILE_MISSING"
    default_message = "归档中没有这个文件。"


class ArchiveStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data``; returns its SHA-256 (hex). Storing the same bytes again is a no-op."""

    def put_file(self, path: Path) -> str:
        """Store a file's content without reading it into memory (print files of many megabytes)."""

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalArchive:
    """A folder: ``{root}/ab/cd/abcd....pdf``."""

    def __init__(self, root: Path, suffix: str = ".pdf") -> None:
        self.root = Path(root)
        self.suffix = suffix

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise ArchivedFileMissing(f"「{sha256}」不是有效的 SHA-256 摘要。")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{self.suffix}"

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        final = self.path_for(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
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

    def put_file(self, path: Path) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            final = self.path_for(digest.hexdigest())
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                self._publish(Path(tmp), final)
        finally:
            os.unlink(tmp)
        return digest.hexdigest()

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        os.chmod(tmp, 0o444)
        # atomic, and refuses to replace an existing file (a concurrent writer of the same bytes won)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArchivedFileMissing(f"归档中没有摘要为 {sha256[:12]}… 的文件。") from None
        if sha256_hex(data) != sha256:
            raise ArchiveCorrupt(f"归档文件 {path.name} 与其摘要不符，可能已被改动。")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def __iter__(self) -> Iterator[str]:
        for path in sorted(self.root.glob(f"??/??/*{self.suffix}")):
            yield path.name[: -len(self.suffix)]
