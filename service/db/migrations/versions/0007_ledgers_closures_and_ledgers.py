"""销号 acts on cases, the 适龄儿童台账, term dates and deadline rules, monthly report versions

Revision ID: 0007_ledgers
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0007_ledgers"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("never_enrolled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "case_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("authority", sa.String(length=60), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_closures_case_id_cases")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_case_closures_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_closures")),
        sa.UniqueConstraint("case_id", name=op.f("uq_case_closures_case_id")),
    )


def downgrade() -> None:
    op.drop_table("case_closures")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("never_enrolled")
