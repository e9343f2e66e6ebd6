"""Typed settings, read once and passed in (never read from the environment at import time).

Every value has a default that makes the embedded profile (SQLite, local archive folder, local
PKI, in-process workers) work with no configuration at all. Environment variables use the
``DOCSIGN_`` prefix, for example ``DOCSIGN_PUBLIC_BASE_URL``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import secrets
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

#: The fewest PBKDF2-HMAC-SHA256 rounds production accepts for key files (OWASP, 2023); the same
#: figure as :data:`service.pki.keys.KDF_ROUNDS`, which settings cannot import.
PKI_KDF_ROUNDS = 600_000

#: Words that mark a value copied from an example rather than chosen; production refuses them.
PLACEHOLDERS = ("change-me", "changeme", "change_me", "placeholder", "example", "xxxx", "your-", "todo")


#: The least estimated strength (bits) production accepts for the PKI passphrase and the secret key.
PASSPHRASE_BITS = 72
SECRET_KEY_BITS = 128


def strength_bits(text: str) -> float:
    """A conservative estimate of how hard ``text`` is to guess, in bits.

    Each new character is worth log2 of the alphabet its classes span (digits, lower case, upper
    case, symbols, other scripts); one that goes on a run of its neighbour (``abc``, ``321``, ``aaa``)
    is worth one bit, and a stretch of three or more characters seen earlier (``bureau-bureau``)
    is worth eight bits, whatever its length. Length alone earns nothing: forty ``a`` or
    ``1234567890`` four times are weak."""
    text = text[:256]
    if not text:
        return 0.0
    pool = 0
    if any(c.isdigit() and c.isascii() for c in text):
        pool += 10
    if any(c.islower() and c.isascii() for c in text):
        pool += 26
    if any(c.isupper() and c.isascii() for c in text):
        pool += 26
    if any(c.isascii() and not c.isalnum() for c in text):
        pool += 33
    if any(not c.isascii() for c in text):
        pool += 3000  # common Chinese characters
    per = math.log2(pool)
    bits, i = 0.0, 0
    while i < len(text):
        # the longest stretch starting here that also starts earlier (it may run on into itself)
        longest = 0
        for length in range(len(text) - i, 2, -1):
            if 0 <= text.find(text[i : i + length], 0, i + length - 1) < i:
                longest = length
                break
        if longest:
            bits += 8
            i += longest
            continue
        bits += 1 if i and abs(ord(text[i]) - ord(text[i - 1])) <= 1 else per
        i += 1
    return bits


def _default_soffice() -> str:
    return shutil.which("soffice") or "/usr/lib/libreoffice/program/soffice"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCSIGN_", env_file=".env", extra="ignore")

    #: ``production`` unless told otherwise: it refuses to start with development keys or
    #: placeholder values. ``docsign serve --demo`` runs the demo district in ``development``.
    environment: Literal["development", "production"] = "production"

    #: The secret that keys the audit log's hash chain (HMAC-SHA256) and the forms' CSRF tokens.
    #: Keep it outside the database: a database writer without it cannot recompute the chain.
    #: Empty in development means a random key kept in ``{data_dir}/secret.key``.
    secret_key: SecretStr = SecretStr("")
    #: Or a file holding the secret (e.g. a mounted secret); used when ``secret_key`` is empty.
    secret_key_file: Path | None = None

    # Where things live. Relative paths are taken from the working directory where the settings are
    # read, and made absolute there (LibreOffice, worker processes and tools never see a relative one).
    data_dir: Path = Path("var")
    certs_dir: Path = Path("certs")
    templates_dir: Path = PROJECT_ROOT / "templates"
    schemas_dir: Path = PROJECT_ROOT / "schemas"

    #: The address printed in every QR code: ``{public_base_url}/v/{code}``.
    public_base_url: str = "http://localhost:8000"

    # Local PKI.
    pki_passphrase: SecretStr = SecretStr(DEVELOPMENT_PASSPHRASE)
    #: PBKDF2-HMAC-SHA256 rounds of every key file the PKI writes; production refuses fewer than
    #: :data:`PKI_KDF_ROUNDS`, development may lower it (a test that makes many PKIs).
    pki_kdf_rounds: int = Field(default=PKI_KDF_ROUNDS, ge=1000)
    #: A PKCS#11 token for unit keys (``docsign pki issue-unit --token``): the module's path (e.g.
    #: ``/usr/lib/softhsm/libsofthsm2.so``, or a UKey vendor's library), the token's label, and the
    #: user PIN, given here or in a file (a mounted secret). Empty: keys live in files only.
    pkcs11_module: str = ""
    pkcs11_token: str = ""
    pkcs11_pin: SecretStr = SecretStr("")
    pkcs11_pin_file: Path | None = None
    #: Make the TSA's key in that token: a new PKI's, and from the TSA's next rollover on.
    pkcs11_tsa: bool = False
    #: Make the issuing CA's key in that token: a new PKI's (``docsign init``), and from the next
    #: issuing-CA rollover on (``docsign pki rollover``). The root's key stays a file (or offline).
    pkcs11_ca: bool = False
    #: Name of the local root CA, printed in every certificate chain.
    pki_organization: str = "控辍保学文书服务本地证书中心"
    #: An RFC 3161 time-stamping service; empty means the local TSA in certs/.
    tsa_url: str = ""
    #: Which implementation makes the signatures (``service/documents/engines.py``): ``fast``, the
    #: service's own certification and TSA tokens (about 7 CPU-ms less a document), or
    #: ``pyhanko``, pyHanko's own signer, timestamper and document timestamper, the reference the
    #: fast one is tested against (a way back if a validator ever objects to the fast one).
    signing_engine: Literal["fast", "pyhanko"] = "fast"

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
    #: The same while a person waits for an answer (a download, a page): a request hears of an
    #: outage after this long (503 ARCHIVE_UNAVAILABLE) instead of waiting the whole retry time.
    s3_request_retry_seconds: float = Field(default=5.0, gt=0)
    #: Ask the object store to encrypt every object it keeps (``ServerSideEncryption: AES256``,
    #: SSE-S3: the store holds the key). SeaweedFS, MinIO (with a KMS) and every cloud S3 do; turn
    #: it off only for a store that refuses the header.
    s3_server_side_encryption: bool = True

    # Encryption at rest (``service/crypto``).
    #: Where the master keys and the wrapped data keys live (``keyring.json``, ``master-*.key``, an
    #: owner-only folder made by ``docsign init``); empty for ``{data_dir}/keys``. Point it at a
    #: volume other than the database's and the archive's so a copy of one is not a copy of both.
    #: Production accepts the generated keys: they are random, created 0600 in a 0700 folder, and
    #: refused if the mode is ever widened (KEY_FILE_EXPOSED); back the folder up apart.
    keys_dir: Path | None = None
    #: The cipher new values and files are sealed with; both stay readable whatever is chosen later.
    #: ``sm4-gcm`` (GB/T 32907) for a system assessed under GB/T 39786 (密评).
    cipher: Literal["aes-256-gcm", "sm4-gcm"] = "aes-256-gcm"
    #: Seal the files of a local archive (signed documents, reports, case files) and the cached page
    #: images; files written before stay readable (``docsign keys encrypt-archive`` seals them).
    archive_encryption: bool = True

    # Database: SQLite in data_dir by default; PostgreSQL by URL, e.g.
    # postgresql+psycopg://user:password@host/dbname
    database_url: str = ""
    #: Deadlines are set and shown in this time zone.
    timezone: str = "Asia/Shanghai"

    # Web and API.
    #: A browser session ends this long after its login, however busy (the absolute lifetime);
    #: production accepts at most 12.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    #: A browser session ends after this many minutes without a request (the idle timeout, enforced
    #: on the server); production accepts at most 60.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: An activation link (a new account, or one an administrator reset) works this many hours.
    activation_hours: int = Field(default=72, ge=1, le=24 * 14)
    #: Mark the session cookie Secure and name it with the ``__Host-`` prefix. Empty: on in
    #: production when ``public_base_url`` is https, off otherwise.
    secure_cookies: bool | None = None
    #: Public verification lookups allowed per client per minute.
    verify_rate_per_minute: int = Field(default=60, ge=1)
    #: Login attempts allowed per client per minute (in this process).
    login_rate_per_minute: int = Field(default=20, ge=1)
    #: Failed logins (wrong password or code) of one account from one client before each further
    #: try waits, 2 seconds after the next failure, doubling with each one up to the maximum below.
    #: Only that client waits: the account's holder elsewhere is never locked out.
    login_failures_before_backoff: int = Field(default=3, ge=1, le=100)
    login_backoff_max_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: Failed logins from one client (against any accounts) after which it waits the window below;
    #: counted in the database, so shared by every server process.
    login_failures_per_client: int = Field(default=30, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: Every account (bureau and office staff, unit signers) must sign in with a TOTP code as well.
    #: Empty: on in production, where it cannot be switched off; off in development (the demo).
    require_totp: bool | None = None
    #: The older name of ``require_totp`` (it covered staff only); still read, and held to the same rule.
    require_staff_totp: bool | None = None
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
    #: Accounts nobody has signed in to for this many days are disabled by a daily job (0: never).
    account_dormant_days: int = Field(default=90, ge=0, le=3650)
    #: The reverse proxies in front of the service, as addresses or networks, comma-separated
    #: (``127.0.0.1,10.0.8.0/24``): only a request from one of them has its X-Forwarded-For
    #: believed, and the client is the right-most address in it that is not one of them.
    trusted_proxies: str = ""
    #: The older switch: true trusts a proxy on this machine (127.0.0.1, ::1) when
    #: ``trusted_proxies`` is empty.
    trust_proxy_headers: bool = False
    #: Background jobs (issuing a campaign) run in this many threads of the server process.
    job_workers: int = Field(default=2, ge=1, le=32)
    #: Seconds a running job's claim holds without renewal; the runner renews it three times as
    #: often. A job whose process died is resumed by another process after this long.
    job_lease_seconds: float = Field(default=60.0, ge=1)
    #: Seconds between two looks for queued work (a new job is started at once anyway).
    job_poll_seconds: float = Field(default=2.0, gt=0)

    #: The bearer token a monitoring system shows to read ``/metrics``; empty: only from this machine.
    metrics_token: SecretStr = SecretStr("")

    # Retention (个人信息保护法 art. 19 and 47: kept no longer than the purpose needs). A daily job
    # anonymises what is due and records it (``docsign data retention --dry-run`` shows what would go).
    #: A closed case's personal data (and its files and signed documents) is removed this many years
    #: after the later of its closing and the end of the child's compulsory-education age (8月31日 of
    #: the year the child turns 16): long enough for the next years' checks (四查三比对, 督导).
    retention_case_years: int = Field(default=3, ge=1, le=30)
    #: A roster's entries, their receipts, notices and print files are removed this many days after
    #: the school year of the roster's issue date ends (8月31日): the receipts serve that year's
    #: 报到 checks and the next term's comparison.
    retention_roster_days: int = Field(default=365, ge=30, le=3650)
    #: A row of the 适龄儿童台账 is anonymised this many years after the child's compulsory-education
    #: age ends (the intake year plus nine years when the birth date is unknown).
    retention_children_years: int = Field(default=3, ge=1, le=30)
    #: Cached page images of documents (the signing page's previews) are deleted after this many days.
    retention_page_cache_days: int = Field(default=7, ge=1, le=365)

    # Notices out (service/notify): reminders, escalation and 催办 by e-mail, group robots and SMS.
    #: The mail server, e.g. ``smtp://user:pass@smtp.example.cn:465?tls=1`` (``?starttls=1`` on 587);
    #: empty: no e-mail.
    smtp_url: SecretStr = SecretStr("")
    #: The From address of notices (e-mail is off without it) and the name shown with it.
    mail_from: str = ""
    mail_from_name: str = "控辍保学文书签署平台"
    #: 阿里云 短信服务 (dysmsapi): the endpoint (a local stand-in in tests), the AccessKey, the approved
    #: 签名 and the template whose parameters are ``unit``, ``task`` and ``deadline``. SMS is off
    #: until the key, the 签名 and the template are all set.
    sms_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    sms_access_key_id: str = ""
    sms_access_key_secret: SecretStr = SecretStr("")
    sms_sign_name: str = ""
    sms_template_code: str = ""
    sms_region: str = "cn-hangzhou"
    #: Seconds to wait for a mail server, a robot or the SMS provider.
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: Reminders this many days before a deadline, to the units that have not signed.
    notify_remind_days: list[int] = Field(default=[3, 1])
    #: Quiet hours in Beijing time: no SMS or robot message from ``start`` to ``end`` unless urgent.
    notify_quiet_start: int = Field(default=22, ge=0, le=23)
    notify_quiet_end: int = Field(default=7, ge=0, le=23)
    #: 企业微信 and 钉钉 robots take at most 20 messages a minute each.
    notify_robot_per_minute: int = Field(default=20, ge=1, le=20)
    #: One unit gets one digest instead of separate messages when at least this many are due at once.
    notify_digest_threshold: int = Field(default=3, ge=2)
    #: Failed logins of one account since its last good one after which its unit is told (once a
    #: streak): someone may be guessing a principal's password.
    notify_failed_logins: int = Field(default=5, ge=3, le=100)
    #: Attempts of one message before it is marked failed (back-off doubling from one minute).
    notify_max_attempts: int = Field(default=6, ge=1, le=20)
    #: A bureau's 催办 of one unit for one campaign at most this often.
    notify_urge_minutes: int = Field(default=60, ge=1)
    #: The delivery log forgets a message's address (e-mail, mobile, robot) this many days after it
    #: was queued; the masked form and the rest of the row stay.
    notify_log_days: int = Field(default=180, ge=7, le=3650)

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
    #: Workers publish Celery's task events (received, started, succeeded, failed), so ``celery
    #: events``, Flower or an exporter can watch them; off only where the broker's traffic matters.
    celery_task_events: bool = True
    #: Worker processes started by ``docsign worker`` (each with its own LibreOffice).
    celery_concurrency: int = Field(default=2, ge=1, le=64)

    @model_validator(mode="after")
    def _tidy(self) -> Settings:
        self.public_base_url = self.public_base_url.rstrip("/")
        for name in ("data_dir", "certs_dir", "templates_dir", "schemas_dir", "secret_key_file", "keys_dir"):
            if (path := getattr(self, name)) is not None:
                setattr(self, name, _absolute(path))
        if self.archive_url.startswith("file:"):
            local = self.archive_url.removeprefix("file://").removeprefix("file:")
            self.archive_url = "file://" + _absolute(Path(local)).as_posix()
        for item in filter(None, (p.strip() for p in self.trusted_proxies.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"DOCSIGN_TRUSTED_PROXIES 中的“{item}”不是 IP 地址或网段（例如 127.0.0.1 或 10.0.8.0/24）"
                ) from None
        return self

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted reverse proxies (none: X-Forwarded-For is never believed)."""
        items = [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]
        if not items and self.trust_proxy_headers:
            items = ["127.0.0.1", "::1"]
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)

    @property
    def scale_out(self) -> bool:
        """Whether jobs run in Celery workers (a broker is configured)."""
        return bool(self.broker_url)

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def totp_required(self) -> bool:
        """Whether every account signs in with a second factor."""
        for chosen in (self.require_totp, self.require_staff_totp):
            if chosen is not None:
                return chosen
        return self.production

    @property
    def cookies_secure(self) -> bool:
        """Whether cookies are Secure (and the session cookie ``__Host-`` prefixed)."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.production and self.public_base_url.startswith("https://")

    def production_problems(self) -> list[str]:
        """What keeps these settings from running in production, in Chinese, naming each setting."""
        problems = []
        passphrase = self.pki_passphrase.get_secret_value()
        if passphrase in ("", DEVELOPMENT_PASSPHRASE):
            problems.append("DOCSIGN_PKI_PASSPHRASE（私钥口令）未设置，或仍是开发用口令")
        elif _placeholder(passphrase):
            problems.append("DOCSIGN_PKI_PASSPHRASE（私钥口令）是示例值")
        elif (bits := strength_bits(passphrase)) < PASSPHRASE_BITS:
            problems.append(
                f"DOCSIGN_PKI_PASSPHRASE（私钥口令）太容易猜到：估计约 {bits:.0f} 位，至少需要 {PASSPHRASE_BITS} 位"
                "（例如 16 个以上随机字母数字，或 6 个以上随机词语）"
            )
        if self.pki_kdf_rounds < PKI_KDF_ROUNDS:
            problems.append(f"DOCSIGN_PKI_KDF_ROUNDS（私钥文件的口令派生轮数）不能少于 {PKI_KDF_ROUNDS}")
        secret = self._configured_secret()
        if secret is None:
            problems.append("DOCSIGN_SECRET_KEY 或 DOCSIGN_SECRET_KEY_FILE（审计日志与表单令牌的密钥）未设置")
        elif _placeholder(secret):
            problems.append("DOCSIGN_SECRET_KEY（审计日志与表单令牌的密钥）是示例值")
        elif (bits := strength_bits(secret)) < SECRET_KEY_BITS:
            problems.append(
                f"DOCSIGN_SECRET_KEY（审计日志与表单令牌的密钥）太容易猜到：估计约 {bits:.0f} 位，至少需要 "
                f"{SECRET_KEY_BITS} 位（用 `openssl rand -hex 32` 生成）"
            )
        host = self.public_base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if host in ("localhost", "127.0.0.1", "0.0.0.0", "") or _placeholder(self.public_base_url):
            problems.append("DOCSIGN_PUBLIC_BASE_URL（二维码中的验真网址）仍是本机地址或示例值")
        elif not self.public_base_url.startswith("https://"):
            problems.append("DOCSIGN_PUBLIC_BASE_URL（二维码中的验真网址）应以 https:// 开头")
        if self.secure_cookies is False:
            problems.append("DOCSIGN_SECURE_COOKIES 在生产环境不能为 false（须通过 HTTPS 提供服务）")
        if not self.totp_required:
            name = "DOCSIGN_REQUIRE_TOTP" if self.require_totp is not None else "DOCSIGN_REQUIRE_STAFF_TOTP"
            problems.append(f"{name}（所有账号登录须用动态口令）在生产环境不能关闭")
        if self.session_hours > 12:
            problems.append("DOCSIGN_SESSION_HOURS（登录会话的最长时间）在生产环境不能超过 12 小时")
        if self.session_idle_minutes > 60:
            problems.append("DOCSIGN_SESSION_IDLE_MINUTES（无操作自动退出的时间）在生产环境不能超过 60 分钟")
        if self.s3_secret_access_key.get_secret_value() and _placeholder(self.s3_secret_access_key.get_secret_value()):
            problems.append("DOCSIGN_S3_SECRET_ACCESS_KEY 是示例值")
        return problems

    def check_ready(self) -> None:
        """Refuse to run in production with development keys, missing secrets or placeholders."""
        if not self.production:
            return
        problems = self.production_problems()
        if problems:
            raise ConfigurationError(
                "生产环境（DOCSIGN_ENVIRONMENT=production，默认）不能以当前配置启动：\n  - "
                + "\n  - ".join(problems)
                + "\n请设置以上各项后重试；只是试用请运行 docsign serve --demo（演示区县，开发环境）。",
                details={"settings": [p.split("（")[0].split(" ")[0] for p in problems]},
            )

    def _configured_secret(self) -> str | None:
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        if self.secret_key_file is not None and self.secret_key_file.is_file():
            return self.secret_key_file.read_text().strip() or None
        return None

    def secret(self) -> bytes:
        """The key of the audit chain and the CSRF tokens. In development without one configured, a
        random key is made once in ``{data_dir}/secret.key`` (mode 0600)."""
        configured = self._configured_secret()
        if configured is not None:
            return configured.encode()
        if self.production:
            raise ConfigurationError("生产环境必须设置 DOCSIGN_SECRET_KEY 或 DOCSIGN_SECRET_KEY_FILE。")
        path = self.data_dir / "secret.key"
        if not path.exists():
            private_dir(self.data_dir)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    @property
    def database(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'docsign.sqlite3').as_posix()}"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def keys_folder(self) -> Path:
        """The owner-only folder of the master keys and the keyring (``service.crypto``)."""
        return self.keys_dir or self.data_dir / "keys"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def page_cache_dir(self) -> Path:
        """Page images of documents rendered for the signing page (removed by the retention job)."""
        return self.work_dir / "pages"

    @property
    def temp_dir(self) -> Path:
        """Temporary folders of running processes (removed at the next start if a process died)."""
        return self.work_dir / "tmp"


def private_dir(path: Path) -> Path:
    """The data folder (or one under it), created owner-only (0700), or made so: it holds the
    database of minors' personal data, the archive and the keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if path.stat().st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)
    return path


def _absolute(path: Path) -> Path:
    """``path`` from the working directory of the moment, without resolving links."""
    return Path(os.path.abspath(path.expanduser()))


def _placeholder(value: str) -> bool:
    low = value.lower()
    return any(p in low for p in PLACEHOLDERS)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(f"配置无效：{exc}") from exc
