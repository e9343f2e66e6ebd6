"""The archive in an object store (the S3 API: SeaweedFS here, MinIO or a cloud's S3 elsewhere).

:class:`S3Archive` implements :class:`~service.storage.base.ArchiveStore` with the local layout
under a prefix: ``{prefix}ab/cd/<sha256>[.pdf]``. What the folder gets from ``link()`` the object
store gets from conditional writes:

- **Write once.** Every write carries ``If-None-Match: *`` (``PutObject`` and
  ``CompleteMultipartUpload``), so the store itself refuses to replace an object; the refusal
  (412) means the same bytes are stored already, and the write reports the digest.
- **Checked both ways.** Uploads carry their SHA-256 (``ChecksumSHA256``; for a multipart upload,
  each part's), so the store refuses a body damaged on the way (``BadDigest``, then retried).
  Reads are checked against the key, streamed reads included (``ArchiveCorrupt`` after the last
  block).
- **An outage is a wait, not a loss.** botocore retries a failed request a few times quickly;
  around that, every call is retried with growing pauses while the store cannot be reached
  (connection refused, timeouts, 5xx) for up to ``patience`` seconds, telling ``on_retry``;
  then :class:`~service.storage.base.ArchiveUnavailable` (503). A streamed read that loses its
  connection resumes where it stopped (a ranged GET of the same ETag).

One boto3 client serves every thread of a process (clients are thread-safe, sessions are not);
a forked process (a Celery worker) makes its own on first use.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from service.clock import SYSTEM_CLOCK
from service.errors import ConfigurationError, InvalidInput
from service.settings import Settings
from service.storage.base import (
    BLOCK,
    ArchiveCorrupt,
    ArchivedFileMissing,
    ArchiveStoreError,
    ArchiveUnavailable,
    OnRetry,
    StoreName,
    check_key,
    patience_now,
    sha256_hex,
)
from service.workdir import temp_dir

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")

MIB = 1 << 20
#: Files from this size go up in parts. A single PUT that fails is sent again whole; parts cost at
#: most one part on a failure and keep memory at one part. 8 MiB is s3transfer's own threshold.
MULTIPART_THRESHOLD = 8 * MIB
#: Each part is read into memory once (hashed, sent, resent on a failure): 8 MiB keeps a batch
#: worker's memory flat, is above S3's 5 MiB minimum part, and 10,000 parts (S3's maximum) still
#: allow 80 GB; a 20 MB print PDF goes up in 3 parts.
PART_SIZE = 8 * MIB
#: Our retry loop's pauses: the first short (a dropped connection), then doubling up to a cap
#: that notices a restarted store within two seconds.
FIRST_PAUSE = 0.2
MAX_PAUSE = 2.0
#: botocore's own attempts per call (standard mode: 5xx, throttling, connection errors), with its
#: jittered backoff of about a second; longer outages are ridden out by our loop.
BOTOCORE_ATTEMPTS = 3
#: Job threads (up to 32, ``job_workers``) share one client; each may hold a connection.
MAX_POOL_CONNECTIONS = 32
#: Keys (and unfinished uploads) asked for per listing request: S3's own maximum.
LIST_PAGE = 1000

#: Error codes the store answers with while it is overloaded, starting or losing a race; retried.
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "ConditionalRequestConflict",  # two conditional writes of the same key at once
        "BadDigest",  # the body was damaged on the way: send it again
        "IncompleteBody",
    }
)
_ACCESS_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
#: ``ab/cd/abcd…`` (64 hex digits), the local layout.
_KEY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the store could not be reached, dropped the connection, or answered 5xx."""
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(exc, ClientError):
        return _code(exc) in _TRANSIENT_CODES or _status(exc) >= 500 or _status(exc) == 429
    return False


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def parse_archive_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"归档地址「{url}」无法识别：对象存储请写成 s3://存储桶 或 s3://存储桶/前缀。")
    return parts.netloc, parts.path.strip("/")


class SharedClient:
    """One client per process, made on first use (and again in a forked child)."""

    def __init__(self, connect: Callable[[], S3Client]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._client: S3Client | None = None
        self._pid = 0

    def get(self) -> S3Client:
        client, pid = self._client, os.getpid()
        if client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    self._client, self._pid = self._connect(), pid
                client = self._client
        return client


def connect_from_settings(settings: Settings) -> Callable[[], S3Client]:
    """A function making the configured S3 client; key and secret left empty use boto3's chain."""
    endpoint = settings.s3_endpoint_url or None
    key_id = settings.s3_access_key_id or None
    secret = settings.s3_secret_access_key.get_secret_value() or None
    region = settings.s3_region or None
    config = Config(
        # SeaweedFS and MinIO serve buckets as paths; AWS prefers bucket host names
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"mode": "standard", "total_max_attempts": BOTOCORE_ATTEMPTS},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )

    def connect() -> S3Client:
        # a session per client: sessions are not thread-safe, the client they make is
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=config,
        )

    return connect


