"""Documents: when a guardian's receipt was last tried with wrong digits (a slow-down, not a lock)

Revision ID: 0023_receipt_slowdown
Revises: 0022_account_lifecycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0023_receipt_slowdown"
down_revision = "0022_account_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("receipt_failed_at", service.db.base.UTCDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("documents", "receipt_failed_at")
