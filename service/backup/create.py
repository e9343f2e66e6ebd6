"""``docsign backup create``: a consistent, encrypted backup of a running installation.

The database is snapshotted first (``database.py``); the archived files copied are exactly those
the snapshot's rows name, each checked against its SHA-256 on the way (files written after the
snapshot belong to rows the backup does not hold). With an object store the backup keeps a
pointer (the bucket's address) and the list of keys instead of the files. The PKI is copied under
its folder's lock, its keys as they are (encrypted with ``DOCSIGN_PKI_PASSPHRASE``); the keyring
(``DOCSIGN_KEYS_DIR``) under its own lock, sealed inside the backup like the service key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, BinaryIO

from service.backup import database
from service.backup.errors import BackupTargetExists
from service.backup.layout import (
    CERTS_LOCAL,
    CERTS_PREFIX,
    DATABASE,
    FILES,
    FORMAT,
    KEYS_PREFIX,
    MANIFEST,
    OBJECTS_PREFIX,
    SECRET_MEMBER,
    VERSION,
    Progress,
    archive_is_local,
    file_columns,
    no_progress,
    write_header,
)
from service.backup.sealed import BackupKey, Kdf, SealedWriter, seal_bytes
from service.crypto import keyring_for
from service.pki.files import CertsFolder
from service.settings import Settings
from service.storage import open_store
from service.storage.base import BLOCK, ArchiveCorrupt
from service.workdir import temp_dir

#: Settings a restore compares with its own (what the signed documents and the archive depend on).
KEPT_SETTINGS = (
    "public_base_url",
    "archive_url",
    "s3_endpoint_url",
    "s3_region",
    "pki_organization",
    "tsa_url",
    "timezone",
    "pkcs11_module",
    "pkcs11_token",
    "pkcs11_tsa",
    "pkcs11_ca",
)


@dataclass(frozen=True)
class BackupReport:
    folder: Path
    created_at: str
    revision: str
    counts: dict[str, int]
    #: Archived files copied (or, with an object store, listed), by store.
    objects: dict[str, int]
    objects_included: bool
    size: int


class _Hashing(io.RawIOBase):
    """Reads through to ``source`` and hashes what passes (tarfile reads the archived file)."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self.source = source
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.source.readinto(buffer)  # type: ignore[attr-defined]
        self.digest.update(memoryview(buffer)[:n])
        return int(n)


def _service_version() -> str:
    try:
        return version("docsign")
    except PackageNotFoundError:
        return "unknown"


