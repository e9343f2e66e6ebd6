from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from service.crypto import Keyring
from service.db.session import MIGRATIONS, at_newest, migrate, newest_revision


def test_the_newest_file_holds_alembics_one_head() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    newest = max(scripts.walk_revisions(), key=lambda script: Path(script.path or "").name)
    assert scripts.get_heads() == [newest.revision] == [newest_revision()]


def test_only_a_schema_at_the_newest_migration_counts_as_up_to_date(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert not at_newest(engine)
    migrate(engine, b"k" * 32, Keyring(tmp_path / "keys"))
    assert at_newest(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_initial'"))
    assert not at_newest(engine)
    engine.dispose()
