"""Archived files sealed at rest: the folder holds no plaintext, names and digests stay those of the
plaintext, files of before the change are still read and can be sealed in place, and the object
store encrypts what it keeps (SeaweedFS's SSE-S3)."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from service.crypto import Keyring
from service.settings import Settings
from service.storage import open_store
from service.storage.base import ArchiveCorrupt
from service.storage.derived import DerivedFiles
from service.storage.local import LocalArchive
from service.storage.s3 import MULTIPART_THRESHOLD, S3Archive

if TYPE_CHECKING:
    from devtools.seaweedfs import SeaweedFS

SECRET = b"370112201804150027"


def _notice(extra: bytes = b"") -> bytes:
    return b"%PDF-1.7\n" + os.urandom(3000) + b"(" + SECRET + b")" + extra + b"\n%%EOF"


def _sealed(tmp_path: Path) -> LocalArchive:
    return LocalArchive(tmp_path / "archive", keyring=Keyring(tmp_path / "keys"), temp_root=tmp_path / "work" / "tmp")


def test_the_folder_holds_no_plaintext_and_names_stay_the_plaintext_digests(tmp_path: Path) -> None:
    archive = _sealed(tmp_path)
    one, two, big = _notice(), _notice(b"two"), tmp_path / "print.pdf"
    big.write_bytes(_notice(os.urandom(3 << 20)))  # several chunks
    digests = [archive.put(one), *archive.put_many([two, one]), archive.put_file(big)]
    expected = [hashlib.sha256(d).hexdigest() for d in (one, two, one, big.read_bytes())]
    assert digests == expected
    for path in (tmp_path / "archive").rglob("*.pdf"):
        raw = path.read_bytes()
        assert b"%PDF" not in raw and SECRET not in raw
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert archive.get(digests[0]) == one
    assert b"".join(archive.stream(digests[3])) == big.read_bytes()
    with archive.local_path(digests[1]) as copy:
        # a decrypted copy under this process's work folder, for qpdf and pdftoppm
        assert copy.read_bytes() == two
        assert copy.is_relative_to(tmp_path / "work" / "tmp") and copy.name == f"{digests[1]}.pdf"
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert not copy.exists() and not list((tmp_path / "work" / "tmp").iterdir())


def test_a_sealed_file_altered_or_moved_to_another_name_is_refused(tmp_path: Path) -> None:
    archive = _sealed(tmp_path)
    a, b = archive.put(_notice(b"a")), archive.put(_notice(b"b"))
    path_a, path_b = archive.path_for(a), archive.path_for(b)
    for path in (path_a, path_b):
        path.chmod(0o600)
    path_b.write_bytes(path_a.read_bytes())  # a's ciphertext under b's name
    with pytest.raises(ArchiveCorrupt, match="无法解密"):
        archive.get(b)
    flipped = bytearray(path_a.read_bytes())
    flipped[100] ^= 1
    path_a.write_bytes(bytes(flipped))
    with pytest.raises(ArchiveCorrupt, match="无法解密"):
        archive.get(a)
    with pytest.raises(ArchiveCorrupt, match="无法解密"):
        b"".join(archive.stream(a))


def test_files_from_before_encryption_are_read_and_sealed_in_place(tmp_path: Path) -> None:
    plain = LocalArchive(tmp_path / "archive")  # an installation before this change
    old = [plain.put(_notice(bytes([n]))) for n in range(3)]
    archive = _sealed(tmp_path)
    assert [archive.get(d) for d in old] == [plain.get(d) for d in old]
    with archive.local_path(old[0]) as path:
        assert path == archive.path_for(old[0])  # the stored file itself: nothing to decrypt
    new = archive.put(_notice(b"new"))

    seen: list[tuple[int, int]] = []

    def stop_after_two(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive.seal_existing(stop_after_two)  # the command stopped after two files (by name)
    sealed_before = [d for d in sorted([*old, new])[:2] if d in old]
    assert all(archive.sealed(d) for d in sealed_before) and seen[-1] == (2, 4)
    assert archive.seal_existing() == 3 - len(sealed_before)
    assert all(archive.sealed(d) for d in [*old, new])
    assert archive.seal_existing() == 0  # resumed and finished: nothing left
    for digest in old:
        assert SECRET not in archive.path_for(digest).read_bytes()
        assert hashlib.sha256(archive.get(digest)).hexdigest() == digest
        assert stat.S_IMODE(archive.path_for(digest).stat().st_mode) == 0o400


def test_open_store_seals_unless_turned_off(tmp_path: Path) -> None:
    on = Settings(environment="development", data_dir=tmp_path / "var")
    digest = open_store(on, "files").put(b"evidence " + SECRET)
    stored = open_store(on, "files")
    assert isinstance(stored, LocalArchive) and stored.sealed(digest)
    off = on.model_copy(update={"archive_encryption": False})
    assert open_store(off, "files").put(b"plain " + SECRET) in set(open_store(off, "files").keys())
    with pytest.raises(ArchiveCorrupt, match="DOCSIGN_ARCHIVE_ENCRYPTION"):
        open_store(off, "files").get(digest)  # sealed files need the keys


def test_cached_page_images_are_kept_sealed(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "keys")
    pages = DerivedFiles(tmp_path / "work" / "pages", keyring)
    png = b"\x89PNG\r\n\x1a\n" + SECRET
    (tmp_path / "work" / "pages").mkdir(parents=True)
    (tmp_path / "work" / "pages" / "old-1.png").write_bytes(png)  # cached before this change
    assert pages.get("abc-1.png") is None
    pages.put("abc-1.png", png)
    assert pages.get("abc-1.png") == png
    assert pages.drop_plain() == 1
    (kept,) = (tmp_path / "work" / "pages").iterdir()
    assert kept.name == "abc-1.png.sealed" and SECRET not in kept.read_bytes()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    kept.rename(kept.with_name("abd-1.png.sealed"))  # another page's name: does not open, made again
    assert pages.get("abd-1.png") is None and not list(kept.parent.iterdir())


def _volume_files_holding(server: SeaweedFS, marker: bytes) -> list[Path]:
    return [p for p in server.data_dir.rglob("*") if p.is_file() and marker in p.read_bytes()]


def test_seaweedfs_keeps_objects_encrypted_when_asked(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    """SeaweedFS (4.x) implements SSE-S3: with ``ServerSideEncryption: AES256`` on a PutObject and
    on CreateMultipartUpload it encrypts each chunk it keeps, says so on HEAD and GET, and reads the
    object back whole and in ranges; without it, the bytes lie in its volume files as sent."""
    bucket = f"sse-{uuid.uuid4().hex[:8]}"
    seaweedfs.create_bucket(bucket)
    settings = Settings(
        environment="development",
        data_dir=tmp_path / "var",
        archive_url=f"s3://{bucket}",
        s3_endpoint_url=seaweedfs.endpoint_url,
        s3_access_key_id=seaweedfs.access_key,
        s3_secret_access_key=seaweedfs.secret_key,
    )
    store = open_store(settings, "documents")
    assert isinstance(store, S3Archive) and store.server_side_encryption
    marker = b"SSE-MARKER-" + uuid.uuid4().hex.encode()
    small = os.urandom(4000) + marker + os.urandom(4000)
    big = tmp_path / "print.pdf"
    big.write_bytes(os.urandom(MULTIPART_THRESHOLD) + marker + os.urandom(1000))  # goes up in parts
    digests = [store.put(small), store.put_file(big)]
    for digest in digests:
        head = store.client.head_object(Bucket=bucket, Key=store.key_for(digest))
        assert head["ServerSideEncryption"] == "AES256"
    assert store.get(digests[0]) == small
    assert b"".join(store.stream(digests[1])) == big.read_bytes()
    ranged = store.client.get_object(Bucket=bucket, Key=store.key_for(digests[0]), Range="bytes=4000-4010")
    assert ranged["Body"].read() == marker[:11]

    plain_store = open_store(settings.model_copy(update={"s3_server_side_encryption": False}), "reports")
    plain_marker = b"PLAIN-MARKER-" + uuid.uuid4().hex.encode()
    assert isinstance(plain_store, S3Archive)
    plain = plain_store.put(os.urandom(4000) + plain_marker + os.urandom(4000))
    assert "ServerSideEncryption" not in store.client.head_object(Bucket=bucket, Key=plain_store.key_for(plain))
    # the check can see plaintext in the volume files (the control), and sees none of the sealed objects
    assert _volume_files_holding(seaweedfs, plain_marker)
    assert not _volume_files_holding(seaweedfs, marker)
