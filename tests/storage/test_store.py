"""The archive store's contract, run against a local folder and a real object store (SeaweedFS)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import stat
import threading
import time
import tracemalloc
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from service.clock import Clock
from service.crypto import Keyring
from service.errors import ConfigurationError
from service.settings import Settings
from service.storage import open_store
from service.storage.base import BLOCK, ArchiveCorrupt, ArchivedFileMissing, ArchiveStore, ArchiveUnavailable
from service.storage.local import LocalArchive
from service.storage.s3 import MULTIPART_THRESHOLD, PART_SIZE, S3Archive, connect_from_settings

if TYPE_CHECKING:
    from devtools.seaweedfs import SeaweedFS

PRINT_PDF = 20 * 1024 * 1024  # a merged print file of a large batch


# -- the folder only ----------------------------------------------------------------------------


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


# -- both stores --------------------------------------------------------------------------------


@dataclass
class Backend:
    """A store and the ways a test reaches around it to the bytes underneath."""

    store: ArchiveStore
    tamper: Callable[[str, bytes], None]  # replace what is stored under a digest
    interrupt_write: Callable[[], None]  # leave what a killed write leaves behind
    age: Callable[[dt.timedelta], None]  # make what interrupted writes left behind older


def local_backend(tmp_path: Path, *, sealed: bool = False) -> Backend:
    """The folder, its files in the clear, or sealed at rest (``tests/storage/test_encrypted.py``)."""
    keyring = Keyring(tmp_path / "keys") if sealed else None
    archive = LocalArchive(tmp_path / "archive", keyring=keyring, temp_root=tmp_path / "work")

    def tamper(digest: str, data: bytes) -> None:
        path = archive.path_for(digest)
        os.chmod(path, 0o644)
        path.write_bytes(data)

    def interrupt_write() -> None:
        folder = archive.root / "ab" / "cd"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".incoming-killed").write_bytes(b"%PDF-1.7 half")

    def age(by: dt.timedelta) -> None:
        for tmp in archive.root.rglob(".incoming-*"):
            then = tmp.stat().st_mtime - by.total_seconds()
            os.utime(tmp, (then, then))

    return Backend(archive, tamper, interrupt_write, age)


def new_bucket(seaweedfs: SeaweedFS) -> str:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    seaweedfs.create_bucket(bucket)
    return bucket


def s3_store(seaweedfs: SeaweedFS, bucket: str, **kwargs: Any) -> S3Archive:
    settings = Settings(**seaweedfs.settings_values(bucket))
    return S3Archive(connect_from_settings(settings), bucket, "documents", **kwargs)


def s3_backend(seaweedfs: SeaweedFS) -> Backend:
    clock = Clock()
    store = s3_store(seaweedfs, new_bucket(seaweedfs), now=clock.now)
    raw = seaweedfs.client()

    def tamper(digest: str, data: bytes) -> None:
        raw.put_object(Bucket=store.bucket, Key=store.key_for(digest), Body=data)

    def interrupt_write() -> None:
        key = store.key_for(hashlib.sha256(b"killed").hexdigest())
        upload = raw.create_multipart_upload(Bucket=store.bucket, Key=key)
        raw.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"half")

    return Backend(store, tamper, interrupt_write, clock.advance)


@pytest.fixture(params=["local", "sealed", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param in ("local", "sealed"):
        return local_backend(tmp_path, sealed=request.param == "sealed")
    return s3_backend(request.getfixturevalue("seaweedfs"))


def big_file(tmp_path: Path, size: int = PRINT_PDF) -> tuple[Path, str]:
    path = tmp_path / "print.pdf"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size // BLOCK):
            block = os.urandom(BLOCK)
            digest.update(block)
            out.write(block)
    return path, digest.hexdigest()


def test_a_second_write_of_the_same_bytes_changes_nothing(backend: Backend) -> None:
    store = backend.store
    digest = store.put(b"%PDF-1.7 signed")
    assert digest == hashlib.sha256(b"%PDF-1.7 signed").hexdigest()
    assert store.put(b"%PDF-1.7 signed") == digest
    assert store.get(digest) == b"%PDF-1.7 signed"
    assert list(store.keys()) == [digest]
    assert store.exists(digest)


def test_a_slice_written_at_once_lands_whole_with_repeats_and_files_already_there(backend: Backend) -> None:
    store = backend.store
    before = store.put(b"%PDF-1.7 already")
    items = [b"%PDF-1.7 a", b"%PDF-1.7 already", b"%PDF-1.7 b", b"%PDF-1.7 a"]
    digests = store.put_many(items)
    assert digests == [hashlib.sha256(d).hexdigest() for d in items] and digests[1] == before
    assert sorted(store.keys()) == sorted(set(digests))
    for digest, data in zip(digests, items, strict=True):
        assert store.get(digest) == data
    assert store.clean_incomplete(dt.timedelta(0)) == 0  # no temporary file left behind


def test_threads_writing_the_same_and_other_files_at_once_all_succeed(backend: Backend) -> None:
    store = backend.store
    documents = [f"%PDF-1.7 document {i % 4}".encode() for i in range(16)]  # each written by 4 threads
    digests: list[str] = []

    def write(data: bytes) -> None:
        digests.append(store.put(data))

    threads = [threading.Thread(target=write, args=(data,)) for data in documents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [hashlib.sha256(data).hexdigest() for data in documents]
    assert sorted(digests) == sorted(expected)
    assert list(store.keys()) == sorted(set(expected))
    assert all(store.get(digest) == f"%PDF-1.7 document {i}".encode() for i, digest in enumerate(expected[:4]))


def test_tampered_content_is_detected_on_every_read(backend: Backend) -> None:
    store = backend.store
    digest = store.put(b"%PDF-1.7 original")
    backend.tamper(digest, b"%PDF-1.7 changed!")
    with pytest.raises(ArchiveCorrupt):
        store.get(digest)
    blocks = store.stream(digest)
    with pytest.raises(ArchiveCorrupt):
        b"".join(blocks)


def test_missing_and_malformed_keys(backend: Backend) -> None:
    store = backend.store
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArchivedFileMissing):
        store.get(absent)
    with pytest.raises(ArchivedFileMissing):
        store.stream(absent)
    with pytest.raises(ArchivedFileMissing), store.local_path(absent):
        pass
    assert not store.exists(absent)
    store.delete(absent)  # nothing to remove is not an error
    with pytest.raises(ArchivedFileMissing):
        store.get("../../etc/passwd")


def test_a_print_file_goes_in_and_out_without_being_held_in_memory(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    path, expected = big_file(tmp_path)
    assert not store.exists(expected)  # a store in use has its client made (about 12 MB of models)
    tracemalloc.start()
    try:
        digest = store.put_file(path)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()  # what the client keeps (connections, models)
        total = 0
        for block in store.stream(digest):  # checked against the hash after the last block
            total += len(block)
        _, read_peak = tracemalloc.get_traced_memory()
        read_peak -= before
    finally:
        tracemalloc.stop()
    assert digest == expected
    assert total == PRINT_PDF
    assert read_peak < 4 * BLOCK, f"streaming a 20 MB file held {read_peak / 2**20:.1f} MB"
    assert put_peak < PART_SIZE + 4 * BLOCK, f"storing a 20 MB file held {put_peak / 2**20:.1f} MB"
    with store.local_path(digest) as copy:
        assert copy.stat().st_size == PRINT_PDF
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert store.put_file(path) == digest
    assert list(store.keys()) == [digest]


def test_keys_list_every_file_and_delete_removes_one(backend: Backend) -> None:
    store = backend.store
    digests = sorted(store.put(f"%PDF-1.7 document {i}".encode()) for i in range(5))
    if isinstance(store, S3Archive):
        store.list_page = 2  # several pages
    assert list(store.keys()) == digests
    store.delete(digests[2])
    assert not store.exists(digests[2])
    with pytest.raises(ArchivedFileMissing):
        store.get(digests[2])
    assert list(store.keys()) == digests[:2] + digests[3:]


def test_clean_incomplete_removes_only_old_leftovers(backend: Backend) -> None:
    store = backend.store
    kept = store.put(b"%PDF-1.7 complete")
    backend.interrupt_write()
    assert store.clean_incomplete(dt.timedelta(hours=1)) == 0  # may still be running
    backend.age(dt.timedelta(hours=2))
    assert store.clean_incomplete(dt.timedelta(hours=1)) == 1
    assert store.clean_incomplete(dt.timedelta(hours=1)) == 0
    assert list(store.keys()) == [kept]
    assert store.get(kept) == b"%PDF-1.7 complete"


# -- the object store ---------------------------------------------------------------------------


def status_of(store: S3Archive, operation: str) -> list[int]:
    """The HTTP status of every ``operation`` request the store's client sends from now on."""
    seen: list[int] = []

    def record(http_response: Any, **_: Any) -> None:
        seen.append(http_response.status_code)

    store.client.meta.events.register(f"after-call.s3.{operation}", record)
    return seen


