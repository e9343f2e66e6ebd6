"""``docsign backup restore``: a backup into an empty installation, whole or not at all.

Everything is checked before anything is written: the passphrase, the manifest, the schema's
revision (not newer than this version knows), that the installation is empty (no table in the
database, no archived file, no PKI), that a configured service key is the backup's. Then the
database and the PKI are decrypted into a folder of this process and checked against the
manifest, and the archived files go into the archive as they stream by, each checked against its
SHA-256 (content-addressed: a stored file is right or absent). Only when every file of the backup
has opened are the PKI, the service key and the database put in place, the database last. A
failure at any point undoes what was put (files, PKI, key, database), so the installation is as
empty as it was.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import io
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.audit.access import verify_access_chain
from service.audit.service import ChainReport, verify_chain
from service.backup import database
from service.backup.errors import BackupFailed, BackupIncompatible, BackupTampered, BackupTargetNotEmpty
from service.backup.layout import (
    CERTS_LOCAL,
    CERTS_PREFIX,
    DATABASE,
    FILES,
    KEYS_PREFIX,
    OBJECTS_PREFIX,
    SECRET_MEMBER,
    Progress,
    archive_is_local,
    no_progress,
    unlock,
)
from service.backup.sealed import BackupKey, SealedReader
from service.crypto.keyring import KEYRING, write_private
from service.errors import DocsignError
from service.pki.keys import FileKeyStore
from service.settings import Settings, private_dir
from service.storage import open_store
from service.storage.base import BLOCK, STORE_NAMES, ArchiveStore, sha256_hex
from service.workdir import temp_dir

#: Archived files up to this size are restored in batches (one flush of the file system each);
#: larger ones (print files) go through a file of their own.
SMALL_FILE = 8 << 20
BATCH_BYTES = 64 << 20


@dataclass
class RestoreReport:
    created_at: str
    revision: str
    counts: dict[str, int]
    objects: dict[str, int]
    audit: ChainReport
    access: ChainReport
    #: Where the service key was written, when it was (None: the configured one is the backup's).
    secret_written: Path | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Undo:
    """What a restore has put in place so far, to take back on a failure."""

    steps: list[Callable[[], None]] = field(default_factory=list)

    def run(self) -> None:
        for step in reversed(self.steps):
            with contextlib.suppress(OSError):  # the rest is still undone; the error that failed the restore is raised
                step()


def restore_backup(
    settings: Settings, folder: Path, secret: bytes, *, progress: Progress = no_progress
) -> RestoreReport:
    """Restore the backup in ``folder`` (opened with ``secret``) into the empty installation that
    ``settings`` describe."""
    progress("校验口令与清单", 0, 0)
    key, manifest = unlock(folder, secret)
    db_entry, archive = manifest["database"], manifest["archive"]
    database.check_revision(db_entry["revision"])
    database.check_empty(settings, db_entry["dialect"])
    stores = _check_archive(settings, archive, progress)
    _check_certs_empty(settings.certs_dir)
    _check_keys_empty(settings.keys_folder)
    secret_path = _check_service_key(settings, manifest["files"][SECRET_MEMBER]["sha256"])

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    undo = _Undo()
    try:
        with temp_dir(settings.temp_dir, "restore") as work:
            progress("解密数据库", 0, 0)
            staged_db = work / "database"
            _decrypt_to(key, folder / DATABASE, DATABASE, staged_db, db_entry)
            staged_certs = work / "certs"
            service_key = _unpack_files(
                key, folder, manifest, staged_certs, settings.keys_folder, stores, undo, progress
            )
            progress("写入证书、密钥与数据库", 0, 0)
            _put_certs(staged_certs, settings.certs_dir, undo)
            if secret_path is not None:
                _write_secret(secret_path, service_key, undo)
            undo.steps.append(database.restore(settings, db_entry["dialect"], staged_db))
        with database.opened(settings) as engine:
            counts = database.count_rows(engine)
            if counts != db_entry["counts"]:
                wrong = sorted(t for t in counts if counts[t] != db_entry["counts"].get(t))
                raise BackupFailed(f"恢复后的数据库与清单不符（{'、'.join(wrong[:5])} 的行数不同）；已撤销恢复。")
            with Session(engine, info={"audit_key": service_key}) as session:
                audit, access = verify_chain(session), verify_access_chain(session)
    except BaseException:
        undo.run()
        raise
    warnings = _warnings(settings, manifest)
    for name, report in (("审计日志", audit), ("访问日志", access)):
        if not report.ok:
            warnings.append(f"{name}的哈希链在备份中就不完整：第 {report.first_bad_id} 号记录{report.reason}。")
    return RestoreReport(
        manifest["created_at"],
        db_entry["revision"],
        counts,
        {store: len(keys) for store, keys in archive["objects"].items()},
        audit,
        access,
        secret_path,
        warnings,
    )


# -- checks before anything is written ------------------------------------------------------------


def _check_archive(settings: Settings, archive: dict[str, Any], progress: Progress) -> dict[str, ArchiveStore]:
    """The target's stores: empty local folders (the backup holds the files), or, for a backup
    of an object store, an object store that holds every file the backup names."""
    stores: dict[str, ArchiveStore] = {name: open_store(settings, name) for name in STORE_NAMES}
    objects: dict[str, list[str]] = archive["objects"]
    if archive["included"]:
        if archive_is_local(settings):
            for name, store in stores.items():
                if next(iter(store.keys()), None) is not None:
                    raise BackupTargetNotEmpty(
                        f"目标归档（{name}）中已有文件：只能恢复到全新的空安装中，没有恢复任何内容。"
                        "请换一个数据目录（DOCSIGN_DATA_DIR）或归档地址（DOCSIGN_ARCHIVE_URL）后重试。"
                    )
        return stores
    if archive_is_local(settings):
        raise BackupIncompatible(
            f"备份时归档保存在对象存储 {archive['url']}（地址 {archive['endpoint'] or 'AWS S3'}），备份中只有文件清单，"
            "没有文件本身：请把 DOCSIGN_ARCHIVE_URL 和 DOCSIGN_S3_* 设为该对象存储后再恢复。"
        )
    total, done, missing = sum(len(keys) for keys in objects.values()), 0, []
    progress("核对对象存储中的归档文件", 0, total)
    for name, keys in objects.items():
        for sha in keys:
            if not stores[name].exists(sha):  # type: ignore[index]
                missing.append(f"{name}/{sha}")
            done += 1
            progress("核对对象存储中的归档文件", done, total)
    if missing:
        raise BackupIncompatible(
            f"对象存储 {settings.archive_url} 中缺少备份清单列出的 {len(missing)} 个归档文件（例如 {missing[0]}）："
            "请确认 DOCSIGN_ARCHIVE_URL 指向备份时的存储桶；没有恢复任何内容。",
            details={"missing": missing[:100]},
        )
    return stores


def _check_certs_empty(certs: Path) -> None:
    present = sorted(p.name for p in certs.iterdir() if p.name not in CERTS_LOCAL) if certs.is_dir() else []
    if present:
        raise BackupTargetNotEmpty(
            f"证书目录 {certs} 中已有证书中心的文件（{'、'.join(present[:5])}）：只能恢复到全新的空安装中，没有恢复任何内容。"
            "请换一个证书目录（DOCSIGN_CERTS_DIR）后重试。"
        )


def _check_keys_empty(keys: Path) -> None:
    if (keys / KEYRING).exists() or any(keys.glob("master-*.key")):
        raise BackupTargetNotEmpty(
            f"{keys} 中已有加密密钥（另一个安装的）：只能恢复到全新的空安装中，没有恢复任何内容。"
        )


def _configured_key(settings: Settings) -> bytes | None:
    if settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    if settings.secret_key_file is not None and settings.secret_key_file.is_file():
        return settings.secret_key_file.read_text().strip().encode()
    return None


def _check_service_key(settings: Settings, backup_sha256: str) -> Path | None:
    """Where the backup's service key goes (None: the configured key is the backup's already).
    A different key configured here is refused: the audit chain, the access log and the sealed
    TOTP secrets would not open with it."""
    configured = _configured_key(settings)
    if configured is not None:
        if not hmac.compare_digest(hashlib.sha256(configured).hexdigest(), backup_sha256):
            raise BackupIncompatible(
                "本机配置的 DOCSIGN_SECRET_KEY（或 DOCSIGN_SECRET_KEY_FILE）与备份时的不同：用它打不开审计日志、访问日志和动态口令。"
                "请去掉该设置（恢复会写入备份中的密钥文件）或改回备份时的密钥后重试；没有恢复任何内容。"
            )
        return None
    path = settings.secret_key_file or settings.data_dir / "secret.key"
    if path.exists():
        raise BackupTargetNotEmpty(f"{path} 已存在（另一个安装的密钥）：只能恢复到全新的空安装中，没有恢复任何内容。")
    return path


# -- unpacking ------------------------------------------------------------------------------------


def _decrypt_to(key: BackupKey, source: Path, name: str, target: Path, entry: dict[str, Any]) -> None:
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with SealedReader(key, source, name) as reader, os.fdopen(fd, "wb") as out:
        while block := reader.read(BLOCK):
            digest.update(block)
            size += len(block)
            out.write(block)
    if digest.hexdigest() != entry["sha256"] or size != entry["size"]:
        raise BackupTampered(f"备份中的 {name} 与清单不符：备份已被改动或拼接；没有恢复任何内容。")


def _unpack_files(
    key: BackupKey,
    folder: Path,
    manifest: dict[str, Any],
    certs: Path,
    keys: Path,
    stores: dict[str, ArchiveStore],
    undo: _Undo,
    progress: Progress,
) -> bytes:
    """The service key (returned), the PKI (into ``certs``), the keyring (straight into ``keys``,
    0700 and 0600: it comes before the archived files, which a sealed store seals with it) and the
    archived files (into the stores, each checked against its key, each new one noted for the undo)."""
    listed: dict[str, dict[str, Any]] = manifest["files"]
    wanted = {(store, sha) for store, keys in manifest["archive"]["objects"].items() for sha in keys}
    expect_objects = manifest["archive"]["included"]
    total = len(wanted) if expect_objects else 0
    seen: set[str] = set()
    objects: set[tuple[str, str]] = set()
    batch: list[tuple[str, str, bytes]] = []
    service_key = b""

    def flush() -> None:
        for store_name in {s for s, _, _ in batch}:
            items = [(sha, data) for s, sha, data in batch if s == store_name]
            _put(stores[store_name], items, undo)
        batch.clear()

    reader = SealedReader(key, folder / FILES, FILES)
    counted = _Counting(reader)
    progress("恢复归档文件", 0, total)
    with reader, tarfile.open(fileobj=counted, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                raise BackupTampered(f"备份中有意外的条目 {member.name}；没有恢复任何内容。")
            fh = tar.extractfile(member)
            assert fh is not None
            if member.name.startswith(OBJECTS_PREFIX):
                store_name, _, sha = member.name.removeprefix(OBJECTS_PREFIX).partition("/")
                if (store_name, sha) not in wanted or (store_name, sha) in objects:
                    raise BackupTampered(f"备份中有清单之外的归档文件 {member.name}；没有恢复任何内容。")
                objects.add((store_name, sha))
                if member.size <= SMALL_FILE:
                    data = fh.read()
                    if sha256_hex(data) != sha:
                        raise BackupTampered(f"备份中的归档文件 {sha[:12]}… 与其摘要不符；没有恢复任何内容。")
                    batch.append((store_name, sha, data))
                    if sum(len(d) for _, _, d in batch) >= BATCH_BYTES:
                        flush()
                else:
                    _put_large(stores[store_name], sha, fh, certs.parent, undo)
                progress("恢复归档文件", len(objects), total)
                continue
            entry = listed.get(member.name)
            if entry is None or member.name in seen:
                raise BackupTampered(f"备份中有清单之外的文件 {member.name}；没有恢复任何内容。")
            seen.add(member.name)
            data = fh.read()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise BackupTampered(f"备份中的 {member.name} 与清单不符；没有恢复任何内容。")
            if member.name == SECRET_MEMBER:
                service_key = data
            elif member.name.startswith(CERTS_PREFIX):
                target = certs / member.name.removeprefix(CERTS_PREFIX)
                if ".." in Path(member.name).parts:
                    raise BackupTampered(f"备份中的路径 {member.name} 无效；没有恢复任何内容。")
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o777)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            elif member.name.startswith(KEYS_PREFIX):
                _put_key(keys, member.name.removeprefix(KEYS_PREFIX), data, undo)
            else:
                raise BackupTampered(f"备份中有意外的条目 {member.name}；没有恢复任何内容。")
        while counted.read(BLOCK):  # the rest of the stream (the tar's padding) is checked too
            pass
    flush()
    member = manifest["members"][FILES]
    if counted.digest.hexdigest() != member["sha256"] or counted.size != member["size"]:
        raise BackupTampered("备份中的 files.sealed 与清单不符：备份已被改动或拼接；没有恢复任何内容。")
    if seen != set(listed) or (expect_objects and objects != wanted):
        raise BackupTampered("备份不完整：清单列出的文件有缺失；没有恢复任何内容。")
    return service_key


class _Counting(io.RawIOBase):
    """Reads through to the sealed reader, hashing and counting (the plaintext of ``files``)."""

    def __init__(self, source: SealedReader) -> None:
        super().__init__()
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.source.readinto(buffer)
        self.digest.update(memoryview(buffer)[:n])
        self.size += n
        return n


def _put(store: ArchiveStore, items: list[tuple[str, bytes]], undo: _Undo) -> None:
    fresh = [(sha, data) for sha, data in items if not store.exists(sha)]
    undo.steps.extend(functools.partial(store.delete, sha) for sha, _ in fresh)
    store.put_many([data for _, data in fresh])


def _put_large(store: ArchiveStore, sha: str, source: Any, work: Path, undo: _Undo) -> None:
    if store.exists(sha):
        return
    tmp = work / "incoming"
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        while block := source.read(BLOCK):
            digest.update(block)
            out.write(block)
    try:
        if digest.hexdigest() != sha:
            raise BackupTampered(f"备份中的归档文件 {sha[:12]}… 与其摘要不符；没有恢复任何内容。")
        undo.steps.append(lambda: store.delete(sha))
        store.put_file(tmp)
    finally:
        tmp.unlink(missing_ok=True)


# -- putting in place -----------------------------------------------------------------------------


def _put_certs(staged: Path, certs: Path, undo: _Undo) -> None:
    if not staged.is_dir():
        return
    certs.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in sorted(staged.iterdir()):
        target = certs / entry.name
        if entry.name in CERTS_LOCAL and target.exists():
            continue
        shutil.move(entry, target)
        undo.steps.append(functools.partial(_remove, target))


def _put_key(keys: Path, name: str, data: bytes, undo: _Undo) -> None:
    if name != KEYRING and not (name.startswith("master-") and name.endswith(".key") and "/" not in name):
        raise BackupTampered(f"备份中的密钥文件 {name[:60]} 无效；没有恢复任何内容。")
    private_dir(keys)
    target = keys / name
    write_private(target, data, exclusive=True)
    undo.steps.append(functools.partial(_remove, target))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_secret(path: Path, key: bytes, undo: _Undo) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    undo.steps.append(lambda: path.unlink(missing_ok=True))
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())


# -- what the operator should know ----------------------------------------------------------------


def _warnings(settings: Settings, manifest: dict[str, Any]) -> list[str]:
    kept: dict[str, Any] = manifest.get("settings", {})
    warnings = []
    if kept.get("public_base_url") and kept["public_base_url"] != settings.public_base_url:
        warnings.append(
            f"备份时的验真网址是 {kept['public_base_url']}，本机配置的是 {settings.public_base_url}："
            "已签发文书二维码中的网址不会改变，请把 DOCSIGN_PUBLIC_BASE_URL 设回原网址（或让原网址指向本机）。"
        )
    if kept.get("pkcs11_token"):
        warnings.append(
            f"备份时部分私钥保存在 PKCS#11 令牌「{kept['pkcs11_token']}」中，它们不在备份里：请把该令牌接到本机，"
            "并设置 DOCSIGN_PKCS11_MODULE、DOCSIGN_PKCS11_TOKEN 和 PIN。"
        )
    keys = FileKeyStore(settings.certs_dir, settings.pki_passphrase.get_secret_value(), settings.pki_kdf_rounds)
    name = next(iter(keys.names()), None)
    if name is not None:
        try:
            keys.load(name)
        except DocsignError:
            warnings.append(
                "本机的 DOCSIGN_PKI_PASSPHRASE 打不开恢复的私钥：已签发的文书仍可验真，但签发新文书前请设置备份时的私钥口令。"
            )
    return warnings
