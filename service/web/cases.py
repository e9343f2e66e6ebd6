"""Pages for dropout cases: the list with what is due, registering, a case with its 劝返 and notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile as StarletteUpload

from service.accounts.models import Role
from service.cases import repository as cases_repository
from service.cases.checks import RELATIONS, parse_date
from service.cases.models import (
    ATTEMPT_METHODS,
    DEFERRAL_BASES,
    KEY_GROUPS,
    OPEN_STATUSES,
    REASONS,
    STATUS_TITLES,
    WRITE_OFF_EVIDENCE,
    WRITE_OFF_REASONS,
    Case,
    CaseStatus,
)
from service.cases.schemas import attachment_type, case_file_name, case_view
from service.cases.service import CaseIn, GuardianIn
from service.errors import DocsignError, InvalidInput, NotFoundForUser, UploadInvalid
from service.http.deps import CaseObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.units import repository as units_repository
from service.units.models import Unit
from service.units.service import bureau_of
from service.web.common import PageUser, flash_redirect, form_errors, render

router = APIRouter(include_in_schema=False)
FILTERS = [("open", "未结案"), ("all", "全部"), *[(s.value, t) for s, t in STATUS_TITLES.items()]]


def _schools(session: SessionDep, scope: ScopeDep) -> list[Unit]:
    return list(units_repository.schools(session, scope))


@router.get("/cases")
def cases_page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    status: str = "open",
) -> Response:
    cases = [case_view(session, services.cases, c, full=False) for c in cases_repository.cases(session, scope, status)]
    due = [d.to_dict() for d in services.ledgers.due(session, scope)]
    reads.record("case_list", rows=len(cases), status=status, due=len(due))
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
        "student_number": "",
        "ethnicity": "",
        "home_address": "",
        "key_groups": [],
        "dropout_date": "",
        # no reason and no relation is chosen for the user: a suspected case may not know its
        # reason yet (saved empty, printed as a dash), and the guardian's relation must be chosen
        "dropout_reason": "",
        "reason_detail": "",
        "measures": "",
        "guardian_name": "",
        "guardian_relation": "",
        "guardian_phone": "",
        "guardian_address": "",
        "confirmed": False,
    }


#: Form fields kept longer than a line.
LONG_FIELDS = {"reason_detail", "measures"}


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
        key_groups=KEY_GROUPS,
    )


@router.post("/cases/new")
async def new_case(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        k: str(form.get(k, "")).strip()[: 500 if k in LONG_FIELDS else 100]
        for k in _new_values()
        if k not in ("confirmed", "key_groups")
    }
    values["confirmed"] = form.get("confirmed") == "yes"
    values["key_groups"] = [str(g) for g in form.getlist("key_groups")]
    errors: dict[str, str] = {}
    school_id = int(values["school_id"]) if values["school_id"].isdigit() else None
    if school_id is None:
        errors["_"] = "请选择学校。"
    birth = parse_date(values["birth_date"])
    if birth is None:
        errors["出生日期"] = "请填写出生日期。"
    if not values["guardian_relation"]:
        errors["与学生关系"] = "请选择监护人与学生的关系。"
    if not errors and school_id is not None and birth is not None:
        data = CaseIn(
            student_name=values["student_name"],
            id_number=values["id_number"],
            sex=values["sex"],
            birth_date=birth,
            grade=values["grade"],
            class_name=values["class_name"] or None,
            student_number=values["student_number"] or None,
            ethnicity=values["ethnicity"] or None,
            home_address=values["home_address"] or None,
            key_groups=values["key_groups"],
            dropout_date=parse_date(values["dropout_date"]),
            dropout_reason=values["dropout_reason"] or None,
            reason_detail=values["reason_detail"] or None,
            measures=values["measures"] or None,
            confirmed=values["confirmed"],
            guardians=[
                GuardianIn(
                    values["guardian_name"],
                    values["guardian_relation"],
                    values["guardian_phone"],
                    values["guardian_address"][:100] or None,
                )
            ],
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
        key_groups=KEY_GROUPS,
    )


def _case_page(
    request: Request,
    user: PageUser,
    case: Case,
    services: ServicesDep,
    session: SessionDep,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    flash: dict[str, str] | None = None,
) -> Response:
    today = services.cases.today()
    defaults = {
        "date": today.isoformat(),
        "method": "家访",
        "staff": user.display_name,
        "result": "",
        "report_by": (today + dt.timedelta(days=7)).isoformat(),
        "kind": "return_notice",
        "back_on": today.isoformat(),
        "approved_on": today.isoformat(),
        "reason": "",
        "basis": "",
        "authority": "",
        "note": "",
        "defer_note": "",
        "visit_date": today.isoformat(),
        "teachers": user.display_name,
        "content": "",
        "on": today.isoformat(),
        "erase_reason": "",
    }
    return render(
        request,
        "case.html",
        user,
        case=case_view(session, services.cases, case, due=services.ledgers.deadlines.case_items(session, case)),
        errors=errors or {},
        values={**defaults, **(values or {})},
        methods=ATTEMPT_METHODS,
        open=CaseStatus(case.status) in OPEN_STATUSES,
        may_erase=user.role == Role.BUREAU.value
        and case.erased_at is None
        and CaseStatus(case.status) not in OPEN_STATUSES,
        flash=flash,
        max_attachments=MAX_ATTACHMENTS,
        write_off_reasons=[(k, v, WRITE_OFF_EVIDENCE[k]) for k, v in WRITE_OFF_REASONS.items()],
        deferral_bases=list(DEFERRAL_BASES.items()),
        changes=services.ledgers.changes(session, [case.id])[case.id],
        tz=services.ledgers.tz,
        joint_attempts=sum(1 for a in case.attempts if a.method == "联合劝返"),
        today=today.isoformat(),
        visit_rule=next(
            r for r in services.ledgers.deadlines.rules(session, bureau_of(case.school)) if r.key == "home_teaching"
        ),
    )


#: What a case page says after an action redirected to it (``?done=...``).
DONE_MESSAGES = {"attempt": "已记录这次劝返。", "home_visit": "已记录这次送教上门。"}


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    case: CaseObj,
    user: PageUser,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    done: str = "",
) -> Response:
    flash = {"tone": "ok", "text": DONE_MESSAGES[done]} if done in DONE_MESSAGES else None
    page = _case_page(request, user, case, services, session, flash=flash)
    reads.case(case)
    return page


#: 劝返 material a page accepts with an attempt (photos of the visit, a signed 承诺书, a recording).
MAX_ATTACHMENTS = 5


@router.post("/cases/{case_id}/attempts")
async def case_attempt(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
) -> Response:
    form = await request.form()
    date, method, staff, result, note = (str(form.get(k, "")) for k in ("date", "method", "staff", "result", "note"))
    values = {"date": date, "method": method, "staff": staff[:60], "result": result[:200], "note": note[:200]}
    day = parse_date(date)
    try:
        uploads = [f for f in form.getlist("attachments") if isinstance(f, StarletteUpload) and f.filename]
        if len(uploads) > MAX_ATTACHMENTS:
            raise UploadInvalid(f"每次劝返最多上传 {MAX_ATTACHMENTS} 个附件。")
        attachments = [
            (f.filename or "附件", await read_upload(f, services.settings.max_pdf_bytes, f"附件「{f.filename}」"))
            for f in uploads
        ]
        if day is None:
            raise InvalidInput("请选择劝返日期。")

        def run() -> None:
            services.cases.add_attempt(
                session,
                scope,
                case,
                date=day,
                staff=staff,
                method=method,
                result=result,
                succeeded=form.get("succeeded") == "yes",
                note=note or None,
                attachments=attachments,
            )
            session.commit()

        await run_in_threadpool(run)
        return flash_redirect(f"/cases/{case.id}?done=attempt")
    except DocsignError as exc:
        session.rollback()
        return _case_page(request, user, case, services, session, {"attempt": exc.message}, values)


@router.get("/cases/{case_id}/files/{file_id}")
def case_file(
    case: CaseObj, file_id: int, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep
) -> Response:
    """An attachment of the case's 劝返 record, for the users who see the case."""
    f = cases_repository.case_file(session, scope, case, file_id)
    if f is None:
        raise NotFoundForUser("没有这个附件。")
    reads.case(case, file_id=f.id)
    media_type, disposition = attachment_type(f.filename)
    return StreamingResponse(
        services.archive.stores["files"].stream(f.sha256),
        media_type=media_type,
        headers={"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(f.filename)}"},
    )


