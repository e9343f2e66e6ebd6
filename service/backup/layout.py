"""What a backup folder holds, and what both directions share.

::

    backup.json       plain: format, id, time, how the key is derived, a passphrase check
    manifest.sealed   the manifest (JSON): version, time, schema revision, row counts, settings,
                      every file's SHA-256 and every archived file's key
    database.sealed   the database: a SQLite file, or pg_dump's custom format
    files.sealed      a tar stream: secrets/ (the service key), certs/ (the PKI as it is, keys
                      still encrypted with DOCSIGN_PKI_PASSPHRASE), keys/ (the keyring: master
                      keys and keyring.json, which the sealed database fields and archived files
                      need), objects/<store>/<sha256>

``backup.json`` is written last: a folder without it is an unfinished backup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.archive.service import merge_file_columns
from service.backup.errors import BackupTampered
from service.backup.sealed import BackupKey, Kdf, open_bytes
from service.container import FILE_COLUMNS
from service.settings import Settings

FORMAT = "docsign-backup"
VERSION = 1
HEADER = "backup.json"
MANIFEST = "manifest.sealed"
DATABASE = "database.sealed"
FILES = "files.sealed"
#: The service's key (audit and access chains, CSRF tokens, sealed TOTP secrets) inside ``files``.
SECRET_MEMBER = "secrets/secret.key"
CERTS_PREFIX = "certs/"
#: The keyring's folder (``DOCSIGN_KEYS_DIR``), before the objects so a restore has it first.
KEYS_PREFIX = "keys/"
OBJECTS_PREFIX = "objects/"
#: Files of ``certs/`` that belong to the running machine, not to the PKI.
CERTS_LOCAL = frozenset({".lock", "README.md"})

#: Told how the work goes: ``progress(step, done, total)``; ``total`` 0 while unknown.
Progress = Callable[[str, int, int], None]


def no_progress(step: str, done: int, total: int) -> None:
    return None


def file_columns() -> dict[str, list[Any]]:
    """Every column that names an archived file, by store: what a backup must carry."""
    return merge_file_columns(FILE_COLUMNS)


def archive_is_local(settings: Settings) -> bool:
    return not settings.archive_url or settings.archive_url.startswith("file:")


def write_header(folder: Path, header: dict[str, Any]) -> None:
    path = folder / HEADER
    tmp = path.with_name(HEADER + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(header, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_header(folder: Path) -> dict[str, Any]:
    path = folder / HEADER
    if not folder.is_dir():
        raise BackupTampered(f"找不到备份目录 {folder}。", details={"path": str(folder)})
    if not path.is_file():
        raise BackupTampered(
            f"{folder} 中没有 {HEADER}：这不是 docsign 备份目录，或者备份没有完成（创建时被中断）；没有恢复任何内容。"
        )
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupTampered(f"{HEADER} 不是有效的 JSON，备份可能已被改动；没有恢复任何内容。") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupTampered(f"{HEADER} 不是 docsign 备份的头部；没有恢复任何内容。")
    if header.get("version") != VERSION:
        raise BackupTampered(f"备份格式版本 {header.get('version')} 无法识别：请用创建它的服务版本恢复。")
    return header


def unlock(folder: Path, secret: bytes) -> tuple[BackupKey, dict[str, Any]]:
    """The backup's key (the passphrase checked first) and its manifest, authenticated."""
    header = read_header(folder)
    kdf = header.get("kdf")
    if not isinstance(kdf, dict) or not isinstance(header.get("id"), str) or not isinstance(header.get("check"), str):
        raise BackupTampered(f"{HEADER} 不完整，备份可能已被改动；没有恢复任何内容。")
    key = BackupKey(secret, Kdf.from_dict(kdf), header["id"])
    key.check(header["check"])
    manifest = json.loads(open_bytes(key, folder / MANIFEST, MANIFEST))
    if manifest.get("id") != header["id"] or manifest.get("format") != FORMAT:
        raise BackupTampered("清单与备份头部不属于同一份备份；没有恢复任何内容。")
    return key, manifest
