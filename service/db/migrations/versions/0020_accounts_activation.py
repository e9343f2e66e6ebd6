"""Accounts: activation links, single-use TOTP codes, resets and failed logins shown to the holder,
idle session timeout, read-only API tokens

Revision ID: 0020_accounts_activation
Revises: 0019_seal_fields
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0020_accounts_activation"
down_revision = "0019_seal_fields"
branch_labels = None
depends_on = None

USER_COLUMNS = (
    "totp_last_step",
    "reset_at",
    "reset_by",
    "last_login_at",
    "failed_logins",
    "last_failed_login_at",
    "last_failed_login_client",
)


def upgrade() -> None:
    op.create_table(
        "account_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("expires_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pending_password_hash", sa.String(length=255), nullable=True),
        sa.Column("pending_totp_secret", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_account_activations_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_activations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_activations_token_hash")),
    )
    op.create_index(op.f("ix_account_activations_user_id"), "account_activations", ["user_id"], unique=False)
    # plain ADD COLUMN: SQLite's batch mode would recreate tables that other tables point at
    op.add_column("users", sa.Column("totp_last_step", sa.Integer(), nullable=True))
    op.add_column("users", sa.Column("reset_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("reset_by", sa.String(length=160), nullable=True))
    op.add_column("users", sa.Column("last_login_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
    op.add_column("users", sa.Column("last_failed_login_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("last_failed_login_client", sa.String(length=64), nullable=True))
    op.add_column(
        "login_sessions", sa.Column("last_seen_at", service.db.base.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column("api_tokens", sa.Column("access", sa.String(length=8), server_default="write", nullable=False))


def downgrade() -> None:
    op.drop_column("api_tokens", "access")
    op.drop_column("login_sessions", "last_seen_at")
    for column in reversed(USER_COLUMNS):
        op.drop_column("users", column)
    op.drop_index(op.f("ix_account_activations_user_id"), table_name="account_activations")
    op.drop_table("account_activations")
