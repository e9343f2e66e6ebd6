"""Each bureau's own basis: its region, its notice, its 巩固率 target; rule sources are the bureau's

Revision ID: 0014_bureau_basis
Revises: 0013_case_event_dates

A rule row's source that is one of the seed notices' citations was copied from a default, not
entered by the bureau: it is cleared, and the rule shows that notice as another place's reference
until the bureau names its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base
from service.ledgers.basis import SEED_TEXTS

revision = "0014_bureau_basis"
down_revision = "0013_case_event_dates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bureau_basis",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bureau_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=30), nullable=False),
        sa.Column("notice", sa.String(length=200), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("target_source", sa.String(length=60), nullable=False),
        sa.Column("updated_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["bureau_id"], ["units.id"], name=op.f("fk_bureau_basis_bureau_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bureau_basis")),
        sa.UniqueConstraint("bureau_id", name=op.f("uq_bureau_basis_bureau_id")),
    )
    rules = sa.table("deadline_rules", sa.column("source", sa.String))
    op.get_bind().execute(sa.update(rules).where(rules.c.source.in_(sorted(SEED_TEXTS))).values(source=""))


def downgrade() -> None:
    op.drop_table("bureau_basis")
