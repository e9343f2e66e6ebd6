"""An autumn term in the demo district, with the clock moved to given days (Beijing time)."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo

from openpyxl import Workbook, load_workbook
from sqlalchemy.orm import Session

from service.cases.models import Case
from service.cases.service import CaseIn, GuardianIn
from service.clock import Clock
from service.container import Services
from tests.district import scope_of, unit
from tests.rosters.roster_data import resident_id

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
#: The autumn term of the tests: a year ahead of any real clock the tests run on, so that the
#: clock (which only moves forward) can be set to each of its days.
YEAR = 2027
TERM_START = dt.date(YEAR, 9, 1)


def goto(clock: Clock, day: dt.date, hour: int = 9) -> None:
    """Move the clock to ``hour`` o'clock Beijing time on ``day``."""
    target = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)
    now = clock.now()
    assert target >= now - dt.timedelta(minutes=1), f"cannot go back to {target}"
    if target > now:
        clock.advance(target - now)


def new_case(
    services: Services,
    s: Session,
    username: str,
    school: str,
    n: int,
    name: str,
    *,
    grade: str = "七年级",
    confirmed: bool = True,
    key_groups: tuple[str, ...] = (),
    dropout_date: dt.date | None = None,
    reason: str | None = None,
    detail: str | None = None,
) -> Case:
    born = "20130510" if grade.startswith(("七", "八", "九")) else "20160510"
    case = services.cases.create(
        s,
        scope_of(s, username),
        unit(s, school).id,
        CaseIn(
            student_name=name,
            id_number=resident_id(n, born, female=False),
            sex="男",
            birth_date=dt.date(int(born[:4]), int(born[4:6]), int(born[6:])),
            grade=grade,
            class_name="一班",
            key_groups=list(key_groups),
            dropout_date=dropout_date,
            dropout_reason=reason,
            reason_detail=detail,
            confirmed=confirmed,
            guardians=[GuardianIn(f"{name[0]}家长", "父亲", f"138053{n:05d}")],
        ),
    )
    s.commit()
    return case


def sheet_rows(data: bytes, sheet: str | None = None) -> list[list[object]]:
    wb = load_workbook(io.BytesIO(data))
    ws = wb[sheet] if sheet else wb.active
    assert ws is not None
    return [list(r) for r in ws.iter_rows(values_only=True)]


def xlsx(rows: list[tuple[object, ...]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
