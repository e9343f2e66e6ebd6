"""The ledgers, due items, district figures and reports as JSON, read-only, with the pages' role
rules: a school sees only its own, an office its schools, the bureau all (``Ledgers.unit_for``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.ledgers.reports import MONTHLY, TERM, WEEKLY
from service.ledgers.schemas import district_view, draft_view, ledger_view, report_row, unit_brief

router = APIRouter(prefix="/api", tags=["台账与报表"])

UnitQuery = Annotated[int | None, Query(description="单位编号；默认本单位，只能是本人可见的单位")]
#: The report kinds by the names the API uses.
KINDS = {"monthly": MONTHLY, "weekly": WEEKLY, "term": TERM}
KindPath = Literal["monthly", "weekly", "term"]


@router.get("/ledgers/units", summary="本人可以查看台账的单位（本单位在前）")
def ledger_units(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> list[dict[str, Any]]:
    return [unit_brief(u) for u in services.ledgers.units_for(session, scope)]


@router.get(
    "/ledgers/{key}",
    summary="三本台账：适龄儿童台账（children）、疑似辍学学生台账（suspected）、辍学学生台账（dropouts）",
)
def ledger(
    key: Literal["children", "suspected", "dropouts"],
    scope: ScopeDep,
    reads: ReadsDep,
    services: ServicesDep,
    session: SessionDep,
    unit: UnitQuery = None,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="适龄儿童台账的入学年份，默认本学年")] = None,
) -> dict[str, Any]:
    ledger = services.ledgers.ledger_for(session, scope, key, unit, year)
    reads.ledger(ledger, year=year)
    return ledger_view(ledger)


@router.get(
    "/district",
    summary="控辍保学总览：各教育办和学校的在册个案、逾期事项、迟报漏报、巩固率，以及本学期逐周的在册个案",
)
def district(scope: ScopeDep, services: ServicesDep, session: SessionDep, unit: UnitQuery = None) -> dict[str, Any]:
    return district_view(services.ledgers.district_for(session, scope, unit))


@router.get(
    "/district/overdue",
    summary="逾期事项（学校看到本校全部逾期事项，教育办和教体局看到所辖学校的逾期事项），注明依据",
)
def overdue(scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep) -> list[dict[str, Any]]:
    items = [d.to_dict() for d in services.ledgers.due(session, scope) if d.overdue]
    reads.record("due_list", rows=len(items), overdue=True)  # due items name the children of their cases
    return items


@router.get(
    "/reports/{kind}",
    summary="本单位（或可见单位）的月报表（monthly）、周报告（weekly）或学生失学辍学信息报告（term）：各期状态和最新签章版本",
)
def reports(
    kind: KindPath, scope: ScopeDep, services: ServicesDep, session: SessionDep, unit: UnitQuery = None
) -> list[dict[str, Any]]:
    target = services.ledgers.unit_for(session, scope, unit)
    now, tz = services.clock.now(), services.ledgers.tz
    return [report_row(a, v, now, tz) for a, v in services.ledgers.reports.filed(session, target, KINDS[kind])]


@router.get(
    "/reports/{kind}/{period}",
    summary="一期报表：由数据生成（学校）或由下级已签章版本汇总（教育办、教体局）的当前数字，已签章的各版本及差异",
)
def report(
    kind: KindPath,
    period: str,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    unit: UnitQuery = None,
) -> dict[str, Any]:
    target = services.ledgers.unit_for(session, scope, unit)
    reports = services.ledgers.reports
    draft = reports.draft_of(session, target, KINDS[kind], period)
    view = draft_view(draft, reports.versions(session, target.id, period), services.ledgers.tz)
    students = draft.figures.get("students") if KINDS[kind].lists_children else None
    if students:  # the 信息报告 names its children: a read of them
        reads.record("report_summary", target.id, rows=len(students), kind=KINDS[kind].assignment, period=period)
    return view
