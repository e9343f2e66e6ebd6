"""四查三比对 as JSON: the bureau uploads its lists and runs the comparison; everyone lists the
findings routed to their units and answers those of their own unit."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from service.http.deps import FindingObj, ScopeDep, ServicesDep, SessionDep
from service.http.reads import ReadsDep
from service.http.uploads import read_upload
from service.ledgers import repository
from service.ledgers.compare import ListInvalid
from service.ledgers.repository import FindingFilter
from service.ledgers.schemas import finding_view, run_view, source_list_view

router = APIRouter(prefix="/api/compare", tags=["台账与报表"])

ListKind = Literal["huji", "xueji", "enrolled", "poverty", "disabled", "platform"]
Rule = Literal["id_checksum", "no_xueji", "not_enrolled", "no_register", "priority", "platform"]
Answer = Literal["transfer", "abroad", "death", "elsewhere", "at_school", "other"]


@router.get("/lists", summary="四查三比对：本局上传的名单及其各版本（教体局）")
def list_versions(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> list[dict[str, Any]]:
    tz = services.ledgers.tz
    return [source_list_view(x, tz) for x in repository.lists(session, scope)]


@router.post(
    "/lists",
    status_code=201,
    summary="上传名单（户籍、学籍、在校、脱贫/低保、残疾、平台疑似辍学）：保存为新版本并立即比对；有错误时逐行列出，一行也不保存",
)
async def upload_list(
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    kind: Annotated[ListKind, Form(description="名单种类")],
    file: Annotated[UploadFile, File(description="名单表格")],
    mapping: Annotated[
        str, Form(description="列对应关系（JSON：字段 -> 表头），可选；提供时保存为本局的对应关系")
    ] = "",
) -> dict[str, Any]:
    data = await read_upload(file, services.settings.max_sheet_bytes, "名单文件")
    try:
        columns = json.loads(mapping) if mapping.strip() else None
    except ValueError as exc:
        raise ListInvalid('列对应关系应为 JSON 对象，例如 {"name": "学生姓名"}。') from exc
    if columns is not None and not (
        isinstance(columns, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
    ):
        raise ListInvalid("列对应关系应为 JSON 对象，键和值都是文字。")

    def run() -> dict[str, Any]:
        compare = services.ledgers.compare
        listed = compare.upload(session, scope, kind, data, file.filename or "名单", columns)
        ran = compare.run(session, scope, "upload")
        session.commit()
        tz = services.ledgers.tz
        return {"list": source_list_view(listed, tz), "run": run_view(ran, tz)}

    return await run_in_threadpool(run)


@router.post("/run", summary="按各名单的最新版本重新比对（教体局）")
async def run_compare(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        ran = services.ledgers.compare.run(session, scope, "manual")
        session.commit()
        return run_view(ran, services.ledgers.tz)

    return await run_in_threadpool(run)


@router.get("/summary", summary="比对线索按原因、按乡镇统计（本人可见的单位）")
def summary(scope: ScopeDep, session: SessionDep) -> dict[str, Any]:
    counted = repository.summary(session, scope)
    return {
        "open": counted.open,
        "answered": counted.answered,
        "by_rule": {rule: {"open": o, "answered": a} for rule, (o, a) in counted.by_rule.items()},
        "by_township": counted.by_township,
    }


@router.get("/findings", summary="比对线索列表（学校只看本校的；身份证号已遮盖）")
def findings(
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    rule: Annotated[Rule | None, Query(description="比对规则")] = None,
    status: Annotated[Literal["open", "answered"] | None, Query(description="open 待答复，answered 已答复")] = None,
    unit: Annotated[int | None, Query(description="所属单位编号")] = None,
    township: Annotated[str | None, Query(max_length=30, description="乡镇（街道）")] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> dict[str, Any]:
    where = FindingFilter(rule, status, unit, township, page)
    found = repository.findings(session, scope, where)
    reads.record("compare_findings", rows=len(found.rows), **where.shown())
    tz = services.ledgers.tz
    return {
        "total": found.total,
        "page": found.page,
        "pages": found.pages,
        "findings": [finding_view(f, tz) for f in found.rows],
    }


@router.post(
    "/findings/{finding_id}/answer", summary="答复比对线索（转学、出国、死亡、在外地就读、已在校、其他），可附证明材料"
)
async def answer_finding(
    finding: FindingObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reason: Annotated[Answer, Form(description="答复原因")],
    note: Annotated[str, Form(max_length=200, description="说明；原因为“其他”时必填")] = "",
    evidence: Annotated[UploadFile | None, File(description="证明材料，可选")] = None,
) -> dict[str, Any]:
    proof = None
    if evidence is not None and evidence.filename:
        proof = (evidence.filename, await read_upload(evidence, services.settings.max_pdf_bytes, "证明材料"))
    services.ledgers.compare.answer(session, scope, finding, reason, note, proof)
    session.commit()
    return finding_view(finding, services.ledgers.tz)
