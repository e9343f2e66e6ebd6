"""Sealed fields, step 2: seal every existing 身份证号, phone, address and document field in place,
then drop the plain columns

Rows are sealed a batch at a time, each batch committed on its own (outside the migration's
transaction), and a row is done once it has its ``row_key``: a migration stopped halfway seals the
rest when it runs again. The plain columns go once every row is sealed; on SQLite the rows are
rewritten without them (``secure_delete`` overwrites the freed space); on PostgreSQL the old row
versions stay in the table files until ``VACUUM FULL`` (the README says so).

Revision ID: 0019_seal_fields
Revises: 0018_sealed_columns
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from service.crypto import Keyring
from service.db.sealed import (
    KeyringUnavailable,
    blind_index,
    decode_value,
    encode_value,
    field_aad,
    new_row_key,
)

revision = "0019_seal_fields"
down_revision = "0018_sealed_columns"
branch_labels = None
depends_on = None

#: Each table: its plain columns as they were (name, type, indexed), and which ones have a blind index.
PLAIN: dict[str, tuple[tuple[str, Any, bool], ...]] = {
    "cases": (("id_number", sa.String(length=18), True), ("home_address", sa.String(length=100), False)),
    "guardians": (("phone", sa.String(length=20), False), ("address", sa.String(length=100), False)),
    "child_entries": (
        ("id_number", sa.String(length=18), True),
        ("home_address", sa.String(length=100), False),
        ("guardian_phone", sa.String(length=20), False),
    ),
    "roster_entries": (("fields", sa.JSON(), False),),
    "documents": (("fields", sa.JSON(), False),),
}
BLIND = {"id_number"}
#: Rows sealed per committed batch.
BATCH = 500


def _keyring() -> Keyring:
    config = op.get_context().config
    keyring = config.attributes.get("keyring") if config is not None else None
    if keyring is None:
        raise KeyringUnavailable("升级数据库需要加密密钥（service.db.session.migrate 的 keyring），请检查服务配置。")
    assert isinstance(keyring, Keyring)
    return keyring


def _table(name: str) -> sa.TableClause:
    columns: list[sa.ColumnClause[Any]] = [sa.column("id", sa.Integer()), sa.column("row_key", sa.String())]
    for column, type_, _ in PLAIN[name]:
        columns += [sa.column(column, type_), sa.column(f"{column}_sealed", sa.LargeBinary())]
        if column in BLIND:
            columns.append(sa.column(f"{column}_bidx", sa.String()))
    return sa.table(name, *columns)


def seal_batch(conn: sa.Connection, keyring: Keyring, name: str, size: int = BATCH) -> int:
    """Seal up to ``size`` rows of ``name`` not sealed yet; returns how many."""
    table = _table(name)
    plain = [c for c, _, _ in PLAIN[name]]
    rows = conn.execute(
        sa.select(table.c.id, *(table.c[c] for c in plain))
        .where(table.c.row_key.is_(None))
        .order_by(table.c.id)
        .limit(size)
    ).all()
    if not rows:
        return 0
    values: dict[str, Any] = {"row_key": sa.bindparam("b_row_key")}
    for column in plain:
        values[f"{column}_sealed"] = sa.bindparam(f"b_{column}_sealed", type_=sa.LargeBinary())
        if column in BLIND:
            values[f"{column}_bidx"] = sa.bindparam(f"b_{column}_bidx")
    params = []
    for row in rows:
        row_key = new_row_key()
        p: dict[str, Any] = {"b_id": row.id, "b_row_key": row_key}
        for column in plain:
            value = row._mapping[column]
            p[f"b_{column}_sealed"] = (
                None
                if value is None
                else keyring.encrypt(encode_value(value, json=column == "fields"), field_aad(name, column, row_key))
            )
            if column in BLIND:
                p[f"b_{column}_bidx"] = blind_index(keyring, value, column)
        params.append(p)
    conn.execute(table.update().where(table.c.id == sa.bindparam("b_id")).values(values), params)
    return len(rows)


def upgrade() -> None:
    keyring = _keyring()
    context = op.get_context()
    engine = op.get_bind().engine
    with context.autocommit_block():
        # each batch in a transaction of its own (the migration's connection holds none here): what
        # is committed stays sealed if the run stops
        for name in PLAIN:
            while True:
                with engine.begin() as conn:
                    if not seal_batch(conn, keyring, name):
                        break
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, columns in PLAIN.items():
        if name == "child_entries":
            continue
        for column, _, indexed in columns:
            if indexed:
                op.drop_index(op.f(f"ix_{name}_{column}"), table_name=name)
            # SQLite >= 3.35 drops a column by rewriting the rows, without rebuilding a table others
            # point to (a rebuild would delete cases under their guardians' foreign keys)
            op.execute(f"ALTER TABLE {name} DROP COLUMN {column}")
    with op.batch_alter_table("child_entries", recreate="always" if sqlite else "auto") as batch:
        batch.drop_constraint("uq_child_entry", type_="unique")
        batch.drop_index(batch.f("ix_child_entries_id_number"))
        for column, _, _ in PLAIN["child_entries"]:
            batch.drop_column(column)
        batch.create_unique_constraint("uq_child_entry", ["school_id", "year", "id_number_bidx"])


def downgrade() -> None:
    keyring = _keyring()
    conn = op.get_bind()
    for name, columns in PLAIN.items():
        for column, type_, _ in columns:
            op.add_column(name, sa.Column(column, type_, nullable=True))
        table = _table(name)
        plain = [c for c, _, _ in columns]
        rows = conn.execute(sa.select(table.c.id, table.c.row_key, *(table.c[f"{c}_sealed"] for c in plain))).all()
        for row in rows:
            opened = {
                c: None
                if row._mapping[f"{c}_sealed"] is None
                else decode_value(
                    keyring.decrypt(row._mapping[f"{c}_sealed"], field_aad(name, c, row.row_key)), json=c == "fields"
                )
                for c in plain
            }
            conn.execute(table.update().where(table.c.id == row.id).values(opened))
        for column, _, indexed in columns:
            if indexed and name != "child_entries":
                op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)
    sqlite = conn.dialect.name == "sqlite"
    with op.batch_alter_table("child_entries", recreate="always" if sqlite else "auto") as batch:
        batch.drop_constraint("uq_child_entry", type_="unique")
        batch.create_unique_constraint("uq_child_entry", ["school_id", "year", "id_number"])
        batch.create_index(batch.f("ix_child_entries_id_number"), ["id_number"], unique=False)
