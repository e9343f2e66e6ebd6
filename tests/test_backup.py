"""Backups restored for real: one taken while a roster batch is being issued (SQLite, through the
command line), one of PostgreSQL (pg_dump), and the refusals (a wrong passphrase, a tampered file,
an installation that is not empty, another service key), each leaving the target as empty as it was."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from service.archive.models import Document, DocumentVersion
from service.archive.service import RecordAs
from service.audit.access import Read
from service.audit.service import Actor, record
from service.backup import create_backup, restore_backup
from service.backup.errors import BackupIncompatible, BackupPassphraseWrong, BackupTampered, BackupTargetNotEmpty
from service.backup.layout import FILES, unlock
from service.cases.models import Case
from service.cases.service import CaseIn, GuardianIn
from service.clock import Clock
from service.container import Services
from service.db.session import Database
from service.documents.convert import Converter
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.store import Pki
from service.rosters.models import RosterEntry
from service.settings import Settings
from service.storage import open_store
from service.storage.base import STORE_NAMES
from tests.conftest import TEST_KDF_ROUNDS
from tests.databases import postgres_database
from tests.district import load_district, scope_of, unit
from tests.rosters.roster_data import rows, xlsx

DOCSIGN = str(Path(sys.executable).with_name("docsign"))
PASSPHRASE = "backup-passphrase-of-the-tests"
SCHOOLS = ["WSR-SH", "WSR-XD", "HJL-XX", "SYXX"]
#: More than one commit's worth (``COMMIT_EVERY``, 25): the backup is taken once the first commit
#: is in, while the rest are still being converted.
COUNT = 45
CASE_ID = "370112201203070013"


def _documents_verify(settings: Settings) -> int:
    """Every document version in the database: its file in the archive, genuine by the PKI there."""
    db = Database(settings)
    engine = DocumentEngine(settings, pki=Pki.from_settings(settings))
    store = open_store(settings, "documents")
    try:
        with db.session() as s:
            current = [d.current_sha256 for d in s.scalars(select(Document))]
            versions = set(s.scalars(select(DocumentVersion.sha256)))
        assert set(current) <= versions
        for sha in current:
            report = engine.verify(store.get(sha))
            assert report.genuine, (sha, report)
        assert all(store.exists(sha) for sha in versions)
        return len(current)
    finally:
        engine.close()
        db.dispose()


def _is_empty(settings: Settings) -> None:
    """What a refused or undone restore must leave: no database, PKI, archived file or key."""
    assert not (settings.data_dir / "docsign.sqlite3").exists()
    assert not (settings.data_dir / "secret.key").exists()
    assert not (settings.keys_folder / "keyring.json").exists()
    assert not settings.certs_dir.exists() or not [p for p in settings.certs_dir.iterdir() if p.name != ".lock"]
    for name in STORE_NAMES:
        assert list(open_store(settings, name).keys()) == []


# --- a backup taken during a batch, through the command line ---------------------------------------


def test_a_backup_taken_while_a_batch_is_issued_restores_every_document_row_and_chain(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k != "DOCSIGN_SECRET_KEY"}  # the key kept in var/secret.key
    common = {
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_MERGE_CHUNK_SIZE": "3",
        "DOCSIGN_SIGN_WORKERS": "0",
        "DOCSIGN_BACKUP_PASSPHRASE": PASSPHRASE,
        "COLUMNS": "200",
    }
    source = {
        **base,
        **common,
        "DOCSIGN_DATA_DIR": str(tmp_path / "a/var"),
        "DOCSIGN_CERTS_DIR": str(tmp_path / "a/certs"),
    }
    target = {
        **base,
        **common,
        "DOCSIGN_DATA_DIR": str(tmp_path / "b/var"),
        "DOCSIGN_CERTS_DIR": str(tmp_path / "b/certs"),
    }

    def docsign(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCSIGN, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert docsign(source, "init").returncode == 0
    assert docsign(source, "demo").returncode == 0
    (tmp_path / "名单.xlsx").write_bytes(xlsx(rows(COUNT, SCHOOLS, seed=5)))
    imported = docsign(source, "roster", "import", "名单.xlsx", "--issuer", "LCJT", "--report-by", "2099-08-31")
    assert imported.returncode == 0, imported.stderr
    roster_id = re.search(r"已导入名单 (\d+)", imported.stdout).group(1)  # type: ignore[union-attr]

    source_settings = Settings(
        data_dir=tmp_path / "a/var",
        certs_dir=tmp_path / "a/certs",
        secret_key=SecretStr(""),
        pki_kdf_rounds=TEST_KDF_ROUNDS,
    )
    db = Database(source_settings)

    def issued() -> int:
        with db.session() as s:
            count = select(func.count()).select_from(RosterEntry).where(RosterEntry.document_id.is_not(None))
            return int(s.scalar(count) or 0)

    batch = subprocess.Popen(
        [DOCSIGN, "notices", "issue", "--roster", roster_id],
        cwd=tmp_path,
        env=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while issued() == 0 and batch.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        # in this process, to be sure to take it halfway: the command's own start takes as long as
        # the rest of the batch (the command is used below, to restore, and by the other tests)
        steps: list[str] = []
        create_backup(source_settings, tmp_path / "备份", PASSPHRASE.encode(), progress=lambda s, d, t: steps.append(s))
        during = batch.poll() is None
    finally:
        _, batch_errors = batch.communicate(timeout=300)
    assert batch.returncode == 0, batch_errors
    assert steps[:2] == ["派生备份密钥", "备份数据库"] and "备份归档文件" in steps
    assert issued() == COUNT
    db.dispose()

    _, manifest = unlock(tmp_path / "备份", PASSPHRASE.encode())
    taken = manifest["database"]["counts"]
    # taken halfway: some notices issued, not all, and the batch still running when it was done
    assert 0 < taken["documents"] < COUNT and during, (taken["documents"], during)
    # the school print files came after the snapshot: neither their rows nor their files are in it
    assert taken["print_bundles"] == 0
    assert len(manifest["archive"]["objects"]["documents"]) == taken["document_versions"]

    restored = docsign(target, "backup", "restore", "备份")
    assert restored.returncode == 0, restored.stderr
    assert "与清单一致" in restored.stdout
    target_settings = Settings(
        data_dir=tmp_path / "b/var",
        certs_dir=tmp_path / "b/certs",
        secret_key=SecretStr(""),
        pki_kdf_rounds=TEST_KDF_ROUNDS,
    )
    assert (tmp_path / "b/var/secret.key").read_bytes() == (tmp_path / "a/var/secret.key").read_bytes().strip()
    assert oct((tmp_path / "b/var/secret.key").stat().st_mode & 0o777) == "0o600"

    # every row as the snapshot had it, every document genuine, both chains whole
    restored_db = Database(target_settings)
    try:
        from service.backup.database import count_rows

        assert count_rows(restored_db.engine) == taken
    finally:
        restored_db.dispose()
    assert _documents_verify(target_settings) == taken["documents"]
    # the keyring came back owner-only, and the sealed fields open with it as they did at the source
    keys = target_settings.keys_folder
    assert keys.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in keys.iterdir() if not p.name.startswith(".")}
    made = sorted(p.name for p in source_settings.keys_folder.iterdir() if not p.name.startswith("."))
    assert sorted(modes) == made and set(modes.values()) == {0o600} and "keyring.json" in made
    values = _sealed_values(target_settings)
    assert values == _sealed_values(source_settings) and len(values) == COUNT
    audit = docsign(target, "audit", "verify")
    assert audit.returncode == 0 and "审计日志完整" in audit.stdout, audit.stdout + audit.stderr
    assert f"共 {taken['audit_events']} 条" in audit.stdout
    access = docsign(target, "access", "verify")
    assert access.returncode == 0 and "访问日志完整" in access.stdout, access.stdout + access.stderr


def _sealed_values(settings: Settings) -> list[tuple[object, ...]]:
    """Every sealed field of the roster entries and cases, opened: what a restore must give back."""
    db = Database(settings)
    try:
        with db.session() as s:
            entries = s.scalars(select(RosterEntry).order_by(RosterEntry.id)).all()
            cases = s.scalars(select(Case).order_by(Case.id)).all()
            return [(e.fields["student_id_number"], e.fields["guardian_name"]) for e in entries] + [
                (c.id_number, c.home_address, [(g.phone, g.address) for g in c.guardians]) for c in cases
            ]
    finally:
        db.dispose()


# --- PostgreSQL -------------------------------------------------------------------------------------


def _installation(root: Path, settings: Settings, pki: Pki, database_url: str) -> Settings:
    own = settings.model_copy(
        update={"data_dir": root / "var", "certs_dir": root / "certs", "database_url": database_url}
    )
    shutil.copytree(pki.dir, own.certs_dir)
    return own


def _fill(own: Settings, converter: Converter, documents: int = 2) -> None:
    """A district, documents issued and audited, a read of children's data in the access log."""
    services = Services.build(own, Clock(), converter=converter)
    services.prepare()
    try:
        load_district(services)
        fields = example_fields(KINDS["enrollment_notice"], own.schemas_dir)
        actor = Actor(None, "测试")
        with services.db.session() as s:
            bureau = unit(s, "LCJT")
            if documents == 2:  # the PostgreSQL installation: a case with its sealed fields
                services.cases.create(
                    s,
                    scope_of(s, "wsr-sh-head"),
                    unit(s, "WSR-SH").id,
                    CaseIn(
                        student_name="王小明",
                        id_number=CASE_ID,
                        sex="男",
                        birth_date=dt.date(2012, 3, 7),
                        grade="六年级",
                        home_address="历城区王舍人街道石河村88号",
                        confirmed=True,
                        guardians=[GuardianIn("王德福", "父亲", "13805310001")],
                    ),
                )
            for _ in range(documents):
                request = IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt")
                row, issued = services.archive.issue(s, request, RecordAs(issuer=bureau), actor)
                record(s, actor, "document.issue", "document", row.id, services.clock.now(), sha256=issued.sha256)
            s.commit()
        services.access.note(
            Read(services.clock.now(), None, "测试", None, None, None, None, "docsign test", "case_list", rows=3)
        )
    finally:
        services.close()


