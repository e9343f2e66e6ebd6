"""Retention: the retention log, and when a case, a roster and a 适龄儿童台账 row lost their personal data

Revision ID: 0017_retention
Revises: 0016_access_export_purpose
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0017_retention"
down_revision = "0016_access_export_purpose"
branch_labels = None
depends_on = None

ERASABLE = ("cases", "rosters", "child_entries")


def upgrade() -> None:
    op.create_table(
        "retention_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], name=op.f("fk_retention_log_actor_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_log")),
    )
    op.create_index(op.f("ix_retention_log_at"), "retention_log", ["at"], unique=False)
    for table in ERASABLE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("erased_at", service.db.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ERASABLE:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("erased_at")
    op.drop_index(op.f("ix_retention_log_at"), table_name="retention_log")
    op.drop_table("retention_log")