def test_the_object_store_itself_refuses_a_second_write(seaweedfs: SeaweedFS) -> None:
    store = s3_store(seaweedfs, new_bucket(seaweedfs))
    digest = store.put(b"%PDF-1.7 signed")
    key = store.key_for(digest)
    raw = seaweedfs.client()

    with pytest.raises(ClientError) as refused:
        raw.put_object(Bucket=store.bucket, Key=key, Body=b"%PDF-1.7 forged", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    upload = raw.create_multipart_upload(Bucket=store.bucket, Key=key)
    part = raw.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"forged")
    with pytest.raises(ClientError) as refused:
        raw.complete_multipart_upload(
            Bucket=store.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            IfNoneMatch="*",
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    raw.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"])

    # a body damaged on the way does not match the SHA-256 the store is given, and is refused
    other = hashlib.sha256(b"%PDF-1.7 as sent").digest()
    with pytest.raises(ClientError) as refused:
        raw.put_object(
            Bucket=store.bucket, Key="damaged", Body=b"%PDF-1.7 as received", ChecksumSHA256=b64encode(other).decode()
        )
    assert refused.value.response["Error"]["Code"] == "BadDigest"

    puts = status_of(store, "PutObject")
    assert store.put(b"%PDF-1.7 signed") == digest
    assert puts == [412]  # sent, refused by the store, reported as stored
    assert store.get(digest) == b"%PDF-1.7 signed"


def test_a_multipart_upload_that_loses_the_race_is_reported_as_stored(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    store = s3_store(seaweedfs, new_bucket(seaweedfs))
    path, digest = big_file(tmp_path, MULTIPART_THRESHOLD + BLOCK)
    assert store.put_file(path) == digest
    head = store.client.head_object(Bucket=store.bucket, Key=store.key_for(digest))
    assert head["ETag"].strip('"').endswith("-2")  # went up in two parts

    # what put_file does when another writer completes the same file between its check and its
    # completion: the conditional CompleteMultipartUpload is refused and the parts are dropped
    completions = status_of(store, "CompleteMultipartUpload")
    store._upload_parts(digest, path)
    assert completions == [412]
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert store.client.head_object(Bucket=store.bucket, Key=store.key_for(digest))["ETag"] == head["ETag"]


def test_a_tampered_object_is_never_handed_to_a_tool(seaweedfs: SeaweedFS) -> None:
    backend = s3_backend(seaweedfs)
    digest = backend.store.put(b"%PDF-1.7 original")
    backend.tamper(digest, b"%PDF-1.7 changed!")
    with pytest.raises(ArchiveCorrupt), backend.store.local_path(digest):
        pass
    with backend.store.local_path(backend.store.put(b"%PDF-1.7 fine")) as path:
        assert path.read_bytes() == b"%PDF-1.7 fine"
        assert path.name.endswith(".pdf")
    assert not path.exists()


def test_open_store_keeps_three_stores_as_prefixes_of_one_bucket(seaweedfs: SeaweedFS) -> None:
    bucket = new_bucket(seaweedfs)
    settings = Settings(**seaweedfs.settings_values(bucket, "county"))
    documents, reports, files = (open_store(settings, name) for name in ("documents", "reports", "files"))
    signed = documents.put(b"%PDF-1.7 signed")
    filed = reports.put(b"PK\x03\x04 report.xlsx")
    evidence = files.put(b"\xff\xd8 photo.jpg")
    listed = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(
        [
            f"county/documents/{signed[:2]}/{signed[2:4]}/{signed}.pdf",
            f"county/reports/{filed[:2]}/{filed[2:4]}/{filed}",
            f"county/files/{evidence[:2]}/{evidence[2:4]}/{evidence}",
        ]
    )
    assert list(documents.keys()) == [signed]
    assert not reports.exists(signed)


def test_a_misconfigured_object_store_says_what_to_fix(seaweedfs: SeaweedFS) -> None:
    values = seaweedfs.settings_values("no-such-bucket-here")
    with pytest.raises(ConfigurationError, match="没有存储桶"):
        open_store(Settings(**values), "documents").put(b"x")
    bucket = new_bucket(seaweedfs)
    wrong = {**seaweedfs.settings_values(bucket), "s3_secret_access_key": "not-the-secret"}
    with pytest.raises(ConfigurationError, match="拒绝了访问"):
        open_store(Settings(**wrong), "documents").put(b"x")
    with pytest.raises(ConfigurationError, match="无法识别"):
        open_store(Settings(archive_url="s3:///no-bucket"), "documents")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_store_gives_up_after_its_patience() -> None:
    settings = Settings(
        archive_url="s3://docsign",
        s3_endpoint_url=f"http://127.0.0.1:{closed_port()}",  # nothing listens: a stopped store
        s3_access_key_id="docsign",
        s3_secret_access_key="secret",  # type: ignore[arg-type]
    )
    retries: list[tuple[int, Exception]] = []
    store = S3Archive(
        connect_from_settings(settings),
        "docsign",
        "documents",
        patience=2.0,
        on_retry=lambda n, e: retries.append((n, e)),
    )
    started = time.monotonic()
    with pytest.raises(ArchiveUnavailable) as gave_up:
        store.put(b"%PDF-1.7 signed")
    elapsed = time.monotonic() - started
    # the last try starts when the patience runs out; botocore's own quick retry may add a second
    assert 2.0 <= elapsed < 2.0 + 1.5
    assert gave_up.value.http_status == 503
    assert "无法连接归档存储" in gave_up.value.message
    assert [n for n, _ in retries] == list(range(1, len(retries) + 1)) and len(retries) >= 2


def test_a_store_stopped_for_a_few_seconds_loses_nothing(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    bucket = new_bucket(seaweedfs)
    retries: list[int] = []
    store = s3_store(seaweedfs, bucket, patience=60.0, on_retry=lambda n, e: retries.append(n))
    impatient = s3_store(seaweedfs, bucket, patience=1.0)
    stored = store.put(b"%PDF-1.7 before the outage")

    seaweedfs.stop()
    with pytest.raises(ArchiveUnavailable):
        impatient.get(stored)

    def come_back() -> None:
        time.sleep(3)
        seaweedfs.start()

    restarter = threading.Thread(target=come_back)
    started = time.monotonic()
    restarter.start()
    try:
        digest = store.put(b"%PDF-1.7 signed during the outage")
    finally:
        restarter.join()
    assert time.monotonic() - started >= 3
    assert retries, "the caller was not told about the outage"
    assert store.get(digest) == b"%PDF-1.7 signed during the outage"
    assert store.get(stored) == b"%PDF-1.7 before the outage"
    assert sorted(store.keys()) == sorted([stored, digest])


def test_a_streamed_read_goes_on_after_the_store_crashed(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    retries: list[int] = []
    store = s3_store(seaweedfs, new_bucket(seaweedfs), on_retry=lambda n, e: retries.append(n))
    path, digest = big_file(tmp_path)
    store.put_file(path)
    blocks = store.stream(digest)
    received = len(next(blocks))
    seaweedfs.kill()
    restarter = threading.Thread(target=lambda: (time.sleep(2), seaweedfs.start()))
    restarter.start()
    try:
        for block in blocks:  # checked against the hash after the last block
            received += len(block)
    finally:
        restarter.join()
    assert received == PRINT_PDF
    assert retries, "the read was never interrupted: the test proves nothing"


def test_archived_files_are_the_service_users_only(tmp_path: Path) -> None:
    """Minors' personal data: files owner-read-only (no group or world bits), in 0700 folders."""
    archive = LocalArchive(tmp_path / "data" / "archive")
    source = tmp_path / "big.pdf"
    source.write_bytes(b"%PDF-1.7 " + b"x" * 1000)
    for digest in (archive.put(b"%PDF-1.7 notice"), archive.put_file(source)):
        path = archive.path_for(digest)
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
        for folder in (archive.root, path.parent.parent, path.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