def _action(
    request: Request,
    case: Case,
    user: PageUser,
    services: ServicesDep,
    session: SessionDep,
    fn: Any,
    where: str = "action",
    values: dict[str, Any] | None = None,
) -> Response:
    try:
        fn()
        session.commit()
        return flash_redirect(f"/cases/{case.id}")
    except DocsignError as exc:
        session.rollback()
        return _case_page(request, user, case, services, session, {where: exc.message}, values)


@router.post("/cases/{case_id}/confirm")
def case_confirm(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    on: Annotated[str, Form()] = "",
) -> Response:
    def run() -> None:
        day = parse_date(on) if on.strip() else None
        if on.strip() and day is None:
            raise InvalidInput("核实日期应写成 年-月-日，例如 2026-11-20。")
        services.cases.confirm(session, scope, case, day)

    return _action(request, case, user, services, session, run, "confirm", {"on": on})


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


async def _act_with_files(
    request: Request,
    case: Case,
    user: PageUser,
    services: ServicesDep,
    session: SessionDep,
    files: list[UploadFile] | None,
    what: str,
    act: Callable[[list[tuple[str, bytes]]], object],
    where: str,
    values: dict[str, Any],
) -> Response:
    """Read the uploaded files, then run the act with them off the event loop; errors show at `where`."""
    try:
        uploaded = await _files(services, files, what)
    except DocsignError as exc:
        return _case_page(request, user, case, services, session, {where: exc.message}, values)
    return await run_in_threadpool(
        _action, request, case, user, services, session, lambda: act(uploaded), where, values
    )


