"""API tokens: the domains a token may be used for (None: every domain)

Revision ID: 0024_token_domains
Revises: 0023_receipt_slowdown
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_token_domains"
down_revision = "0023_receipt_slowdown"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("domains", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("api_tokens", "domains")