def test_a_postgresql_installation_is_restored_from_its_pg_dump(
    tmp_path: Path, settings: Settings, pki: Pki, converter: Converter
) -> None:
    with postgres_database() as source_url, postgres_database() as target_url:
        source = _installation(tmp_path / "a", settings, pki, source_url)
        _fill(source, converter)
        made = create_backup(source, tmp_path / "backup", PASSPHRASE.encode())
        _, manifest = unlock(tmp_path / "backup", PASSPHRASE.encode())
        assert manifest["database"]["format"] == "pg_dump-custom"
        assert made.counts["documents"] == 2 and made.counts["access_log"] == 1

        target = settings.model_copy(
            update={"data_dir": tmp_path / "b/var", "certs_dir": tmp_path / "b/certs", "database_url": target_url}
        )
        report = restore_backup(target, tmp_path / "backup", PASSPHRASE.encode())
        assert report.counts == made.counts
        assert report.audit.ok and report.audit.events == made.counts["audit_events"] > 0
        assert report.access.ok and report.access.events == 1
        assert report.secret_written is None  # the key configured here is the backup's
        assert _documents_verify(target) == 2
        assert (
            _sealed_values(target)
            == _sealed_values(source)
            == [(CASE_ID, "历城区王舍人街道石河村88号", [("13805310001", None)])]
        )
        # the restored installation starts as the service starts it (migrations, PKI) and issues on
        _fill(target, converter, documents=1)
        assert _documents_verify(target) == 3


