"""Exchange with the platforms: the 疑似辍学 list imported with the bureau's column mapping, and a
roster compared with the 学籍系统's export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.errors import DocsignError, InvalidInput
from service.http.deps import ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.ledgers.exchange import LEDGER_FIELDS, SUSPECTED_FIELDS
from service.units.service import bureau_of
from service.web.common import PageUser, form_errors, render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    **context: Any,
) -> Response:
    bureau = bureau_of(scope.unit)
    mapping = services.ledgers.exchange.mapping(session, bureau)
    export = services.ledgers.exchange.mapping(session, bureau, "ledger_export")
    typed = context.pop("typed", {})
    typed_kind = context.pop("typed_kind", "suspected_import")
    return render(
        request,
        "exchange.html",
        user,
        fields=SUSPECTED_FIELDS,
        mapping={**mapping, **(typed if typed_kind == "suspected_import" else {})},
        export_fields=LEDGER_FIELDS,
        export={**export, **(typed if typed_kind == "ledger_export" else {})},
        can_map=user.role == "bureau_staff",
        **{"errors": [], "message": None, "result": None, "comparison": None, **context},
    )


@router.get("/exchange")
def exchange_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    return _page(request, user, scope, services, session)


@router.post("/exchange/mapping")
async def exchange_mapping(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    form = await request.form()
    kind = "ledger_export" if form.get("kind") == "ledger_export" else "suspected_import"
    fields = LEDGER_FIELDS if kind == "ledger_export" else SUSPECTED_FIELDS
    typed = {f.key: str(form.get(f"map_{f.key}", ""))[:40] for f in fields}
    try:
        services.ledgers.exchange.set_mapping(session, scope, typed, kind)
        session.commit()
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
            typed=typed,
            typed_kind=kind,
            errors=form_errors(exc),
            message=exc.message,
        )
    return _page(request, user, scope, services, session, message="已保存列对应关系。")


@router.post("/exchange/suspected")
async def exchange_suspected(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    file: Annotated[UploadFile | None, File()] = None,
    only_valid: Annotated[str, Form()] = "",
) -> Response:
    try:
        if file is None or not file.filename:
            raise InvalidInput("请选择平台下发的疑似辍学名单文件。")
        data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")
        name = file.filename

        def run() -> Any:
            out = services.ledgers.exchange.import_suspected(session, scope, data, name, only_valid=only_valid == "yes")
            session.commit()
            return out

        result = await run_in_threadpool(run)
    except DocsignError as exc:
        session.rollback()
        return _page(request, user, scope, services, session, errors=form_errors(exc), message=exc.message)
    # the answer names the students of the cases made and of the rows skipped
    reads.record("exchange_import", rows=len(result.created) + len(result.skipped), file=name[:60])
    return _page(request, user, scope, services, session, result=result, errors=result.errors)


@router.post("/exchange/compare")
async def exchange_compare(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    roster: Annotated[UploadFile | None, File()] = None,
    xueji: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if roster is None or not roster.filename or xueji is None or not xueji.filename:
            raise InvalidInput("请选择名单和学籍系统导出表两个文件。")
        ours = (await read_upload(roster, services.settings.max_sheet_bytes, "名单"), roster.filename)
        theirs = (await read_upload(xueji, services.settings.max_sheet_bytes, "学籍系统导出表"), xueji.filename)
        comparison = await run_in_threadpool(services.ledgers.exchange.compare, ours, theirs)
    except DocsignError as exc:
        return _page(request, user, scope, services, session, errors=form_errors(exc), message=exc.message)
    # the answer lists the children found in one list and not in the other
    reads.record("exchange_compare", rows=len(comparison.only_roster) + len(comparison.only_register))
    return _page(request, user, scope, services, session, comparison=comparison)
