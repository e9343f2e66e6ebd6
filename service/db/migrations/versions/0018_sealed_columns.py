"""Sealed fields, step 1: room for the sealed personal fields, their blind indexes and each row's key

The values are sealed by 0019_seal_fields, which then drops the plain columns.

Revision ID: 0018_sealed_columns
Revises: 0017_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_sealed_columns"
down_revision = "0017_retention"
branch_labels = None
depends_on = None

#: Each table with sealed fields: its sealed columns, and the ones with a blind index.
SEALED = {
    "cases": (("id_number", "home_address"), ("id_number",)),
    "guardians": (("phone", "address"), ()),
    "child_entries": (("id_number", "home_address", "guardian_phone"), ("id_number",)),
    "roster_entries": (("fields",), ()),
    "documents": (("fields",), ()),
}


def upgrade() -> None:
    for table, (sealed, indexed) in SEALED.items():
        op.add_column(table, sa.Column("row_key", sa.String(length=32), nullable=True))
        for name in sealed:
            op.add_column(table, sa.Column(f"{name}_sealed", sa.LargeBinary(), nullable=True))
        for name in indexed:
            op.add_column(table, sa.Column(f"{name}_bidx", sa.String(length=64), nullable=True))
            op.create_index(op.f(f"ix_{table}_{name}_bidx"), table, [f"{name}_bidx"], unique=False)


def downgrade() -> None:
    for table, (sealed, indexed) in reversed(SEALED.items()):
        for name in indexed:
            op.drop_index(op.f(f"ix_{table}_{name}_bidx"), table_name=table)
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}_bidx")
        for name in sealed:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}_sealed")
        op.execute(f"ALTER TABLE {table} DROP COLUMN row_key")
