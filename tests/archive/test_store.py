from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from service.archive.store import ArchiveCorrupt, ArchivedFileMissing, LocalArchive


def test_content_addressed_write_once(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path)
    digest = archive.put(b"%PDF-1.7 signed")
    assert digest == hashlib.sha256(b"%PDF-1.7 signed").hexdigest()
    path = archive.path_for(digest)
    assert path.read_bytes() == b"%PDF-1.7 signed"
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222  # read-only
    inode = path.stat().st_ino
    assert archive.put(b"%PDF-1.7 signed") == digest
    assert path.stat().st_ino == inode  # never rewritten
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".incoming")]
    assert list(archive) == [digest]


def test_large_file_is_streamed_in_once(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path / "archive")
    big = tmp_path / "print.pdf"
    data = os.urandom(3 << 20) + b"%%EOF"  # several read blocks
    big.write_bytes(data)
    digest = archive.put_file(big)
    assert digest == hashlib.sha256(data).hexdigest()
    path = archive.path_for(digest)
    assert path.read_bytes() == data
    inode = path.stat().st_ino
    assert archive.put_file(big) == digest == archive.put(data)
    assert path.stat().st_ino == inode
    assert not [p for p in (tmp_path / "archive").rglob(".incoming*")]
    assert list(archive) == [digest]


def test_tampered_file_is_detected(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path)
    digest = archive.put(b"original")
    path = archive.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"changed")
    with pytest.raises(ArchiveCorrupt):
        archive.get(digest)


def test_missing_and_malformed(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path)
    with pytest.raises(ArchivedFileMissing):
        archive.get("0" * 64)
    with pytest.raises(ArchivedFileMissing):
        archive.get("../../etc/passwd")
