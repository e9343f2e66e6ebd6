"""An export's purpose (用途) and whether it held full 身份证号 and phones, in its access-log entry

Revision ID: 0016_access_export_purpose
Revises: 0015_access_log
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_access_export_purpose"
down_revision = "0015_access_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        batch.add_column(sa.Column("purpose", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("full", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        batch.drop_column("full")
        batch.drop_column("purpose")
