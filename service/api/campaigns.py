from __future__ import annotations

import tempfile
import zoneinfo
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from service.campaigns import repository as campaigns_repository
from service.campaigns.schemas import AssignmentOut, CampaignIn, CampaignOut, ForwardOut, ReceiveOut
from service.campaigns.service import CampaignSpec
from service.http.deps import CampaignObj, ScopeDep, ServicesDep, SessionDep
from service.http.exports import ExportDep, as_issued
from service.http.reads import ReadsDep
from service.jobs.schemas import JobOut

router = APIRouter(prefix="/api/campaigns", tags=["签署任务"])


def _tz(services: ServicesDep) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(services.settings.timezone)


def _attachment(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name)}"


@router.get("", response_model=list[CampaignOut], summary="本人可见的签署任务")
def list_campaigns(scope: ScopeDep, services: ServicesDep, session: SessionDep) -> list[CampaignOut]:
    return [CampaignOut.of(session, c, _tz(services)) for c in campaigns_repository.campaigns(session, scope)]


@router.post("", response_model=CampaignOut, status_code=201, summary="创建签署任务（截止时间按北京时间）")
def create_campaign(body: CampaignIn, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> CampaignOut:
    spec = CampaignSpec(
        name=body.name,
        year=body.year,
        deadline=body.deadline,
        issue_date=body.issue_date,
        kinds=body.kinds,
        recurrence=body.recurrence,
        due_day=body.due_day,
    )
    campaign = services.campaigns.create(session, scope, spec)
    session.commit()
    return CampaignOut.of(session, campaign, _tz(services))


@router.get("/{campaign_id}", response_model=CampaignOut, summary="任务详情")
def get_campaign(campaign: CampaignObj, services: ServicesDep, session: SessionDep) -> CampaignOut:
    return CampaignOut.of(session, campaign, _tz(services))


@router.post(
    "/{campaign_id}/issue",
    response_model=JobOut,
    status_code=202,
    summary="填写、认证签章并下发全部文书（后台任务，返回进度）",
)
def issue_campaign(campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> JobOut:
    job, _ = services.campaigns.start_issue(session, scope, campaign, services.jobs)
    session.commit()
    return JobOut.of(job)


@router.get("/{campaign_id}/status", summary="签署进度：数量、缺签单位（按教育办分组）、逾期上报")
def campaign_status(
    campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, period: str | None = None
) -> dict[str, object]:
    visible = None if campaign.bureau_id in scope.units else scope.units
    return services.campaigns.status(session, campaign, visible, period)


@router.get("/{campaign_id}/assignments", response_model=list[AssignmentOut], summary="任务中每个单位的文书与状态")
def campaign_assignments(
    campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep, period: str | None = None
) -> list[AssignmentOut]:
    now = services.clock.now()
    return [
        AssignmentOut.of(a, campaigns_repository.document(session, scope, a), now)
        for a in services.campaigns.assignments(session, campaign, period)
        if a.unit_id in scope.units
    ]


@router.post("/{campaign_id}/forward", response_model=ForwardOut, summary="教育办将所辖学校已签署的文书统一转交教体局")
def forward(campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> ForwardOut:
    batch = services.campaigns.forward(session, scope, campaign)
    session.commit()
    return ForwardOut(batch_id=batch.id, count=batch.count)


@router.post("/{campaign_id}/receive", response_model=ReceiveOut, summary="教体局确认接收已报送的文书")
def receive(campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> ReceiveOut:
    count = services.campaigns.receive(session, scope, campaign)
    session.commit()
    return ReceiveOut(received=count)


@router.get(
    "/{campaign_id}/ledger.xlsx",
    summary="导出台账（Excel）",
    response_class=Response,
    responses={200: {"content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
)
def ledger(campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
    data = services.campaigns.export_ledger(session, scope, campaign)
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
def archive_zip(
    campaign: CampaignObj,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    reads: ReadsDep,
    export: ExportDep,
) -> StreamingResponse:
    """Signed documents and filed reports (an 信息报告 names children): a purpose is asked, and the
    files go as signed."""
    # kept open past this function: the response streams it, then closes it
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    files = services.campaigns.export_archive(session, scope, campaign, spool)
    session.commit()
    reads.record("campaign_archive", campaign.id, rows=files, exported=as_issued(export))
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
        headers={
            "Content-Disposition": _attachment(f"{campaign.name}-{'报送材料' if campaign.recurrence else '签署件'}.zip")
        },
    )
