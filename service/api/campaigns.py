from __future__ import annotations

import datetime as dt
import tempfile
import zoneinfo
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.api.common import assignment_out, local_time
from service.api.deps import (
    CampaignObj,
    ScopeDep,
    SessionDep,
    StateDep,
    bureau_of_scope,
    campaign_visible,
    refresh_periods,
)
from service.archive.models import Document
from service.archive.service import BundleEntry, bundle_path, write_bundle
from service.audit.service import record
from service.campaigns.errors import CampaignInvalid, CampaignNotReady
from service.campaigns.ledger import ledger_workbook
from service.campaigns.models import Assignment, Campaign
from service.campaigns.schemas import AssignmentOut, CampaignIn, CampaignOut, ForwardOut, JobOut, ReceiveOut
from service.campaigns.service import KIND_TITLES, CampaignSpec, plan
from service.jobs.models import Job
from service.jobs.runner import JobProgress

router = APIRouter(prefix="/api/campaigns", tags=["签署任务"])


def campaign_out(session: SessionDep, c: Campaign, tz: str) -> CampaignOut:
    issued = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.campaign_id == c.id)) or 0
    planned = len(plan(session, c.bureau, c.kinds)) if c.recurrence is None else issued
    return CampaignOut(
        id=c.id,
        name=c.name,
        year=c.year,
        kinds=c.kinds,
        deadline=c.deadline,
        deadline_local=local_time(c.deadline, tz),
        issue_date=c.issue_date,
        recurrence=c.recurrence,
        due_day=c.due_day,
        status=c.status,
        bureau_id=c.bureau_id,
        planned=planned,
        issued=issued,
    )


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        total=job.total,
        done=job.done,
        stage=job.stage,
        error_code=job.error_code,
        error_message=job.error_message,
    )


@router.get("", response_model=list[CampaignOut], summary="本人可见的签署任务")
def list_campaigns(scope: ScopeDep, state: StateDep, session: SessionDep) -> list[CampaignOut]:
    out = []
    for c in session.scalars(select(Campaign).order_by(Campaign.id.desc())):
        if campaign_visible(session, c, scope):
            out.append(campaign_out(session, c, state.settings.timezone))
    return out


@router.post("", response_model=CampaignOut, status_code=201, summary="创建签署任务（截止时间按北京时间）")
def create_campaign(body: CampaignIn, scope: ScopeDep, state: StateDep, session: SessionDep) -> CampaignOut:
    scope.require(Role.BUREAU)
    bureau = bureau_of_scope(scope)
    tz = zoneinfo.ZoneInfo(state.settings.timezone)
    now = state.clock.now()
    if body.recurrence is None and body.deadline is None:
        raise CampaignInvalid("请填写截止时间，例如 2024-09-29T16:00。")
    deadline = body.deadline or now
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=tz)
    spec = CampaignSpec(
        name=body.name,
        year=body.year,
        deadline=deadline.astimezone(dt.UTC),
        issue_date=body.issue_date or now.astimezone(tz).date(),
        kinds=body.kinds,
        recurrence=body.recurrence,
        due_day=body.due_day,
    )
    campaign = state.campaigns.create(session, bureau, spec, scope.actor)
    session.commit()
    return campaign_out(session, campaign, state.settings.timezone)


@router.get("/{campaign_id}", response_model=CampaignOut, summary="任务详情")
def get_campaign(campaign: CampaignObj, state: StateDep, session: SessionDep) -> CampaignOut:
    return campaign_out(session, campaign, state.settings.timezone)


