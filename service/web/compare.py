"""四查三比对 on a page: the bureau uploads its lists and runs the comparison; every unit sees the
summary by reason and the findings routed to it (身份证号 masked), and answers its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.errors import DocsignError, InvalidInput
from service.http.deps import FindingObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.ledgers import repository
from service.ledgers.compare import ANSWERS, RULES, SOURCE_TITLES
from service.ledgers.exchange import LIST_KINDS
from service.ledgers.repository import FindingFilter
from service.ledgers.schemas import finding_view, run_view, source_list_view
from service.web.common import PageUser, form_errors, render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    where: FindingFilter,
    **context: Any,
) -> Response:
    tz = services.ledgers.tz
    found = repository.findings(session, scope, where)
    # the list names children: one read of it with its filter and rows
    reads.record("compare_findings", rows=len(found.rows), **where.shown())
    is_bureau = user.role == "bureau_staff" and user.unit.type == "bureau"
    last = repository.last_run(session, scope) if is_bureau else None
    return render(
        request,
        "compare.html",
        user,
        is_bureau=is_bureau,
        kinds=LIST_KINDS,
        rules=RULES,
        answers=ANSWERS,
        sources=SOURCE_TITLES,
        lists=[source_list_view(x, tz) for x in repository.lists(session, scope)] if is_bureau else [],
        last_run=run_view(last, tz) if last is not None else None,
        summary=repository.summary(session, scope),
        found=found,
        findings=[finding_view(f, tz) for f in found.rows],
        where=where,
        **{"errors": [], "message": None, **context},
    )


@router.get("/compare")
def compare_page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    rule: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=10)] = "",
    township: Annotated[str | None, Query(max_length=30)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    where = FindingFilter(
        rule if rule in RULES else None,
        status if status in ("open", "answered") else None,
        None,
        township or None,
        page,
    )
    return _page(request, user, scope, services, session, reads, where)


@router.post("/compare/lists")
async def compare_upload(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    kind: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if file is None or not file.filename:
            raise InvalidInput("请选择名单文件。")
        data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")
        name = file.filename

        def run() -> tuple[Any, Any]:
            compare = services.ledgers.compare
            listed = compare.upload(session, scope, kind, data, name)
            ran = compare.run(session, scope, "upload")
            session.commit()
            return listed, ran

        listed, ran = await run_in_threadpool(run)
    except DocsignError as exc:
        session.rollback()
        if exc.http_status == 403:
            raise
        return _page(
            request,
            user,
            scope,
            services,
            session,
            reads,
            FindingFilter(),
            errors=form_errors(exc),
            message=exc.message,
        )
    message = (
        f"已保存{LIST_KINDS[listed.kind]}第 {listed.version} 版（{listed.children} 人"
        + (f"，其中身份证号校验不符 {listed.invalid_ids} 人" if listed.invalid_ids else "")
        + f"），并已比对：新发现线索 {ran.new_findings} 条。"
    )
    return _page(request, user, scope, services, session, reads, FindingFilter(), message=message)


@router.post("/compare/run")
async def compare_run(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep, reads: ReadsDep
) -> Response:
    try:

        def run() -> Any:
            ran = services.ledgers.compare.run(session, scope, "manual")
            session.commit()
            return ran

        ran = await run_in_threadpool(run)
    except DocsignError as exc:
        session.rollback()
        if exc.http_status == 403:
            raise
        return _page(request, user, scope, services, session, reads, FindingFilter(), message=exc.message, errors=[])
    message = f"已按各名单的最新版本比对，用时 {ran.seconds:.1f} 秒：新发现线索 {ran.new_findings} 条。"
    return _page(request, user, scope, services, session, reads, FindingFilter(), message=message)


@router.post("/compare/findings/{finding_id}/answer")
async def compare_answer(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    finding: FindingObj,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=200)] = "",
    evidence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        proof = None
        if evidence is not None and evidence.filename:
            proof = (evidence.filename, await read_upload(evidence, services.settings.max_pdf_bytes, "证明材料"))
        services.ledgers.compare.answer(session, scope, finding, reason, note, proof)
        session.commit()
    except DocsignError as exc:
        session.rollback()
        if exc.http_status == 403:
            raise
        return _page(request, user, scope, services, session, reads, FindingFilter(), message=exc.message, errors=[])
    message = f"已答复：{finding.student_name}（{ANSWERS[finding.answer or 'other']}）。"
    return _page(request, user, scope, services, session, reads, FindingFilter(), message=message)
