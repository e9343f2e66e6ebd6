"""accounts: second factor, forced password change, token expiry, login failures, delegations;
roster codes hashed; the audit chain keyed

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
down_revision = "0007_scaleout"
branch_labels = None
depends_on = None

USER_COLUMNS = ("totp_secret", "totp_enabled_at", "recovery_codes", "must_change_password", "password_changed_at")


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_at"), "login_failures", ["at"], unique=False)
    op.create_index(op.f("ix_login_failures_client"), "login_failures", ["client"], unique=False)
    op.create_index(op.f("ix_login_failures_username"), "login_failures", ["username"], unique=False)
    op.create_table(
        "delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_delegations_unit_id_units")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_delegations_user_id_users")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_delegations_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    op.create_index(op.f("ix_delegations_unit_id"), "delegations", ["unit_id"], unique=False)
    op.create_index(op.f("ix_delegations_user_id"), "delegations", ["user_id"], unique=False)
    # plain ADD COLUMN: SQLite's batch mode would recreate tables that other tables point at
    op.add_column("users", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("totp_enabled_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("recovery_codes", sa.JSON(), nullable=True))
    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("users", sa.Column("password_changed_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", service.db.base.UTCDateTime(timezone=True), nullable=True))
    # an issued roster entry keeps the SHA-256 of its code (64 hex digits; SQLite has no lengths)
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.alter_column("roster_entries", "code", existing_type=sa.String(length=32), type_=sa.String(length=64))
    issued = bind.execute(
        sa.text("SELECT id, code FROM roster_entries WHERE document_id IS NOT NULL AND length(code) < 64")
    ).all()
    for entry_id, code in issued:
        bind.execute(
            sa.text("UPDATE roster_entries SET code = :h WHERE id = :id"),
            {"h": hashlib.sha256(code.encode()).hexdigest(), "id": entry_id},
        )
    # the audit chain, written until now with plain SHA-256, is re-hashed with the service's key
    # (checked link by link first; a broken chain is left for `docsign audit verify` to report)
    config = op.get_context().config
    key = config.attributes.get("audit_key") if config is not None else None
    if key:
        from service.audit.service import rekey_legacy_chain

        rekey_legacy_chain(bind, key)


def downgrade() -> None:
    # the codes of issued entries stay hashed (they cannot be recovered; the notices carry them),
    # so roster_entries.code keeps its length
    op.drop_column("api_tokens", "expires_at")
    for column in reversed(USER_COLUMNS):
        op.drop_column("users", column)
    op.drop_index(op.f("ix_login_failures_username"), table_name="login_failures")
    op.drop_index(op.f("ix_login_failures_client"), table_name="login_failures")
    op.drop_index(op.f("ix_login_failures_at"), table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index(op.f("ix_delegations_user_id"), table_name="delegations")
    op.drop_index(op.f("ix_delegations_unit_id"), table_name="delegations")
    op.drop_table("delegations")
