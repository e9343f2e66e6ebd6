"""Pages for dropout cases: the list with what is due, registering, a case with its 劝返 and notices."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select

from service.cases.checks import RELATIONS, parse_date
from service.cases.models import (
    ATTEMPT_METHODS,
    DEFERRAL_BASES,
    OPEN_STATUSES,
    REASONS,
    STATUS_TITLES,
    WRITE_OFF_EVIDENCE,
    WRITE_OFF_REASONS,
    Case,
    CaseStatus,
)
from service.cases.schemas import case_view
from service.cases.service import CaseIn, GuardianIn
from service.errors import DocsignError, InvalidInput
from service.http.deps import CaseObj, ScopeDep, ServicesDep, SessionDep
from service.http.uploads import read_upload
from service.units.models import Unit, UnitType
from service.web.common import PageUser, flash_redirect, form_errors, render

router = APIRouter(include_in_schema=False)
FILTERS = [("open", "未结案"), ("all", "全部"), *[(s.value, t) for s, t in STATUS_TITLES.items()]]


def _schools(session: SessionDep, scope: ScopeDep) -> list[Unit]:
    return list(
        session.scalars(select(Unit).where(Unit.id.in_(scope.units), Unit.type == UnitType.SCHOOL).order_by(Unit.id))
    )


@router.get("/cases")
def cases_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, status: str = "open"
) -> Response:
    query = select(Case).where(Case.school_id.in_(scope.units)).order_by(Case.id.desc())
    if status == "open":
        query = query.where(Case.status.in_([s.value for s in OPEN_STATUSES]))
    elif status != "all":
        query = query.where(Case.status == status)
    cases = [case_view(session, services.cases, c, full=False) for c in session.scalars(query)]
    due = [d.to_dict() for d in services.ledgers.due(session, scope)]
    session.commit()  # the bureau's default rules, made the first time they are read
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
async def new_case(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k, "")).strip()[:100] for k in _new_values() if k != "confirmed"}
    values["confirmed"] = form.get("confirmed") == "yes"
    errors: dict[str, str] = {}
    school_id = int(values["school_id"]) if values["school_id"].isdigit() else None
    if school_id is None:
        errors["_"] = "请选择学校。"
    birth = parse_date(values["birth_date"])
    if birth is None:
        errors["出生日期"] = "请填写出生日期。"
    if not errors and school_id is not None and birth is not None:
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
            case = await run_in_threadpool(services.cases.create, session, scope, school_id, data)
            session.commit()
            return flash_redirect(f"/cases/{case.id}")
        except DocsignError as exc:
            session.rollback()
            details = form_errors(exc)
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
    services: ServicesDep,
    session: SessionDep,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    today = services.cases.today()
    defaults = {
        "date": today.isoformat(),
        "method": "家访",
        "staff": user.display_name,
        "result": "",
        "report_by": (today + dt.timedelta(days=7)).isoformat(),
        "back_on": today.isoformat(),
        "approved_on": today.isoformat(),
        "reason": "",
        "basis": "",
        "authority": "",
        "note": "",
        "defer_note": "",
    }
    return render(
        request,
        "case.html",
        user,
        case=case_view(session, services.cases, case),
        errors=errors or {},
        values={**defaults, **(values or {})},
        methods=ATTEMPT_METHODS,
        open=CaseStatus(case.status) in OPEN_STATUSES,
        write_off_reasons=[(k, v, WRITE_OFF_EVIDENCE[k]) for k, v in WRITE_OFF_REASONS.items()],
        deferral_bases=list(DEFERRAL_BASES.items()),
        changes=services.ledgers.changes(session, [case.id])[case.id],
        tz=services.ledgers.tz,
        joint_attempts=sum(1 for a in case.attempts if a.method == "联合劝返"),
    )


@router.get("/cases/{case_id}")
def case_page(request: Request, case: CaseObj, user: PageUser, services: ServicesDep, session: SessionDep) -> Response:
    return _case_page(request, user, case, services, session)


@router.post("/cases/{case_id}/attempts")
def case_attempt(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
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
        services.cases.add_attempt(
            session,
            scope,
            case,
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
        return _case_page(request, user, case, services, session, {"attempt": exc.message}, values)


def _action(
    request: Request,
    case: Case,
    user: PageUser,
    services: ServicesDep,
    session: SessionDep,
    fn: Any,
    form: str = "action",
    values: dict[str, Any] | None = None,
) -> Response:
    try:
        fn()
        session.commit()
        return flash_redirect(f"/cases/{case.id}")
    except DocsignError as exc:
        session.rollback()
        return _case_page(request, user, case, services, session, {form: exc.message}, values)


@router.post("/cases/{case_id}/confirm")
def case_confirm(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    return _action(request, case, user, services, session, lambda: services.cases.confirm(session, scope, case))


@router.post("/cases/{case_id}/returned")
def case_returned(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    back_on: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    def run() -> None:
        day = parse_date(back_on)
        if day is None:
            raise InvalidInput("请填写学生返校的日期。")
        services.cases.returned(session, scope, case, day, note)

    return _action(request, case, user, services, session, run, "returned", {"back_on": back_on, "note": note})


async def _files(services: ServicesDep, files: list[UploadFile] | None, what: str) -> list[tuple[str, bytes]]:
    out = []
    for f in files or []:
        if f.filename:  # a phone's empty file input sends a part without a name
            out.append((f.filename, await read_upload(f, services.settings.max_pdf_bytes, what)))
    return out


@router.post("/cases/{case_id}/write-off")
async def case_write_off(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    values = {"reason": reason, "note": note}
    try:
        evidence = await _files(services, files, "证明材料")
    except DocsignError as exc:
        return _case_page(request, user, case, services, session, {"write_off": exc.message}, values)

    def run() -> Response:
        return _action(
            request,
            case,
            user,
            services,
            session,
            lambda: services.cases.write_off(session, scope, case, reason, evidence, note),
            "write_off",
            values,
        )

    return await run_in_threadpool(run)


@router.post("/cases/{case_id}/defer")
async def case_defer(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    basis: Annotated[str, Form()] = "",
    authority: Annotated[str, Form()] = "",
    approved_on: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    values = {"basis": basis, "authority": authority[:60], "approved_on": approved_on, "defer_note": note}
    try:
        approval = await _files(services, files, "批准文件")
    except DocsignError as exc:
        return _case_page(request, user, case, services, session, {"defer": exc.message}, values)

    def run() -> Response:
        return _action(
            request,
            case,
            user,
            services,
            session,
            lambda: services.cases.defer(
                session,
                scope,
                case,
                basis=basis,
                authority=authority,
                approved_on=parse_date(approved_on),
                approval=approval,
                note=note,
            ),
            "defer",
            values,
        )

    return await run_in_threadpool(run)


@router.post("/cases/{case_id}/notice")
def case_notice(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    kind: Annotated[str, Form()] = "",
    report_by: Annotated[str, Form()] = "",
) -> Response:
    day = parse_date(report_by)

    def run() -> None:
        if day is None:
            raise InvalidInput("请选择报到截止日期。")
        services.cases.issue_notice(session, scope, case, kind, day)

    return _action(request, case, user, services, session, run)


@router.post("/cases/{case_id}/register")
def case_register(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    return _action(request, case, user, services, session, lambda: services.cases.register(session, scope, case))
