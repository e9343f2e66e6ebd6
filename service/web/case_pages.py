"""Pages for dropout cases, rosters and their notices: the same rules as ``api/cases.py``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select

from service.api.cases import CaseObj, RosterObj, _import_roster, case_out, issue, roster_out
from service.api.common import read_upload
from service.api.deps import JobObj, ScopeDep, SessionDep, StateDep, bureau_of_scope
from service.campaigns.models import Unit, UnitType
from service.cases.checks import RELATIONS, parse_date
from service.cases.models import ATTEMPT_METHODS, STATUS_TITLES, Case, CaseStatus, Roster
from service.cases.service import REASONS, CaseIn, GuardianIn
from service.errors import DocsignError, InvalidInput
from service.jobs.models import Job
from service.web.pages import PageUser, flash_redirect, render, templates

router = APIRouter(include_in_schema=False)
FILTERS = [("open", "未结案"), ("all", "全部"), *[(s.value, t) for s, t in STATUS_TITLES.items()]]


def _schools(session: SessionDep, scope: ScopeDep) -> list[Unit]:
    return list(
        session.scalars(select(Unit).where(Unit.id.in_(scope.units), Unit.type == UnitType.SCHOOL).order_by(Unit.id))
    )


@router.get("/cases")
def cases_page(
    request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep, status: str = "open"
) -> Response:
    query = select(Case).where(Case.school_id.in_(scope.units)).order_by(Case.id.desc())
    if status == "open":
        query = query.where(Case.status.in_(["suspected", "dropped", "persuading"]))
    elif status != "all":
        query = query.where(Case.status == status)
    cases = [case_out(session, state, c, full=False) for c in session.scalars(query)]
    due = [d.to_dict() for d in state.cases.due_for_units(session, scope.units)]
    return render(
        request,
        "cases.html",
        user,
        cases=cases,
        due=due,
        filters=FILTERS,
        status=status if status in dict(FILTERS) else "open",
    )


def _new_values() -> dict[str, Any]:
    return {
        "school_id": "",
        "student_name": "",
        "id_number": "",
        "sex": "男",
        "birth_date": "",
        "grade": "",
        "class_name": "",
        "home_address": "",
        "dropout_date": "",
        "dropout_reason": "厌学",
        "guardian_name": "",
        "guardian_relation": "父亲",
        "guardian_phone": "",
        "confirmed": False,
    }


@router.get("/cases/new")
def new_case_page(request: Request, user: PageUser, scope: ScopeDep, session: SessionDep) -> Response:
    return render(
        request,
        "case_new.html",
        user,
        values=_new_values(),
        errors={},
        schools=_schools(session, scope),
        reasons=REASONS,
        relations=RELATIONS,
    )


@router.post("/cases/new")
async def new_case(request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k, "")).strip()[:100] for k in _new_values() if k != "confirmed"}
    values["confirmed"] = form.get("confirmed") == "yes"
    errors: dict[str, str] = {}
    school = session.get(Unit, int(values["school_id"])) if values["school_id"].isdigit() else None
    if school is None or school.id not in scope.units:
        errors["_"] = "请选择学校。"
    birth = parse_date(values["birth_date"])
    if birth is None:
        errors["出生日期"] = "请填写出生日期。"
    if not errors and school is not None and birth is not None:
        data = CaseIn(
            student_name=values["student_name"],
            id_number=values["id_number"],
            sex=values["sex"],
            birth_date=birth,
            grade=values["grade"],
            class_name=values["class_name"] or None,
            home_address=values["home_address"] or None,
            dropout_date=parse_date(values["dropout_date"]),
            dropout_reason=values["dropout_reason"] or None,
            confirmed=values["confirmed"],
            guardians=[GuardianIn(values["guardian_name"], values["guardian_relation"], values["guardian_phone"])],
        )
        try:
            case = await run_in_threadpool(state.cases.create, session, school, data, scope.actor)
            session.commit()
            return flash_redirect(f"/cases/{case.id}")
        except DocsignError as exc:
            session.rollback()
            details = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
            for e in details:
                errors.setdefault(str(e["field"]), str(e["message"]))
            if not details:
                errors["_"] = exc.message
    return render(
        request,
        "case_new.html",
        user,
        values=values,
        errors=errors,
        schools=_schools(session, scope),
        reasons=REASONS,
        relations=RELATIONS,
    )


def _case_page(
    request: Request,
    user: PageUser,
    case: Case,
    state: StateDep,
    session: SessionDep,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    today = state.cases.today()
    defaults = {
        "date": today.isoformat(),
        "method": "家访",
        "staff": user.display_name,
        "result": "",
        "report_by": (today + dt.timedelta(days=7)).isoformat(),
    }
    return render(
        request,
        "case.html",
        user,
        case=case_out(session, state, case),
        errors=errors or {},
        values={**defaults, **(values or {})},
        methods=ATTEMPT_METHODS,
        open=CaseStatus(case.status) in (CaseStatus.SUSPECTED, CaseStatus.DROPPED, CaseStatus.PERSUADING),
    )


@router.get("/cases/{case_id}")
def case_page(request: Request, case: CaseObj, user: PageUser, state: StateDep, session: SessionDep) -> Response:
    return _case_page(request, user, case, state, session)


@router.post("/cases/{case_id}/attempts")
def case_attempt(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    date: Annotated[str, Form()] = "",
    method: Annotated[str, Form()] = "",
    staff: Annotated[str, Form()] = "",
    result: Annotated[str, Form()] = "",
    succeeded: Annotated[str, Form()] = "",
) -> Response:
    values = {"date": date, "method": method, "staff": staff[:60], "result": result[:200]}
    day = parse_date(date)
    try:
        if day is None:
            raise InvalidInput("请选择劝返日期。")
        state.cases.add_attempt(
            session,
            case,
            scope.actor,
            date=day,
            staff=staff,
            method=method,
            result=result,
            succeeded=succeeded == "yes",
        )
        session.commit()
        return flash_redirect(f"/cases/{case.id}")
    except DocsignError as exc:
        session.rollback()
        return _case_page(request, user, case, state, session, {"attempt": exc.message}, values)


def _action(request: Request, case: Case, user: PageUser, state: StateDep, session: SessionDep, fn: Any) -> Response:
    try:
        fn()
        session.commit()
        return flash_redirect(f"/cases/{case.id}")
    except DocsignError as exc:
        session.rollback()
        return _case_page(request, user, case, state, session, {"action": exc.message})


@router.post("/cases/{case_id}/confirm")
def case_confirm(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    return _action(request, case, user, state, session, lambda: state.cases.confirm(session, case, scope.actor))


@router.post("/cases/{case_id}/returned")
def case_returned(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    return _action(request, case, user, state, session, lambda: state.cases.returned(session, case, scope.actor))


@router.post("/cases/{case_id}/notice")
def case_notice(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    kind: Annotated[str, Form()] = "",
    report_by: Annotated[str, Form()] = "",
) -> Response:
    day = parse_date(report_by)

    def run() -> None:
        if day is None:
            raise InvalidInput("请选择报到截止日期。")
        issuer = case.school if scope.unit.type != UnitType.BUREAU else bureau_of_scope(scope)
        state.cases.issue_notice(session, case, kind, day, issuer, scope.actor)

    return _action(request, case, user, state, session, run)


@router.post("/cases/{case_id}/register")
def case_register(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    return _action(
        request, case, user, state, session, lambda: state.cases.register(session, case, scope.actor, user.display_name)
    )


# --- rosters -------------------------------------------------------------------------------------


def _rosters(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    values: dict[str, Any] | None = None,
    import_errors: list[dict[str, Any]] | None = None,
    import_error: str = "",
) -> Response:
    rosters = [
        roster_out(session, r)
        for r in session.scalars(select(Roster).where(Roster.issuer_id.in_(scope.units)).order_by(Roster.id.desc()))
    ]
    defaults = {
        "kind": "enrollment_notice",
        "report_by": (state.cases.today() + dt.timedelta(days=14)).isoformat(),
        "only_valid": False,
    }
    return render(
        request,
        "rosters.html",
        user,
        rosters=rosters,
        values={**defaults, **(values or {})},
        import_errors=import_errors or [],
        import_error=import_error,
    )


@router.get("/rosters")
def rosters_page(request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    return _rosters(request, user, scope, state, session)


@router.post("/rosters")
async def rosters_import(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form()] = "",
    report_by: Annotated[str, Form()] = "",
    only_valid: Annotated[str, Form()] = "",
) -> Response:
    values = {"kind": kind, "report_by": report_by, "only_valid": only_valid == "true"}
    try:
        if file is None or not file.filename:
            raise InvalidInput("请选择名单文件。")
        day = parse_date(report_by)
        if day is None:
            raise InvalidInput("请选择报到截止日期。")
        data = await read_upload(file, state.settings.max_sheet_bytes, "名单文件")
        result = await run_in_threadpool(
            _import_roster, scope, state, session, data, file.filename, kind, day, only_valid == "true", None
        )
        return flash_redirect(f"/rosters/{result['id']}")
    except DocsignError as exc:
        session.rollback()
        errors = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
        return _rosters(request, user, scope, state, session, values, errors, exc.message)


@router.get("/rosters/{roster_id}")
def roster_page(request: Request, roster: RosterObj, user: PageUser, session: SessionDep) -> Response:
    job = session.scalar(select(Job).where(Job.active_key == f"roster.issue:{roster.id}"))
    return render(request, "roster.html", user, r=roster_out(session, roster), job=job)


@router.post("/rosters/{roster_id}/issue")
def roster_issue(
    request: Request, roster: RosterObj, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    out = issue(roster, scope, state, session)
    return templates.TemplateResponse(request, "_roster_job.html", {"job": session.get(Job, out.id)})


@router.get("/rosters/jobs/{job_id}")
def roster_job(request: Request, job: JobObj) -> Response:
    return templates.TemplateResponse(request, "_roster_job.html", {"job": job})
