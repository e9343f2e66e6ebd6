"""The bureau's pages (dashboard, new campaign, a campaign's progress) and the office's (forwarding)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service.accounts.models import Role, User
from service.campaigns import repository as campaigns_repository
from service.campaigns.models import Campaign
from service.campaigns.schemas import (
    assignment_row,
    campaign_row,
    campaign_words,
    countdown,
    local_time,
    office_groups,
)
from service.campaigns.service import (
    DOCUMENT_KINDS,
    DUE_DAY_LIMITS,
    KIND_TITLES,
    CampaignSpec,
    period_label,
    plan,
    recurrence_text,
)
from service.documents.registry import get_kind
from service.errors import DocsignError
from service.http.deps import (
    CampaignObj,
    JobObj,
    ScopeDep,
    ServicesDep,
    SessionDep,
)
from service.units import repository as units_repository
from service.web.common import PageUser, flash_redirect, fragment, render, tz_of
from service.web.views import progress_chart

router = APIRouter(include_in_schema=False)

KIND_OPTIONS = [
    ("responsibility_office", "控辍目标责任书（街道教育办版）", "下发给每个街道教育办，由教育办主任签字盖章"),
    ("responsibility_direct", "控辍目标责任书（区直学校版）", "下发给每所区直学校，由校长签字盖章"),
    ("pledge", "控辍保学承诺书", "下发给每所义务教育学校，由校长签字盖章；街道学校由教育办统一转交"),
]
FILTER_KEYS = ["all", "missing", "late", "pending", "signed"]


def _filters(words: dict[str, str]) -> list[tuple[str, str]]:
    names = {"all": "全部", "signed": words["done"], **{k: words[k] for k in ("missing", "late", "pending")}}
    return [(k, names[k]) for k in FILTER_KEYS]


@router.get("/dashboard")
def dashboard(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    scope.require(Role.BUREAU)
    rows = [
        campaign_row(c, services.campaigns.status(session, c), tz_of(services))
        for c in campaigns_repository.campaigns(session, scope)
    ]
    tz = tz_of(services)
    warnings = [
        {
            "label": w.label,
            "name": w.name,
            "expires": local_time(w.expires, tz, "%Y年%m月%d日"),
            "days_left": w.days_left,
            "note": w.note,
        }
        for w in services.pki.status(services.clock.now()).warnings
    ]
    return render(request, "dashboard.html", user, campaigns=rows, certificate_warnings=warnings)


def _new_values(services: ServicesDep) -> dict[str, Any]:
    now = services.clock.now().astimezone(tz_of(services))
    deadline = now + dt.timedelta(days=4)
    return {
        "name": f"{now.year}年控辍保学目标责任书与承诺书",
        "year": now.year,
        "kinds": list(DOCUMENT_KINDS),
        "deadline_date": deadline.date().isoformat(),
        "deadline_time": "16:00",
        "issue_date": now.date().isoformat(),
    }


def _recurring_values(services: ServicesDep) -> dict[str, Any]:
    return {
        "name": "控辍保学动态管理月报",
        "year": services.clock.now().astimezone(tz_of(services)).year,
        "recurrence": "monthly",
        "due_day": "20",
    }


def _new_page(
    request: Request,
    user: User,
    services: ServicesDep,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    recurring: dict[str, Any] | None = None,
    recurring_errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "campaign_new.html",
        user,
        values=values or _new_values(services),
        errors=errors or {},
        kind_options=KIND_OPTIONS,
        recurring=recurring or _recurring_values(services),
        recurring_errors=recurring_errors or {},
    )


def _year(value: str, errors: dict[str, str]) -> int:
    try:
        year = int(value)
        if 2000 <= year <= 2100:
            return year
    except ValueError:
        pass
    errors["year"] = "年度应为 2000 到 2100 之间的数字。"
    return 0


@router.get("/campaigns/new")
def new_campaign_page(request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep) -> Response:
    scope.require(Role.BUREAU)
    return _new_page(request, user, services)


@router.post("/campaigns/new-recurring")
async def new_recurring_campaign(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    """A report every unit files each period (月报 by a day of the month, 周报 by a weekday): its
    periods open at once, no document is issued."""
    scope.require(Role.BUREAU)
    form = await request.form()
    values: dict[str, Any] = {
        "name": str(form.get("name", "")).strip()[:100],
        "year": str(form.get("year", "")).strip(),
        "recurrence": str(form.get("recurrence", "")),
        "due_day": str(form.get("due_day", "")).strip(),
    }
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "请填写任务名称。"
    year = _year(values["year"], errors)
    last = DUE_DAY_LIMITS.get(values["recurrence"])
    if last is None:
        errors["recurrence"] = "请选择每月报送、每周报送或每学期开学后报送。"
    due_day = int(values["due_day"]) if values["due_day"].isdigit() else 0
    if last is not None and not 1 <= due_day <= last:
        errors["due_day"] = {
            "monthly": "每月报送请填 1 到 28 日。",
            "weekly": "每周报送请填 1（周一）到 7（周日），例如周三填 3。",
            "term": "开学后报送请填 1 到 60 天，例如开学后15日内填 15。",
        }[values["recurrence"]]
    if not errors:
        spec = CampaignSpec(
            name=values["name"],
            year=year,
            deadline=None,
            issue_date=None,
            kinds=(),
            recurrence=values["recurrence"],
            due_day=due_day,
        )

        def create() -> Campaign:
            campaign = services.campaigns.create(session, scope, spec)
            services.campaigns.open_recurring(session, scope, campaign)
            session.commit()
            return campaign

        try:
            campaign = await run_in_threadpool(create)
        except DocsignError as exc:
            session.rollback()
            errors["_"] = exc.message
        else:
            return flash_redirect(f"/campaigns/{campaign.id}")
    return _new_page(request, user, services, recurring=values, recurring_errors=errors)


@router.post("/campaigns/new")
async def new_campaign(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    scope.require(Role.BUREAU)
    form = await request.form()
    values: dict[str, Any] = {
        "name": str(form.get("name", "")).strip()[:100],
        "year": str(form.get("year", "")).strip(),
        "kinds": [str(k) for k in form.getlist("kinds")],
        "deadline_date": str(form.get("deadline_date", "")),
        "deadline_time": str(form.get("deadline_time", "")),
        "issue_date": str(form.get("issue_date", "")),
    }
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "请填写任务名称。"
    year = _year(values["year"], errors)
    if not values["kinds"]:
        errors["kinds"] = "请至少选择一种文书。"
    try:
        deadline = dt.datetime.combine(
            dt.date.fromisoformat(values["deadline_date"]),
            dt.time.fromisoformat(values["deadline_time"]),
            tzinfo=tz_of(services),
        )
    except ValueError:
        errors["deadline"] = "请选择截止日期和时间。"
        deadline = None
    try:
        issue_date = dt.date.fromisoformat(values["issue_date"])
    except ValueError:
        errors["issue_date"] = "请选择文书落款日期。"
        issue_date = None
    if not errors and deadline is not None and issue_date is not None:
        spec = CampaignSpec(
            name=values["name"], year=year, deadline=deadline, issue_date=issue_date, kinds=values["kinds"]
        )
        try:
            campaign = await run_in_threadpool(services.campaigns.create, session, scope, spec)
        except DocsignError as exc:
            session.rollback()
            errors[{"DEADLINE_PASSED": "deadline"}.get(exc.code, "_")] = exc.message
        else:
            session.commit()
            return flash_redirect(f"/campaigns/{campaign.id}")
    return _new_page(request, user, services, values=values, errors=errors)


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request,
    campaign: CampaignObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    filter: str = "all",
    received: int | None = None,
    urged: int | None = None,
) -> Response:
    scope.require(Role.BUREAU)
    words = campaign_words(campaign)
    flash = None
    if received is not None:
        flash = (
            {"tone": "ok", "text": f"已确认接收 {received} 份。"}
            if received
            else {"tone": "warn", "text": "没有新的可接收的文书或报表：各单位报送或教育办转交后再来确认接收。"}
        )
    if urged is not None:
        flash = (
            {"tone": "ok", "text": f"已催办：{urged} 条提醒正在发送，可在通知发送记录中查看。"}
            if urged
            else {"tone": "warn", "text": "所选单位都没有可用的联系方式，未能发出提醒；已记入发送记录。"}
        )
    tz, now = tz_of(services), services.clock.now()
    status = services.campaigns.status(session, campaign)
    items = services.campaigns.assignments(session, campaign, status["period"] if campaign.recurrence else None)
    planned = plan(session, campaign.bureau, campaign.kinds) if campaign.recurrence is None else []
    counts: dict[str, int] = defaultdict(int)
    for _, kind in planned:
        counts[kind] += 1
    job = services.campaigns.issue_job(session, campaign)
    show_job = (
        job
        if job is not None and (job.status in ("queued", "running", "failed") or campaign.status != "issued")
        else None
    )
    return render(
        request,
        "campaign.html",
        user,
        campaign=campaign,
        status=status,
        groups=office_groups(session, items, now, tz, filter),
        filters=_filters(words),
        filter=filter if filter in FILTER_KEYS else "all",
        words=words,
        flash=flash,
        deadline_local=local_time(campaign.deadline, tz),
        period=period_label(status["period"]) if campaign.recurrence else "",
        recurrence=recurrence_text(campaign.recurrence, campaign.due_day),
        countdown=countdown(campaign.deadline, now),
        # a term campaign before any 开学日期: nothing is due yet, and the page says what it waits for
        awaiting_term=campaign.recurrence == "term" and not status["period"],
        chart=progress_chart(items, campaign.deadline, now, tz, words),
        planned_units=len({u.id for u, _ in planned}),
        planned_total=len(planned),
        planned_kinds=[(k, KIND_TITLES[k], counts[k]) for k in DOCUMENT_KINDS if counts[k]],
        job=show_job,
    )


@router.get("/campaigns/{campaign_id}/preview/{kind}.pdf")
def campaign_preview(
    campaign: CampaignObj, kind: str, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    pdf = services.campaigns.preview(session, scope, campaign, kind)
    name = f"样稿-{get_kind(kind).title}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}"}
    )


@router.post("/campaigns/{campaign_id}/issue")
def campaign_issue(
    request: Request, campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    job, _ = services.campaigns.start_issue(session, scope, campaign, services.jobs)
    session.commit()
    return fragment(request, "_job.html", job=job, refresh=True)


@router.get("/jobs/{job_id}")
def job_fragment(request: Request, job: JobObj) -> Response:
    return fragment(request, "_job.html", job=job, refresh=True)


@router.post("/campaigns/{campaign_id}/receive")
def campaign_receive(campaign: CampaignObj, scope: ScopeDep, services: ServicesDep, session: SessionDep) -> Response:
    count = services.campaigns.receive(session, scope, campaign)
    session.commit()
    return flash_redirect(f"/campaigns/{campaign.id}?received={count}")


# --- the office ----------------------------------------------------------------------------------


@router.get("/office")
def office_page(
    request: Request, user: PageUser, scope: ScopeDep, services: ServicesDep, session: SessionDep
) -> Response:
    scope.require(Role.OFFICE)
    return _office(request, user, scope, services, session)


def _office(
    request: Request,
    user: User,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
    flash: dict[str, str] | None = None,
) -> Response:
    tz, now = tz_of(services), services.clock.now()
    school_ids = {u.id for u in units_repository.schools(session, scope, parent_id=user.unit_id)}
    campaigns = []
    for c in campaigns_repository.campaigns(session, scope):
        items = [a for a in services.campaigns.assignments(session, c) if a.unit_id in school_ids and a.document_id]
        if not items:
            continue
        campaigns.append(
            {
                "id": c.id,
                "name": c.name,
                "deadline_local": local_time(c.deadline, tz),
                "rows": [assignment_row(a, campaigns_repository.document(session, scope, a), now, tz) for a in items],
                "ready": sum(1 for a in items if a.state == "signed"),
            }
        )
    return render(request, "office.html", user, campaigns=campaigns, office_name=user.unit.name, flash=flash)


@router.post("/office/campaigns/{campaign_id}/forward")
def office_forward(
    request: Request,
    campaign: CampaignObj,
    user: PageUser,
    scope: ScopeDep,
    services: ServicesDep,
    session: SessionDep,
) -> Response:
    try:
        batch = services.campaigns.forward(session, scope, campaign)
        session.commit()
        flash = {"tone": "ok", "text": f"已将 {batch.count} 份已签署的文书统一转交教体局。"}
    except DocsignError as exc:
        session.rollback()
        flash = {"tone": "warn", "text": exc.message}
    return _office(request, user, scope, services, session, flash=flash)