_clients: dict[tuple[str, ...], SharedClient] = {}
_clients_lock = threading.Lock()


def _client_for(settings: Settings) -> SharedClient:
    """The process's client for these connection settings (all three stores share it)."""
    key = (
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key.get_secret_value(),
    )
    with _clients_lock:
        shared = _clients.get(key)
        if shared is None:
            shared = _clients[key] = SharedClient(connect_from_settings(settings))
        return shared


class ArchiveFileChanged(InvalidInput):
    code = "ARCHIVE_FILE_CHANGED"
    default_message = "文件在归档过程中被改动，未归档；请在文件写完后重试。"


class S3Archive:
    """A write-once, content-addressed store under ``prefix`` in ``bucket``.

    ``connect`` makes the boto3 S3 client (called once per process, on first use); ``patience``
    is how many seconds a call keeps retrying while the store cannot be reached; ``on_retry`` is
    told about each retry; ``now`` dates unfinished uploads for :meth:`clean_incomplete`;
    ``tmp_dir`` holds the copies :meth:`local_path` makes (the system's temporary folder if None).
    """

    def __init__(
        self,
        connect: Callable[[], S3Client] | SharedClient,
        bucket: str,
        prefix: str = "",
        *,
        suffix: str = ".pdf",
        patience: float = 60.0,
        on_retry: OnRetry | None = None,
        now: Callable[[], dt.datetime] = SYSTEM_CLOCK.now,
        tmp_dir: Path | None = None,
        server_side_encryption: bool = True,
    ) -> None:
        self._shared = connect if isinstance(connect, SharedClient) else SharedClient(connect)
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.suffix = suffix
        self.patience = patience
        self.on_retry = on_retry
        self.now = now
        self.tmp_dir = tmp_dir
        #: Ask the store to encrypt each object it keeps (SSE-S3, ``AES256``) on every write.
        self.server_side_encryption = server_side_encryption
        self.list_page = LIST_PAGE

    @classmethod
    def from_settings(cls, settings: Settings, name: StoreName, *, on_retry: OnRetry | None = None) -> S3Archive:
        """The store ``name`` (documents, reports, files) under ``DOCSIGN_ARCHIVE_URL``'s prefix."""
        bucket, base = parse_archive_url(settings.archive_url)
        return cls(
            _client_for(settings),
            bucket,
            f"{base}/{name}" if base else name,
            suffix=".pdf" if name == "documents" else "",
            patience=settings.s3_retry_seconds,
            on_retry=on_retry,
            tmp_dir=settings.temp_dir,
            server_side_encryption=settings.s3_server_side_encryption,
        )

    def with_on_retry(self, on_retry: OnRetry | None) -> S3Archive:
        """The same store (and client), telling ``on_retry`` about retries: one per batch job."""
        return S3Archive(
            self._shared,
            self.bucket,
            self.prefix,
            suffix=self.suffix,
            patience=self.patience,
            on_retry=on_retry,
            now=self.now,
            tmp_dir=self.tmp_dir,
            server_side_encryption=self.server_side_encryption,
        )

    @property
    def _encryption(self) -> dict[str, Any]:
        """The header of every write (object or multipart upload) asking for SSE-S3."""
        return {"ServerSideEncryption": "AES256"} if self.server_side_encryption else {}

    @property
    def client(self) -> S3Client:
        return self._shared.get()

    def key_for(self, sha256: str) -> str:
        check_key(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}{self.suffix}"

    @property
    def _content_type(self) -> str:
        return "application/pdf" if self.suffix == ".pdf" else "application/octet-stream"

    # -- retrying ---------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], *, expected: frozenset[str] = frozenset()) -> T:
        """``fn()``, retried while the store cannot be reached. A ClientError whose code is in
        ``expected`` is raised as it is for the caller; any other failure becomes one of ours."""
        patience = patience_now(self.patience)
        deadline = time.monotonic() + patience
        pause = FIRST_PAUSE
        attempt = 0
        while True:
            try:
                return fn()
            except ClientError as exc:
                if _code(exc) in expected:
                    raise
                if not is_transient(exc):
                    raise self._refused(exc) from exc
                error: Exception = exc
            except NoCredentialsError as exc:
                raise ConfigurationError(
                    "未配置对象存储的访问密钥：请设置 DOCSIGN_S3_ACCESS_KEY_ID 与 DOCSIGN_S3_SECRET_ACCESS_KEY。"
                ) from exc
            except BotoCoreError as exc:
                if not is_transient(exc):
                    raise ArchiveStoreError(f"访问归档存储（对象存储）失败：{exc}。请联系管理员检查配置。") from exc
                error = exc
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ArchiveUnavailable(
                    f"暂时无法连接归档存储（对象存储），已重试 {patience:g} 秒仍未恢复。已完成的工作不会丢失，"
                    "请稍后重试，工作会从中断处继续；如果持续出现，请联系管理员检查对象存储。"
                ) from error
            if self.on_retry is not None:
                self.on_retry(attempt, error)
            time.sleep(min(pause, remaining))  # the last try comes when the patience runs out
            pause = min(pause * 2, MAX_PAUSE)

    def _refused(self, exc: ClientError) -> Exception:
        code = _code(exc)
        if code == "NoSuchBucket":
            return ConfigurationError(
                f"对象存储中没有存储桶「{self.bucket}」：请先创建它，或检查 DOCSIGN_ARCHIVE_URL。"
            )
        if code in _ACCESS_CODES or _status(exc) == 403:
            return ConfigurationError(
                f"对象存储拒绝了访问（{code}）：请检查 DOCSIGN_S3_ACCESS_KEY_ID、DOCSIGN_S3_SECRET_ACCESS_KEY "
                f"及其对存储桶「{self.bucket}」的权限。"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return ArchiveStoreError(f"归档存储（对象存储）拒绝了请求（{code}：{message}），请联系管理员检查对象存储。")

    def _missing(self, sha256: str) -> ArchivedFileMissing:
        return ArchivedFileMissing(f"归档中没有摘要为 {sha256[:12]}… 的文件。")

    def _corrupt(self, sha256: str) -> ArchiveCorrupt:
        return ArchiveCorrupt(f"归档文件 {sha256[:12]}…{self.suffix} 与其摘要不符，可能已被改动。")

    # -- writing ----------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data)
        self._put_once(digest.hexdigest(), data, _b64(digest.digest()))
        return digest.hexdigest()

    def put_many(self, items: list[bytes]) -> list[str]:
        """One conditional PUT each: an object store has no folder to flush."""
        return [self.put(data) for data in items]

    def _put_once(self, sha256: str, data: bytes, checksum: str) -> None:
        key = self.key_for(sha256)

        def send() -> None:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ChecksumSHA256=checksum,
                ContentType=self._content_type,
                **self._encryption,
            )

        # only the expected 412: the key exists, so these bytes are stored (also when a retried
        # request's first try had landed)
        with contextlib.suppress(ClientError):
            self._call(send, expected=_PRECONDITION_CODES)

    def put_file(self, path: Path) -> str:
        if os.path.getsize(path) < MULTIPART_THRESHOLD:
            return self.put(Path(path).read_bytes())
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(BLOCK):
                digest.update(block)
        sha256 = digest.hexdigest()
        if not self.exists(sha256):  # a copy already stored costs no upload
            self._upload_parts(sha256, Path(path))
        return sha256

    def _upload_parts(self, sha256: str, path: Path) -> None:
        key = self.key_for(sha256)
        created = self._call(
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                ContentType=self._content_type,
                **self._encryption,
            )
        )
        upload_id = created["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while True:
                    chunk = fh.read(PART_SIZE)
                    if not chunk:
                        break
                    digest.update(chunk)
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, chunk))
                    del chunk  # one part in memory at a time, not two while the next is read
            if digest.hexdigest() != sha256:
                raise ArchiveFileChanged(f"文件 {path.name} 在归档过程中被改动，未归档；请在文件写完后重试。")
            complete = functools.partial(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
            try:
                self._call(complete, expected=_PRECONDITION_CODES | {"NoSuchUpload"})
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_CODES:
                    self._abort(key, upload_id)  # another writer of the same bytes won: parts not needed
                elif not self.exists(sha256):  # NoSuchUpload is fine only after a completion that landed
                    raise self._refused(exc) from exc
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> CompletedPartTypeDef:
        checksum = _b64(hashlib.sha256(chunk).digest())
        send = functools.partial(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": self._call(send)["ETag"], "ChecksumSHA256": checksum}

    def _abort(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload; if the store cannot be reached now, clean_incomplete will."""
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, sha256: str) -> bytes:
        key = self.key_for(sha256)

        def fetch() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        try:
            data = self._call(fetch, expected=_MISSING_CODES)
        except ClientError:
            raise self._missing(sha256) from None
        if sha256_hex(data) != sha256:
            raise self._corrupt(sha256)
        return data

    def stream(self, sha256: str) -> Iterator[bytes]:
        key = self.key_for(sha256)
        try:
            first = self._call(lambda: self.client.get_object(Bucket=self.bucket, Key=key), expected=_MISSING_CODES)
        except ClientError:
            raise self._missing(sha256) from None
        return self._blocks(sha256, key, first["Body"], first["ETag"])

    def _blocks(self, sha256: str, key: str, body: Any, etag: str) -> Iterator[bytes]:
        """The body in blocks, resumed with a ranged GET of the same object if the connection drops."""
        digest = hashlib.sha256()
        offset = failures = 0
        stalled_since: float | None = None
        try:
            while True:
                try:
                    block = body.read(BLOCK)
                except (HTTPClientError, IncompleteReadError, BotoConnectionError) as exc:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    failures += 1
                    if now - stalled_since > patience_now(self.patience):
                        raise ArchiveUnavailable() from exc
                    if self.on_retry is not None:
                        self.on_retry(failures, exc)
                    body.close()
                    time.sleep(FIRST_PAUSE)
                    body = self._resume(sha256, key, offset, etag)
                    continue
                if not block:
                    break
                stalled_since, failures = None, 0
                digest.update(block)
                offset += len(block)
                yield block
        finally:
            body.close()
        if digest.hexdigest() != sha256:
            raise self._corrupt(sha256)

    def _resume(self, sha256: str, key: str, offset: int, etag: str) -> Any:
        fetch = functools.partial(
            self.client.get_object, Bucket=self.bucket, Key=key, Range=f"bytes={offset}-", IfMatch=etag
        )
        try:
            return self._call(fetch, expected=_MISSING_CODES | _PRECONDITION_CODES)["Body"]
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_CODES:  # replaced while we read it: not what was stored
                raise self._corrupt(sha256) from exc
            raise self._missing(sha256) from exc

    @contextlib.contextmanager
    def local_path(self, sha256: str) -> Iterator[Path]:
        blocks = self.stream(sha256)
        # a folder of this process (0700), removed on exit or by the next start if it dies first
        with temp_dir(self.tmp_dir, "archive") as folder:
            path = folder / f"{sha256}{self.suffix}"
            with open(path, "wb") as out:
                for block in blocks:
                    out.write(block)
            yield path

    def check_ready(self) -> str | None:
        """The bucket answers (one call, with botocore's few quick retries and none of ours)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return f"对象存储拒绝访问存储桶 {self.bucket}（{_code(exc)}）：请检查存储桶与访问密钥。"
        except Exception as exc:  # connection refused, timeout, DNS
            return f"无法连接对象存储（{type(exc).__name__}）：请检查对象存储是否在运行。"
        return None

    def exists(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        try:
            self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key), expected=_MISSING_CODES)
        except ClientError:
            return False
        return True

    # -- recovery ---------------------------------------------------------------------------------

    def delete(self, sha256: str) -> None:
        key = self.key_for(sha256)
        with contextlib.suppress(ClientError):  # only the expected "no such key"
            self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key), expected=_MISSING_CODES)

    def keys(self) -> Iterator[str]:
        """Every stored digest in key order; a listing interrupted by an outage goes on after the
        last key it returned."""
        after = ""
        while True:
            listing = functools.partial(
                self.client.list_objects_v2, Bucket=self.bucket, Prefix=self.prefix, MaxKeys=self.list_page
            )
            page = self._call(functools.partial(listing, StartAfter=after) if after else listing)
            contents = page.get("Contents", [])
            for item in contents:
                after = item["Key"]
                rest = after[len(self.prefix) :]
                if not rest.endswith(self.suffix):
                    continue
                match = _KEY.fullmatch(rest[: len(rest) - len(self.suffix)])
                if match:
                    yield match.group(3)
            if not page.get("IsTruncated") or not contents:
                return

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def clean_incomplete(self, older_than: dt.timedelta) -> int:
        """Abort multipart uploads under this prefix begun more than ``older_than`` ago."""
        cutoff = self.now() - older_than
        removed = 0
        key_marker = upload_marker = ""
        while True:
            page = self._call(
                functools.partial(
                    self.client.list_multipart_uploads,
                    Bucket=self.bucket,
                    Prefix=self.prefix,
                    MaxUploads=self.list_page,
                    KeyMarker=key_marker,
                    UploadIdMarker=upload_marker,
                )
            )
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    abort = functools.partial(
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    try:
                        self._call(abort, expected=frozenset({"NoSuchUpload"}))
                    except ClientError:
                        continue  # finished or aborted meanwhile
                    removed += 1
            if not page.get("IsTruncated"):
                return removed
            key_marker = page.get("NextKeyMarker", "")
            upload_marker = page.get("NextUploadIdMarker", "")
