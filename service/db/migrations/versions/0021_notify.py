"""Notices out: units' contacts (sealed), the delivery log, webhook subscriptions and their
deliveries, and the cursor over the audit log that webhook events are read by

Revision ID: 0021_notify
Revises: 0020_accounts_activation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "0021_notify"
down_revision = "0020_accounts_activation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notify_cursors")),
    )
    op.create_table(
        "notify_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("email_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("mobile_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("wecom_webhook_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("dingtalk_webhook_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("dingtalk_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("row_key", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_notify_contacts_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_contacts")),
        sa.UniqueConstraint("unit_id", name=op.f("uq_notify_contacts_unit_id")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_webhook_subscriptions_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_subscriptions_bureau_id"), ["bureau_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=60), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answer", sa.String(length=500), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_deliveries_message_id")),
        sa.UniqueConstraint("subscription_id", "event_key", name="uq_webhook_delivery_event"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("recipient_bidx", sa.String(length=64), nullable=True),
        sa.Column("recipient_masked", sa.String(length=120), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("answer", sa.String(length=500), nullable=True),
        sa.Column("created_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("row_key", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_notify_deliveries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_notify_deliveries_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_deliveries")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notify_deliveries_dedupe_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notify_deliveries_message_id")),
    )
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notify_deliveries_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notify_deliveries_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_notify_deliveries_recipient_bidx"), ["recipient_bidx"], unique=False)
        batch_op.create_index(batch_op.f("ix_notify_deliveries_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_notify_deliveries_unit_id"), ["unit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notify_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_unit_id"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_status"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_recipient_bidx"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_kind"))
        batch_op.drop_index(batch_op.f("ix_notify_deliveries_campaign_id"))

    op.drop_table("notify_deliveries")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_status"))

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_bureau_id"))

    op.drop_table("webhook_subscriptions")
    op.drop_table("notify_contacts")
    op.drop_table("notify_cursors")
