"""The days a case became 疑似辍学 and 辍学, as entered (the reports count by them, not by the day of entry)

Revision ID: 0013_case_event_dates
Revises: 0011_ledgers3

Existing cases get the days their history says: a case entered as 疑似辍学 was suspected from its
辍学日期 (or the day it was entered); a case entered as 辍学 dropped out on its 辍学日期 (or the day
it was entered); a 疑似辍学 confirmed later became 辍学 on the day of the confirmation (Beijing time).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import sqlalchemy as sa
from alembic import op

revision = "0013_case_event_dates"
down_revision = "0011_ledgers3"
branch_labels = None
depends_on = None

#: The service's deployments are in China; the days of the backfill are Beijing days.
BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")


def _day(value: object) -> dt.date:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(BEIJING).date()


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspected_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("dropped_on", sa.Date(), nullable=True))
    conn = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("dropout_date", sa.Date),
        sa.column("created_at", sa.DateTime),
        sa.column("suspected_on", sa.Date),
        sa.column("dropped_on", sa.Date),
    )
    events = sa.table(
        "audit_events",
        sa.column("object_type", sa.String),
        sa.column("object_id", sa.String),
        sa.column("action", sa.String),
        sa.column("at", sa.DateTime),
        sa.column("detail", sa.JSON),
    )
    created: dict[str, str] = {}
    confirmed: dict[str, dt.date] = {}
    for row in conn.execute(
        sa.select(events.c.object_id, events.c.action, events.c.at, events.c.detail)
        .where(events.c.object_type == "case", events.c.action.in_(["case.create", "case.status"]))
        .order_by(events.c.at)
    ):
        detail = row.detail or {}
        if row.action == "case.create":
            created[row.object_id] = str(detail.get("status") or "suspected")
        elif detail.get("from") == "suspected" and detail.get("to") == "dropped":
            confirmed.setdefault(row.object_id, _day(row.at))
    for row in conn.execute(sa.select(cases.c.id, cases.c.dropout_date, cases.c.created_at)):
        entered = _day(row.created_at)
        first = row.dropout_date if row.dropout_date is not None and row.dropout_date <= entered else entered
        if created.get(str(row.id), "suspected") == "suspected":
            values = {"suspected_on": first, "dropped_on": confirmed.get(str(row.id))}
        else:
            values = {"suspected_on": None, "dropped_on": first}
        conn.execute(sa.update(cases).where(cases.c.id == row.id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("dropped_on")
        batch_op.drop_column("suspected_on")
