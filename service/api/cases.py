from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.campaigns import job_out
from service.api.common import read_upload
from service.api.deps import ScopeDep, SessionDep, StateDep, bureau_of_scope
from service.archive.models import Document
from service.archive.store import ArchivedFileMissing, LocalArchive
from service.campaigns.errors import NotFoundForUser, UploadInvalid
from service.campaigns.ledger import safe_cell
from service.campaigns.models import Unit, UnitType
from service.campaigns.schemas import JobOut
from service.cases.batch import create_roster, issue_roster
from service.cases.errors import RosterInvalid
from service.cases.models import STATUS_TITLES, WRITE_OFF_REASONS, Case, CaseStatus, PrintBundle, Roster, RosterEntry
from service.cases.roster import check_roster, schools_in
from service.cases.schemas import AttemptBody, CaseBody, NoticeBody, ReasonBody
from service.cases.service import CaseIn, GuardianIn
from service.documents.registry import get_kind
from service.jobs.runner import JobProgress

router = APIRouter(prefix="/api", tags=["辍学个案与通知书"])
NOTICE_KINDS = ("enrollment_notice", "return_notice", "deadline_return_notice")


def visible_case(case_id: int, scope: ScopeDep, session: SessionDep) -> Case:
    case = session.get(Case, case_id)
    if case is None or case.school_id not in scope.units:
        raise NotFoundForUser()
    return case


def visible_roster(roster_id: int, scope: ScopeDep, session: SessionDep) -> Roster:
    roster = session.get(Roster, roster_id)
    if roster is None or roster.issuer_id not in scope.units:
        raise NotFoundForUser()
    return roster


CaseObj = Annotated[Case, Depends(visible_case)]
RosterObj = Annotated[Roster, Depends(visible_roster)]


def document_brief(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "title": get_kind(doc.kind).title,
        "status": doc.status,
        "issued_at": doc.issued_at.isoformat(),
        "report_by": doc.fields.get("report_by"),
        "sha256": doc.current_sha256,
        "opened_at": doc.opened_at.isoformat() if doc.opened_at else None,
        "opened_count": doc.opened_count,
        "confirmed_at": doc.confirmed_at.isoformat() if doc.confirmed_at else None,
    }


def case_out(session: Session, state: StateDep, case: Case, full: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": case.id,
        "school_id": case.school_id,
        "school": case.school.name,
        "student_name": case.student_name,
        "sex": case.sex,
        "grade_class": case.grade_class,
        "status": case.status,
        "status_title": STATUS_TITLES[CaseStatus(case.status)],
        "dropout_date": case.dropout_date,
        "key_groups": case.key_groups,
        "attempts": len(case.attempts),
    }
    if full:
        docs = session.scalars(select(Document).where(Document.case_id == case.id).order_by(Document.issued_at))
        out.update(
            {
                "id_number": case.id_number,
                "student_number": case.student_number,
                "birth_date": case.birth_date,
                "home_address": case.home_address,
                "dropout_reason": case.dropout_reason,
                "reason_detail": case.reason_detail,
                "write_off_reason": WRITE_OFF_REASONS.get(case.write_off_reason or ""),
                "guardians": [
                    {"name": g.name, "relation": g.relation, "phone": g.phone, "address": g.address}
                    for g in case.guardians
                ],
                "attempt_list": [
                    {
                        "id": a.id,
                        "date": a.date,
                        "staff": a.staff,
                        "method": a.method,
                        "result": a.result,
                        "succeeded": a.succeeded,
                        "note": a.note,
                    }
                    for a in case.attempts
                ],
                "documents": [document_brief(d) for d in docs],
                "due": [d.to_dict() for d in state.cases.due(session, case)],
            }
        )
    return out


