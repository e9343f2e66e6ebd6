"""accounts: room for a sealed second-factor secret (AES-GCM, key outside the database)

Secrets stored in clear before this are sealed the next time their owner signs in with a code.

Revision ID: 0011_totp_sealed
Revises: 0007_security
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_totp_sealed"
down_revision = "0007_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(length=64), type_=sa.String(length=128))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(length=128), type_=sa.String(length=64))
