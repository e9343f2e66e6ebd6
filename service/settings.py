"""Typed settings, read once and passed in (never read from the environment at import time).

Every value has a default that makes the embedded profile (SQLite, local archive folder, local
PKI, in-process workers) work with no configuration at all. Environment variables use the
``DOCSIGN_`` prefix, for example ``DOCSIGN_PUBLIC_BASE_URL``.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigurationError

#: The project root of a source checkout: templates/ and schemas/ live there.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: A placeholder passphrase that only development may use; production refuses it.
DEVELOPMENT_PASSPHRASE = "development-only-passphrase"


def _default_soffice() -> str:
    return shutil.which("soffice") or "/usr/lib/libreoffice/program/soffice"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCSIGN_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"

    # Where things live. Relative paths are taken from the working directory.
    data_dir: Path = Path("var")
    certs_dir: Path = Path("certs")
    templates_dir: Path = PROJECT_ROOT / "templates"
    schemas_dir: Path = PROJECT_ROOT / "schemas"

    #: The address printed in every QR code: ``{public_base_url}/v/{code}``.
    public_base_url: str = "http://localhost:8000"

    # Local PKI.
    pki_passphrase: SecretStr = SecretStr(DEVELOPMENT_PASSPHRASE)
    #: Name of the local root CA, printed in every certificate chain.
    pki_organization: str = "控辍保学文书服务本地证书中心"
    #: An RFC 3161 time-stamping service; empty means the local TSA in certs/.
    tsa_url: str = ""

    # LibreOffice.
    soffice_path: str = Field(default_factory=_default_soffice)
    #: Debian's interpreter, the only one that can import LibreOffice's ``uno`` module.
    uno_python: str = "/usr/bin/python3"
    #: Warm soffice processes kept for conversion.
    converter_processes: int = Field(default=1, ge=1, le=16)
    #: Seconds one conversion may take before soffice is killed and restarted.
    conversion_timeout: float = Field(default=120.0, gt=0)
    #: Seconds soffice may take to start.
    converter_startup_timeout: float = Field(default=60.0, gt=0)
    #: soffice is restarted between conversions once its resident memory passes this (MB); 0 never.
    converter_max_mb: int = Field(default=1024, ge=0)
    #: Documents rendered into one DOCX and converted by one soffice call in a batch.
    merge_chunk_size: int = Field(default=100, ge=1, le=2000)
    #: Processes that stamp and sign the documents of a large batch in parallel; 0 signs in this
    #: process, empty means one per CPU core.
    sign_workers: int | None = Field(default=None, ge=0, le=64)
    #: A batch smaller than this is signed in this process (starting workers costs about a second).
    sign_pool_threshold: int = Field(default=24, ge=1)

    #: Archive timestamps are added this many days before a document's newest timestamp stops
    #: protecting it (its TSA's chain expires, or its algorithms weaken).
    archive_timestamp_margin_days: int = Field(default=365, ge=30, le=3650)

    #: Where the archive lives: empty for ``{data_dir}/archive``, ``file:///path``, or an object
    #: store bucket ``s3://bucket[/prefix]`` (the scale-out profile; the three stores are the
    #: prefixes documents/, reports/ and files/ in it).
    archive_url: str = ""
    #: The object store's address, e.g. ``http://127.0.0.1:8333`` for SeaweedFS; empty for AWS S3.
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    #: Empty key and secret use boto3's own credential chain (environment, instance profile).
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")
    #: Seconds the archive keeps retrying while the object store cannot be reached (a restart, a
    #: failover) before the work stops with ARCHIVE_UNAVAILABLE.
    s3_retry_seconds: float = Field(default=60.0, gt=0)

    # Database: SQLite in data_dir by default; PostgreSQL by URL, e.g.
    # postgresql+psycopg://user:password@host/dbname
    database_url: str = ""
    #: Deadlines are set and shown in this time zone.
    timezone: str = "Asia/Shanghai"

    # Web and API.
    #: Sessions last this long after the last login.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    #: Mark the session cookie Secure (serve over HTTPS in production).
    secure_cookies: bool = False
    #: Public verification lookups allowed per client per minute.
    verify_rate_per_minute: int = Field(default=60, ge=1)
    #: Login attempts allowed per client per minute.
    login_rate_per_minute: int = Field(default=20, ge=1)
    #: PDF uploads to the public verify page allowed per client per minute (each may be parsed).
    upload_rate_per_minute: int = Field(default=10, ge=1)
    #: Processes that check uploaded PDFs not in the archive, each under the limits below.
    upload_check_processes: int = Field(default=1, ge=1, le=8)
    #: CPU seconds one upload check may use before its process is killed.
    upload_cpu_seconds: int = Field(default=5, ge=1, le=120)
    #: Revisions and signatures an uploaded PDF may have (ours have a few; checks cost their square).
    upload_max_revisions: int = Field(default=32, ge=2, le=1000)
    upload_max_signatures: int = Field(default=12, ge=1, le=200)
    #: Largest PDF accepted for upload (verification, signing).
    max_pdf_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    #: Largest spreadsheet accepted for import.
    max_sheet_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: Largest drawn signature or seal image.
    max_image_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    #: Trust X-Forwarded-For for the client address (only behind a reverse proxy you control).
    trust_proxy_headers: bool = False
    #: Background jobs (issuing a campaign) run in this many threads of the server process.
    job_workers: int = Field(default=2, ge=1, le=32)
    #: Seconds a running job's claim holds without renewal; the runner renews it three times as
    #: often. A job whose process died is resumed by another process after this long.
    job_lease_seconds: float = Field(default=60.0, ge=1)
    #: Seconds between two looks for queued work (a new job is started at once anyway).
    job_poll_seconds: float = Field(default=2.0, gt=0)

    # The scale-out profile.
    #: A Celery broker, e.g. ``redis://127.0.0.1:6379/0``: background jobs then run in Celery
    #: workers (``docsign worker``) instead of this process's threads, and rate limits are kept in
    #: that Redis (shared by every web process). Empty: the embedded runner and in-process limits.
    broker_url: str = ""
    #: Where the rate limits are counted; empty means the broker's Redis.
    rate_limit_url: str = ""
    #: Seconds before the broker hands a task of a vanished worker to another one; it must exceed
    #: the longest slice (one merged conversion's worth of documents takes well under a minute).
    celery_visibility_timeout: int = Field(default=3600, ge=60)
    #: Seconds between two runs of beat's tick (due schedules enqueued, lost work sent again).
    celery_tick_seconds: float = Field(default=30.0, ge=1)
    #: Worker processes started by ``docsign worker`` (each with its own LibreOffice).
    celery_concurrency: int = Field(default=2, ge=1, le=64)

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production" and self.pki_passphrase.get_secret_value() in (
            "",
            DEVELOPMENT_PASSPHRASE,
        ):
            raise ValueError("DOCSIGN_PKI_PASSPHRASE must be set to a real secret in production")
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    @property
    def scale_out(self) -> bool:
        """Whether jobs run in Celery workers (a broker is configured)."""
        return bool(self.broker_url)

    @property
    def database(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'docsign.sqlite3').as_posix()}"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def temp_dir(self) -> Path:
        """Temporary folders of running processes (removed at the next start if a process died)."""
        return self.work_dir / "tmp"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(f"配置无效：{exc}") from exc
