"""The access log: every read of children's data, chained and keyed as the audit log

Revision ID: 0015_access_log
Revises: 0014_bureau_basis
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0015_access_log"
down_revision = "0014_bureau_basis"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("via", sa.String(length=120), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_access_log_hash")),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"], unique=False)
    op.create_index(op.f("ix_access_log_user_id"), "access_log", ["user_id"], unique=False)
    op.create_index(op.f("ix_access_log_subject_id"), "access_log", ["subject_id"], unique=False)
    op.create_table(
        "access_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_head")),
    )


def downgrade() -> None:
    op.drop_table("access_head")
    op.drop_index(op.f("ix_access_log_subject_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_user_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
