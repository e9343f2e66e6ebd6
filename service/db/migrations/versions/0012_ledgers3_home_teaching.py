"""送教上门: a deferral marked as taught at home, and the home visits recorded against it

Revision ID: 0011_ledgers3
Revises: 0011_totp_sealed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0011_ledgers3"
down_revision = "0011_totp_sealed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_closures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("home_teaching", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "home_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("teachers", sa.String(length=60), nullable=False),
        sa.Column("content", sa.String(length=200), nullable=False),
        sa.Column("evidence_filename", sa.String(length=128), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("evidence_size", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_home_visits_case_id_cases")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_home_visits_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_home_visits")),
    )
    with op.batch_alter_table("home_visits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_home_visits_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("home_visits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_home_visits_case_id"))
    op.drop_table("home_visits")
    with op.batch_alter_table("case_closures", schema=None) as batch_op:
        batch_op.drop_column("home_teaching")
