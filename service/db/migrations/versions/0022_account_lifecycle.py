"""Accounts: temporary accounts' end, disabled accounts (when, why)

Revision ID: 0022_account_lifecycle
Revises: 0021_notify
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0022_account_lifecycle"
down_revision = "0021_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: SQLite's batch mode would recreate a table that other tables point at
    op.add_column("users", sa.Column("expires_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("disabled_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("disabled_reason", sa.String(length=200), nullable=True))


def downgrade() -> None:
    for column in ("disabled_reason", "disabled_at", "expires_at"):
        op.drop_column("users", column)
