"""The audit administrator's filter of the audit and access logs, read from the query the same way
by the API (``/api/audit/...``) and the page (``/audit``): who, which unit, which action, from and
to (a Beijing day, or a time with its zone), and the page."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from service.accounts import repository as accounts_repository
from service.audit.repository import AUDIT_ONLY, LogFilter
from service.db.scoping import valid_id
from service.errors import InvalidInput
from service.http.deps import ScopeDep, ServicesDep, SessionDep


class AuditFilterInvalid(InvalidInput):
    code = "AUDIT_FILTER_INVALID"
    default_message = "筛选条件有误。"


@dataclass(frozen=True)
class LogQuery:
    filter: LogFilter
    page: int
    #: The query as typed, for the page's form and its links.
    form: dict[str, str]


def _moment(text: str, tz: zoneinfo.ZoneInfo, name: str, end: bool) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
            return start + dt.timedelta(days=1) if end else start  # "to" a day includes the day
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AuditFilterInvalid(
            f"{name}应写成 年-月-日（例如 2026-09-01），或带时区的时间（例如 2026-09-01T08:00:00+08:00）。"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def log_query(
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    person: Annotated[str, Query(max_length=64, description="人员：账号编号、用户名或姓名的一部分")] = "",
    unit_id: Annotated[str, Query(max_length=20, description="单位编号（空：全部单位）")] = "",
    action: Annotated[str, Query(max_length=40, description="操作代码的开头，如 auth.、user.、access.denied")] = "",
    since: Annotated[str, Query(alias="from", max_length=40, description="起始日期（北京时间）或时间")] = "",
    until: Annotated[str, Query(alias="to", max_length=40, description="截止日期（含当天）或时间")] = "",
    page: Annotated[int, Query(ge=1, le=100_000, description="页码")] = 1,
) -> LogQuery:
    """The filter, checked; only the audit administrator gets this far (everyone else is refused
    before a date is read)."""
    if not scope.reads_audit:
        raise scope.refuse(AUDIT_ONLY)
    tz = zoneinfo.ZoneInfo(services.settings.timezone)
    start, end = _moment(since, tz, "起始时间", False), _moment(until, tz, "截止时间", True)
    if start is not None and end is not None and end <= start:
        raise AuditFilterInvalid("截止时间应晚于起始时间。")
    person, unit_text = person.strip(), unit_id.strip()
    if unit_text and not (unit_text.isdigit() and valid_id(int(unit_text))):
        raise AuditFilterInvalid("单位编号应为数字。")
    f = LogFilter(
        person=person,
        person_ids=tuple(accounts_repository.matching_ids(session, scope, person)),
        unit_id=int(unit_text) if unit_text else None,
        action=action.strip(),
        since=start,
        until=end,
    )
    form = {"person": person, "unit_id": unit_text, "action": action.strip(), "from": since, "to": until}
    return LogQuery(f, page, form)


LogQueryDep = Annotated[LogQuery, Depends(log_query)]