@router.post("/cases/{case_id}/erasure")
def case_erasure(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """A guardian's request to delete a closed case's personal data, done by bureau staff."""
    return _action(
        request,
        case,
        user,
        services,
        session,
        lambda: services.retention.erase_case_on_request(session, scope, case, reason),
        "erase",
        {"erase_reason": reason[:200]},
    )


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
    return await _act_with_files(
        request,
        case,
        user,
        services,
        session,
        files,
        "证明材料",
        lambda evidence: services.cases.write_off(session, scope, case, reason, evidence, note),
        "write_off",
        values,
    )


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
    home_teaching: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    values = {
        "basis": basis,
        "authority": authority[:60],
        "approved_on": approved_on,
        "defer_note": note,
        "home_teaching": home_teaching == "yes",
    }
    return await _act_with_files(
        request,
        case,
        user,
        services,
        session,
        files,
        "批准文件",
        lambda approval: services.cases.defer(
            session,
            scope,
            case,
            basis=basis,
            authority=authority,
            approved_on=parse_date(approved_on),
            approval=approval,
            note=note,
            home_teaching=home_teaching == "yes",
        ),
        "defer",
        values,
    )


@router.post("/cases/{case_id}/home-visits")
async def case_home_visit(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    visit_date: Annotated[str, Form()] = "",
    teachers: Annotated[str, Form()] = "",
    content: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    """A 送教上门 visit to a deferred child taught at home, with its record (a photo or a signed sheet)."""
    values = {"visit_date": visit_date, "teachers": teachers[:60], "content": content[:200]}
    response = await _act_with_files(
        request,
        case,
        user,
        services,
        session,
        files,
        "送教记录",
        lambda evidence: services.cases.add_home_visit(
            session,
            scope,
            case,
            date=parse_date(visit_date),
            teachers=teachers,
            content=content,
            evidence=evidence,
        ),
        "home_visit",
        values,
    )
    if response.status_code == 303:
        return flash_redirect(f"/cases/{case.id}?done=home_visit")
    return response


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

    # the error shows at the notice form, which keeps the date and the kind that were chosen
    return _action(request, case, user, services, session, run, "notice", {"report_by": report_by, "kind": kind})


@router.post("/cases/{case_id}/file")
def case_file_download(
    request: Request,
    case: CaseObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
) -> Response:
    """生成案卷: the case file, certified by the bureau and archived, downloaded at once."""
    try:
        doc, issued = services.cases.case_file(session, scope, case)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        page = _case_page(request, user, case, services, session, {"file": exc.message})
        reads.case(case)
        return page
    reads.case(case, case_file=doc.id)  # the file shows the child in full
    return Response(
        issued.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(case_file_name(case))}",
            "X-Verification-Code": issued.code,
        },
    )


@router.post("/cases/{case_id}/register")
def case_register(
    request: Request, case: CaseObj, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    return _action(request, case, user, services, session, lambda: services.cases.register(session, scope, case))