# --- refusals ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_backup(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, pki: Pki, converter: Converter
) -> tuple[Settings, Path]:
    """A small installation (one notice) and its backup, made by ``docsign backup create``."""
    tmp_path = tmp_path_factory.mktemp("backup")
    source = _installation(tmp_path / "a", settings, pki, "")
    _fill(source, converter, documents=1)
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(source.data_dir),
        "DOCSIGN_CERTS_DIR": str(source.certs_dir),
        "DOCSIGN_PKI_PASSPHRASE": source.pki_passphrase.get_secret_value(),
        "DOCSIGN_PKI_KDF_ROUNDS": str(source.pki_kdf_rounds),
        "DOCSIGN_BACKUP_PASSPHRASE": PASSPHRASE,
        "COLUMNS": "200",
    }
    made = subprocess.run(
        [DOCSIGN, "backup", "create", str(tmp_path / "backup")], env=env, capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert "已创建备份" in made.stdout and "归档文件：1 个" in made.stdout
    return source, tmp_path / "backup"


@pytest.fixture()
def backup(small_backup: tuple[Settings, Path], tmp_path: Path) -> Path:
    """A copy of the small backup, this test's to damage."""
    return Path(shutil.copytree(small_backup[1], tmp_path / "backup"))


def _target(tmp_path: Path, settings: Settings, name: str = "b") -> Settings:
    return settings.model_copy(
        update={
            "data_dir": tmp_path / name / "var",
            "certs_dir": tmp_path / name / "certs",
            "database_url": "",
            "secret_key": SecretStr(""),
        }
    )


def test_a_wrong_passphrase_is_refused_with_its_code_and_restores_nothing(
    backup: Path, tmp_path: Path, settings: Settings
) -> None:
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(tmp_path / "b/var"),
        "DOCSIGN_CERTS_DIR": str(tmp_path / "b/certs"),
        "DOCSIGN_BACKUP_PASSPHRASE": "not-the-passphrase-at-all",
        "COLUMNS": "200",
    }
    refused = subprocess.run(
        [DOCSIGN, "backup", "restore", str(backup)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2
    assert "[BACKUP_PASSPHRASE_WRONG]" in refused.stderr and "没有恢复任何内容" in refused.stderr
    assert "Traceback" not in refused.stderr
    _is_empty(_target(tmp_path, settings))


@pytest.mark.parametrize("where", ["database", "files", "manifest"])
def test_a_tampered_backup_is_refused_and_leaves_the_target_empty(
    backup: Path, tmp_path: Path, settings: Settings, where: str
) -> None:
    path = backup / f"{where}.sealed"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.write_bytes(bytes(data))
    target = _target(tmp_path, settings)
    with pytest.raises(BackupTampered) as refused:
        restore_backup(target, backup, PASSPHRASE.encode())
    assert refused.value.code == "BACKUP_TAMPERED" and "没有恢复任何内容" in refused.value.message
    _is_empty(target)


def test_a_backup_cut_short_or_missing_a_file_is_refused(backup: Path, tmp_path: Path, settings: Settings) -> None:
    target = _target(tmp_path, settings)
    sealed = backup / FILES
    whole = sealed.read_bytes()
    sealed.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BackupTampered):
        restore_backup(target, backup, PASSPHRASE.encode())
    _is_empty(target)
    sealed.unlink()
    with pytest.raises(BackupTampered, match="缺少文件"):
        restore_backup(target, backup, PASSPHRASE.encode())
    _is_empty(target)


def test_a_restore_that_fails_at_its_last_step_takes_back_everything_it_put(
    backup: Path, tmp_path: Path, settings: Settings
) -> None:
    target = _target(tmp_path, settings)
    # the database cannot be written (a folder where its file goes): the archived files, the PKI
    # and the key are in place by then, and must go again
    (target.data_dir / "docsign.sqlite3.restoring").mkdir(parents=True)
    with pytest.raises(OSError):
        restore_backup(target, backup, PASSPHRASE.encode())
    _is_empty(target)
    (target.data_dir / "docsign.sqlite3.restoring").rmdir()
    assert restore_backup(target, backup, PASSPHRASE.encode()).counts["documents"] == 1
    assert _documents_verify(target) == 1


def test_only_an_empty_installation_is_restored_into(backup: Path, tmp_path: Path, settings: Settings) -> None:
    target = _target(tmp_path, settings)
    with pytest.raises(BackupPassphraseWrong):
        restore_backup(target, backup, b"not-the-passphrase-at-all")
    first = restore_backup(target, backup, PASSPHRASE.encode())
    assert first.secret_written == target.data_dir / "secret.key"
    with pytest.raises(BackupTargetNotEmpty) as refused:
        restore_backup(target, backup, PASSPHRASE.encode())
    assert refused.value.code == "BACKUP_TARGET_NOT_EMPTY" and "目标数据库不是空的" in refused.value.message
    # the certificates alone, or archived files alone, make an installation that is not empty
    other = _target(tmp_path, settings, "c")
    shutil.copytree(target.certs_dir, other.certs_dir)
    with pytest.raises(BackupTargetNotEmpty, match="证书目录"):
        restore_backup(other, backup, PASSPHRASE.encode())
    shutil.rmtree(other.certs_dir)
    open_store(other, "files").put(b"another installation's file")
    with pytest.raises(BackupTargetNotEmpty, match="目标归档"):
        restore_backup(other, backup, PASSPHRASE.encode())
    # a service key configured here that is not the backup's would leave the chains unreadable
    keyed = _target(tmp_path, settings, "d").model_copy(update={"secret_key": SecretStr("another-key-" + "x" * 40)})
    with pytest.raises(BackupIncompatible, match="DOCSIGN_SECRET_KEY"):
        restore_backup(keyed, backup, PASSPHRASE.encode())
    _is_empty(keyed)


def test_a_backup_goes_only_into_a_new_folder(backup: Path, small_backup: tuple[Settings, Path]) -> None:
    source = small_backup[0]
    before = sorted(p.name for p in backup.iterdir())
    with pytest.raises(Exception, match="已存在且不是空的") as refused:
        create_backup(source, backup, PASSPHRASE.encode())
    assert getattr(refused.value, "code", None) == "BACKUP_TARGET_EXISTS"
    assert sorted(p.name for p in backup.iterdir()) == before
