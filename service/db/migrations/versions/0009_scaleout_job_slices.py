"""slices of batch jobs run by Celery workers

Revision ID: 0007_scaleout
Revises: 0006
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0007_scaleout"
down_revision = "0007_ledgers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_slices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=96), nullable=True),
        sa.Column("lease_expires_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("finished_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_slices_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_slices")),
        sa.UniqueConstraint("job_id", "number", name="uq_job_slice"),
    )
    with op.batch_alter_table("job_slices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_slices_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_slices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_slices_job_id"))
    op.drop_table("job_slices")