@router.get("/cases", summary="本人可见学校的辍学个案")
def list_cases(
    scope: ScopeDep, state: StateDep, session: SessionDep, status: str | None = None
) -> list[dict[str, Any]]:
    query = select(Case).where(Case.school_id.in_(scope.units)).order_by(Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    return [case_out(session, state, c, full=False) for c in session.scalars(query)]


@router.post("/cases", status_code=201, summary="登记辍学（或疑似辍学）学生")
def create_case(body: CaseBody, scope: ScopeDep, state: StateDep, session: SessionDep) -> dict[str, Any]:
    school = session.get(Unit, body.school_id)
    if school is None or school.id not in scope.units:
        raise NotFoundForUser("未找到该学校。")
    data = CaseIn(
        **body.model_dump(exclude={"school_id", "guardians"}),
        guardians=[GuardianIn(**g.model_dump()) for g in body.guardians],
    )
    case = state.cases.create(session, school, data, scope.actor)
    session.commit()
    return case_out(session, state, case)


@router.get("/cases/{case_id}", summary="个案详情：学生、监护人、劝返记录、通知书与到期事项")
def get_case(case: CaseObj, state: StateDep, session: SessionDep) -> dict[str, Any]:
    return case_out(session, state, case)


@router.post("/cases/{case_id}/confirm", summary="核实后确认为辍学")
def confirm_case(case: CaseObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> dict[str, Any]:
    state.cases.confirm(session, case, scope.actor)
    session.commit()
    return case_out(session, state, case)


@router.post("/cases/{case_id}/attempts", status_code=201, summary="记录一次劝返")
def add_attempt(
    case: CaseObj, body: AttemptBody, scope: ScopeDep, state: StateDep, session: SessionDep
) -> dict[str, Any]:
    state.cases.add_attempt(
        session,
        case,
        scope.actor,
        date=body.date,
        staff=body.staff,
        method=body.method,
        result=body.result,
        succeeded=body.succeeded,
        note=body.note,
    )
    session.commit()
    return case_out(session, state, case)


@router.post("/cases/{case_id}/returned", summary="学生已复学（结案）")
def mark_returned(case: CaseObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> dict[str, Any]:
    state.cases.returned(session, case, scope.actor)
    session.commit()
    return case_out(session, state, case)


@router.post("/cases/{case_id}/defer", summary="办理延缓入学或休学（结案）")
def defer(case: CaseObj, body: ReasonBody, scope: ScopeDep, state: StateDep, session: SessionDep) -> dict[str, Any]:
    state.cases.defer(session, case, scope.actor, body.reason)
    session.commit()
    return case_out(session, state, case)


@router.post("/cases/{case_id}/write-off", summary="核销（附件一所列原因，并上传证明材料）")
async def write_off(
    case: CaseObj,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    reason: Annotated[str, Form(description="核销原因代码")],
    files: Annotated[list[UploadFile], File(description="证明材料扫描件")],
) -> dict[str, Any]:
    evidence = [
        (f.filename or "证明材料", await read_upload(f, state.settings.max_pdf_bytes, "证明材料")) for f in files
    ]

    def run() -> dict[str, Any]:
        state.cases.write_off(session, case, scope.actor, reason, evidence)
        session.commit()
        return case_out(session, state, case)

    return await run_in_threadpool(run)


@router.post("/cases/{case_id}/notices", status_code=201, summary="为个案发出复学通知书或限期复学通知书")
def case_notice(
    case: CaseObj, body: NoticeBody, scope: ScopeDep, state: StateDep, session: SessionDep
) -> dict[str, Any]:
    issuer = case.school if body.issuer == "school" else bureau_of_scope(scope)
    doc = state.cases.issue_notice(session, case, body.kind, body.report_by, issuer, scope.actor)
    session.commit()
    return document_brief(doc)


@router.post("/cases/{case_id}/register", status_code=201, summary="生成并签章《辍学学生登记表（一生一表）》的新版本")
def case_register(case: CaseObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> dict[str, Any]:
    doc = state.cases.register(session, case, scope.actor, scope.user.display_name)
    session.commit()
    return document_brief(doc)


@router.get("/due", summary="到期事项：联合劝返、限期复学、月报等（本人可见的学校）")
def due(scope: ScopeDep, state: StateDep, session: SessionDep) -> list[dict[str, Any]]:
    return [d.to_dict() for d in state.cases.due_for_units(session, scope.units)]


# --- rosters -----------------------------------------------------------------------------------


def roster_out(session: Session, roster: Roster) -> dict[str, Any]:
    entries = session.execute(
        select(RosterEntry.document_id, Document.opened_at, Document.confirmed_at)
        .outerjoin(Document, Document.id == RosterEntry.document_id)
        .where(RosterEntry.roster_id == roster.id)
    ).all()
    bundles = session.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster.id))
    return {
        "id": roster.id,
        "kind": roster.kind,
        "title": get_kind(roster.kind).title,
        "filename": roster.filename,
        "issuer": roster.issuer.name,
        "report_by": roster.report_by,
        "rows": roster.rows,
        "skipped": roster.skipped,
        "issued": sum(1 for e in entries if e.document_id),
        "opened": sum(1 for e in entries if e.opened_at),
        "confirmed": sum(1 for e in entries if e.confirmed_at),
        "print": [
            {
                "school_id": b.school_id,
                "school": b.school.name,
                "notices": b.notices,
                "pages": b.pages,
                "sha256": b.sha256,
            }
            for b in bundles
        ],
    }


@router.post(
    "/rosters", status_code=201, summary="导入名单（Excel 或 CSV）：有错误时逐行列出，一行也不导入，除非只导入无误的行"
)
async def import_roster(
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="名单表格")],
    kind: Annotated[str, Form(description="enrollment_notice 或 return_notice")],
    report_by: Annotated[dt.date, Form(description="报到截止日期")],
    only_valid: Annotated[bool, Form(description="只导入无误的行")] = False,
    issue_date: Annotated[dt.date | None, Form(description="发文日期，默认今天")] = None,
) -> dict[str, Any]:
    data = await read_upload(file, state.settings.max_sheet_bytes, "名单文件")
    filename = file.filename or "名单"
    return await run_in_threadpool(
        _import_roster, scope, state, session, data, filename, kind, report_by, only_valid, issue_date
    )


