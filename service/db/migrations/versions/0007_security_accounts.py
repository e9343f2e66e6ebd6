"""accounts: second factor, forced password change, token expiry, login failures; roster codes hashed

Revision ID: 0007_security
Revises: 0006
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0007_security"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failures_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failures_client"), ["client"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failures_username"), ["username"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("password_changed_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    # an issued roster entry keeps the SHA-256 of its code (64 hex digits)
    with op.batch_alter_table("roster_entries", schema=None) as batch_op:
        batch_op.alter_column("code", existing_type=sa.String(length=32), type_=sa.String(length=64))
    bind = op.get_bind()
    issued = bind.execute(
        sa.text("SELECT id, code FROM roster_entries WHERE document_id IS NOT NULL AND length(code) < 64")
    ).all()
    for entry_id, code in issued:
        bind.execute(
            sa.text("UPDATE roster_entries SET code = :h WHERE id = :id"),
            {"h": hashlib.sha256(code.encode()).hexdigest(), "id": entry_id},
        )


def downgrade() -> None:
    # the codes of issued entries stay hashed (they cannot be recovered; the notices carry them)
    with op.batch_alter_table("roster_entries", schema=None) as batch_op:
        batch_op.alter_column("code", existing_type=sa.String(length=64), type_=sa.String(length=32))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("must_change_password")
        batch_op.drop_column("recovery_codes")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret")
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failures_username"))
        batch_op.drop_index(batch_op.f("ix_login_failures_client"))
        batch_op.drop_index(batch_op.f("ix_login_failures_at"))
    op.drop_table("login_failures")