@router.post(
    "/{campaign_id}/issue",
    response_model=JobOut,
    status_code=202,
    summary="填写、认证签章并下发全部文书（后台任务，返回进度）",
)
def issue_campaign(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> JobOut:
    scope.require(Role.BUREAU)
    if campaign.bureau_id not in scope.units:
        raise CampaignNotReady("只能下发本局的任务。")
    job, new = state.jobs.create(
        session,
        "campaign.issue",
        {"campaign_id": campaign.id},
        campaign.bureau_id,
        scope.user.id,
        active_key=f"campaign.issue:{campaign.id}",
    )
    session.commit()
    if not new:
        return job_out(job)
    campaign_id, actor = campaign.id, scope.actor

    def run(s: Session, progress: JobProgress) -> None:
        c = s.get(Campaign, campaign_id)
        assert c is not None
        state.campaigns.issue(s, c, actor, progress=lambda done, total: progress(done, total, "issue"))

    state.jobs.submit(job.id, run)
    return job_out(job)


@router.get("/{campaign_id}/status", summary="签署进度：数量、缺签单位（按教育办分组）、逾期上报")
def campaign_status(
    campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep, period: str | None = None
) -> dict[str, object]:
    refresh_periods(state, session)
    visible = None if campaign.bureau_id in scope.units else scope.units
    return state.campaigns.status(session, campaign, visible, period)


@router.get("/{campaign_id}/assignments", response_model=list[AssignmentOut], summary="任务中每个单位的文书与状态")
def campaign_assignments(
    campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep, period: str | None = None
) -> list[AssignmentOut]:
    refresh_periods(state, session)
    now = state.clock.now()
    out = []
    for a in state.campaigns.assignments(session, campaign, period):
        if a.unit_id in scope.units:
            doc = session.get(Document, a.document_id) if a.document_id else None
            out.append(assignment_out(a, doc, now))
    return out


@router.post("/{campaign_id}/forward", response_model=ForwardOut, summary="教育办将所辖学校已签署的文书统一转交教体局")
def forward(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> ForwardOut:
    scope.require(Role.OFFICE)
    batch = state.campaigns.forward(session, campaign, scope.unit, scope.actor)
    session.commit()
    return ForwardOut(batch_id=batch.id, count=batch.count)


@router.post("/{campaign_id}/receive", response_model=ReceiveOut, summary="教体局确认接收已报送的文书")
def receive(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> ReceiveOut:
    scope.require(Role.BUREAU)
    count = state.campaigns.receive(session, campaign, scope.actor)
    session.commit()
    return ReceiveOut(received=count)


def _attachment(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name)}"


@router.get(
    "/{campaign_id}/ledger.xlsx",
    summary="导出台账（Excel）",
    response_class=Response,
    responses={200: {"content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
)
def ledger(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    items = [a for a in state.campaigns.assignments(session, campaign) if a.unit_id in scope.units]
    data = ledger_workbook(campaign, items, KIND_TITLES, zoneinfo.ZoneInfo(state.settings.timezone), state.clock.now())
    record(session, scope.actor, "campaign.export_ledger", "campaign", campaign.id, state.clock.now(), rows=len(items))
    session.commit()
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _attachment(f"{campaign.name}-台账.xlsx")},
    )


@router.get(
    "/{campaign_id}/archive.zip",
    summary="导出签署件归档包（PDF 与哈希清单）",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def archive_zip(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> StreamingResponse:
    scope.require(Role.BUREAU, Role.OFFICE)
    entries = []
    for a in state.campaigns.assignments(session, campaign):
        if a.unit_id not in scope.units or a.document_id is None:
            continue
        doc = session.get(Document, a.document_id)
        assert doc is not None
        group = a.unit.parent.name if a.unit.parent is not None else a.unit.name
        entries.append(
            BundleEntry(
                bundle_path(group, f"{a.unit.name}-{KIND_TITLES.get(a.kind, a.kind)}.pdf"),
                doc.current_sha256,
                {
                    "unit": a.unit.name,
                    "unit_code": a.unit.code,
                    "kind": a.kind,
                    "state": a.state,
                    "signed_at": a.signed_at.isoformat() if a.signed_at else "",
                    "late": "" if a.late is None else a.late,
                    "document_status": doc.status,
                },
            )
        )
    # kept open past this function: the response streams it, then closes it
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    count = write_bundle(spool, state.engine.archive, entries, campaign.name)
    record(session, scope.actor, "campaign.export_archive", "campaign", campaign.id, state.clock.now(), files=count)
    session.commit()
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := spool.read(1024 * 1024):
                yield chunk
        finally:
            spool.close()

    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": _attachment(f"{campaign.name}-签署件.zip")},
    )