def create_backup(
    settings: Settings,
    folder: Path,
    secret: bytes,
    *,
    now: dt.datetime | None = None,
    progress: Progress = no_progress,
) -> BackupReport:
    """Write a backup of the installation ``settings`` describe into ``folder`` (new or empty),
    encrypted with ``secret`` (a passphrase's or a key file's bytes). On any failure nothing of it
    is left in ``folder``."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupTargetExists(f"备份目录 {folder} 已存在且不是空的：请指定一个新的目录（不会覆盖已有的备份）。")
    created = not folder.exists()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return _write(settings, folder, secret, now or dt.datetime.now(dt.UTC), progress)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for child in folder.iterdir():
                child.unlink(missing_ok=True)
        raise


def _write(settings: Settings, folder: Path, secret: bytes, now: dt.datetime, progress: Progress) -> BackupReport:
    backup_id = secrets.token_hex(16)
    kdf = Kdf.new()
    progress("派生备份密钥", 0, 0)
    key = BackupKey(secret, kdf, backup_id)

    progress("备份数据库", 0, 0)
    with temp_dir(settings.temp_dir, "backup") as work:
        sink = SealedWriter(key, folder / DATABASE, DATABASE)
        try:
            snapshot = database.dump(settings, file_columns(), sink, work)
        except BaseException:
            sink.discard()
            raise
        sink.close()
    db_entry = {
        "dialect": snapshot.dialect,
        "format": snapshot.format,
        "revision": snapshot.revision,
        "counts": snapshot.counts,
        "sha256": sink.sha256,
        "size": sink.size,
    }

    local = archive_is_local(settings)
    files: dict[str, dict[str, Any]] = {}
    out = SealedWriter(key, folder / FILES, FILES)
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            service_key = settings.secret()
            _add_bytes(tar, SECRET_MEMBER, service_key, 0o600)
            files[SECRET_MEMBER] = {"sha256": hashlib.sha256(service_key).hexdigest(), "size": len(service_key)}
            files.update(_add_certs(tar, settings.certs_dir, progress))
            files.update(_add_keys(tar, settings, progress))
            if local:
                _add_objects(tar, settings, snapshot.objects, progress)
    except BaseException:
        out.discard()
        raise
    out.close()

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "id": backup_id,
        "created_at": now.isoformat(),
        "docsign": _service_version(),
        "database": db_entry,
        "archive": {
            "kind": "local" if local else "s3",
            "url": "" if local else settings.archive_url,
            "endpoint": "" if local else settings.s3_endpoint_url,
            "included": local,
            "objects": snapshot.objects,
        },
        "files": files,
        "members": {FILES: {"sha256": out.sha256, "size": out.size}},
        "settings": {name: getattr(settings, name) for name in KEPT_SETTINGS},
    }
    seal_bytes(key, folder / MANIFEST, MANIFEST, json.dumps(manifest, ensure_ascii=False).encode())
    write_header(
        folder,
        {
            "format": FORMAT,
            "version": VERSION,
            "id": backup_id,
            "created_at": now.isoformat(),
            "kdf": kdf.to_dict(),
            "check": key.check_value(),
            "note": "docsign 加密备份：用 docsign backup restore 恢复，需要创建备份时的口令或密钥文件。",
        },
    )
    size = sum(p.stat().st_size for p in folder.iterdir())
    return BackupReport(
        folder,
        now.isoformat(),
        snapshot.revision,
        snapshot.counts,
        {store: len(keys) for store, keys in snapshot.objects.items()},
        local,
        size,
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_certs(tar: tarfile.TarFile, certs: Path, progress: Progress) -> dict[str, dict[str, Any]]:
    """The PKI's files as they are, under its lock (no rollover or renewal half-copied)."""
    progress("备份证书与私钥", 0, 0)
    listed: dict[str, dict[str, Any]] = {}
    if not certs.is_dir():
        return listed
    with CertsFolder(certs).locked():
        for path in sorted(certs.rglob("*")):
            relative = path.relative_to(certs)
            if relative.parts[0] in CERTS_LOCAL or path.name.endswith(".tmp") or not path.is_file():
                continue
            data = path.read_bytes()
            name = CERTS_PREFIX + relative.as_posix()
            _add_bytes(tar, name, data, path.stat().st_mode & 0o777)
            listed[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return listed


def _add_keys(tar: tarfile.TarFile, settings: Settings, progress: Progress) -> dict[str, dict[str, Any]]:
    """The keyring (master keys and ``keyring.json``), read under its lock: without it the sealed
    fields of the database and the sealed archive cannot be read."""
    progress("备份加密密钥", 0, 0)
    listed: dict[str, dict[str, Any]] = {}
    for name, data in keyring_for(settings).files().items():
        _add_bytes(tar, KEYS_PREFIX + name, data, 0o600)
        listed[KEYS_PREFIX + name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return listed


def _add_objects(tar: tarfile.TarFile, settings: Settings, objects: dict[str, list[str]], progress: Progress) -> None:
    """Each archived file the snapshot names, checked against its SHA-256 as it is copied."""
    total = sum(len(keys) for keys in objects.values())
    done = 0
    progress("备份归档文件", 0, total)
    for store_name, keys in objects.items():
        store = open_store(settings, store_name)  # type: ignore[arg-type]
        for key in keys:
            with store.local_path(key) as path, open(path, "rb", buffering=BLOCK) as fh:
                info = tarfile.TarInfo(f"{OBJECTS_PREFIX}{store_name}/{key}")
                info.size, info.mode = os.fstat(fh.fileno()).st_size, 0o400
                hashing = _Hashing(fh)
                tar.addfile(info, hashing)
                if hashing.digest.hexdigest() != key:
                    raise ArchiveCorrupt(f"归档文件 {key[:12]}… 与其摘要不符，可能已被改动；备份未完成。请先核查归档。")
            done += 1
            progress("备份归档文件", done, total)