def _import_roster(
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    data: bytes,
    filename: str,
    kind: str,
    report_by: dt.date,
    only_valid: bool,
    issue_date: dt.date | None,
) -> dict[str, Any]:
    if kind not in ("enrollment_notice", "return_notice"):
        raise UploadInvalid("名单类型应为 enrollment_notice（入学通知书）或 return_notice（复学通知书）。")
    today = state.cases.today()
    if report_by <= today:
        raise UploadInvalid("报到截止日期应晚于今天。")
    issuer = scope.unit
    if issuer.type == UnitType.OFFICE:
        raise UploadInvalid("通知书由学校或教体局发出，请用学校或教体局的账号导入名单。")
    check = check_roster(session, data, filename, kind, schools_in(session, scope.units))
    if not check.rows:
        raise RosterInvalid("名单中没有学生。")
    if check.errors and not only_valid:
        raise RosterInvalid(
            f"名单中有 {len(check.errors)} 处错误（涉及 {len(check.rows) - len(check.good)} 行），未导入任何学生。",
            details={"errors": check.errors},
        )
    if not check.good:
        raise RosterInvalid("名单中没有无误的行可以导入。", details={"errors": check.errors})
    roster = create_roster(
        session,
        check,
        kind=kind,
        issuer=issuer,
        filename=filename,
        report_by=report_by,
        issue_date=issue_date or today,
        only_valid=only_valid,
        actor=scope.actor,
        now=state.clock.now(),
    )
    session.commit()
    return {**roster_out(session, roster), "errors": check.errors}


@router.get("/rosters", summary="名单列表")
def list_rosters(scope: ScopeDep, session: SessionDep) -> list[dict[str, Any]]:
    rosters = session.scalars(select(Roster).where(Roster.issuer_id.in_(scope.units)).order_by(Roster.id.desc()))
    return [roster_out(session, r) for r in rosters]


@router.get("/rosters/{roster_id}", summary="名单：签发、查看与确认阅知的数量，打印文件")
def get_roster(roster: RosterObj, session: SessionDep) -> dict[str, Any]:
    return roster_out(session, roster)


@router.post(
    "/rosters/{roster_id}/issue",
    response_model=JobOut,
    status_code=202,
    summary="批量签发名单中的通知书（后台任务；中断后再次执行只补发未签发的）",
)
def issue(roster: RosterObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> JobOut:
    job, new = state.jobs.create(
        session,
        "roster.issue",
        {"roster_id": roster.id},
        roster.issuer_id,
        scope.user.id,
        active_key=f"roster.issue:{roster.id}",
    )
    session.commit()
    if new:
        roster_id, actor = roster.id, scope.actor

        def run(s: Session, progress: JobProgress) -> None:
            r = s.get(Roster, roster_id)
            assert r is not None
            issue_roster(s, state.engine, r, actor, state.clock.now, lambda d, t: progress(d, t, "issue"))

        state.jobs.submit(job.id, run)
    return job_out(job)


@router.get(
    "/rosters/{roster_id}/print/{school_id}.pdf",
    summary="某校的打印文件（按班级顺序合并）",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def print_pdf(roster: RosterObj, school_id: int, state: StateDep, session: SessionDep) -> Response:
    bundle = session.scalar(
        select(PrintBundle).where(PrintBundle.roster_id == roster.id, PrintBundle.school_id == school_id)
    )
    if bundle is None:
        raise NotFoundForUser("该校还没有打印文件，请先签发名单。")
    name = f"{bundle.school.name}-{get_kind(roster.kind).title}-打印.pdf"
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    store = state.engine.archive
    if isinstance(store, LocalArchive):
        # A school's print file holds hundreds of notices (about 100 KB each): sent from disk.
        path = store.path_for(bundle.sha256)
        if not path.exists():
            raise ArchivedFileMissing()
        return FileResponse(path, media_type="application/pdf", headers=headers)
    return Response(store.get(bundle.sha256), media_type="application/pdf", headers=headers)


@router.get(
    "/rosters/{roster_id}/receipts.xlsx",
    summary="回执台账：每份通知书是否被查看、监护人是否确认阅知",
    response_class=Response,
)
def receipts(roster: RosterObj, state: StateDep, session: SessionDep) -> Response:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "回执"
    ws.append(["行", "学校", "年级班级", "学生", "监护人", "签发", "首次查看", "查看次数", "确认阅知"])
    tz = state.cases.tz
    rows = session.execute(
        select(RosterEntry, Document)
        .outerjoin(Document, Document.id == RosterEntry.document_id)
        .where(RosterEntry.roster_id == roster.id)
        .order_by(RosterEntry.school_id, RosterEntry.class_order)
    ).all()
    units = {u.id: u.name for u in session.scalars(select(Unit))}
    for entry, doc in rows:
        f = entry.fields
        ws.append(
            [
                safe_cell(v)
                for v in (
                    entry.row,
                    units.get(entry.school_id, ""),
                    f.get("grade_class", ""),
                    f.get("student_name", ""),
                    f.get("guardian_name", ""),
                    "是" if doc else "否",
                    doc.opened_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if doc and doc.opened_at else "",
                    doc.opened_count if doc else 0,
                    doc.confirmed_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if doc and doc.confirmed_at else "",
                )
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote('回执台账.xlsx')}"},
    )
