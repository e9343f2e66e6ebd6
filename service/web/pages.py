"""The pages people use: login, the bureau's dashboard and campaigns, units, signing, forwarding.

Pages use the same rules as the API (``campaigns/service.py`` through the same dependencies), render
with Jinja2 and keep what the user typed when a form comes back with errors. Objects outside the
user's units answer 404 here too.
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pypdf import PdfReader
from sqlalchemy import select

from service.accounts.errors import AuthFailed, Forbidden, TooManyRequests
from service.accounts.models import Role, User
from service.accounts.service import end_session
from service.api.assignments import file_report_upload
from service.api.auth import set_session_cookie, sign_in
from service.api.common import read_upload, unit_out
from service.api.deps import (
    SESSION_COOKIE,
    AssignmentObj,
    CampaignObj,
    DocumentObj,
    JobObj,
    ScopeDep,
    SessionDep,
    StateDep,
    bureau_of_scope,
    campaign_visible,
    client_address,
    optional_user,
    refresh_periods,
)
from service.api.units import import_units_sheet
from service.archive.models import Document, DocumentStatus
from service.campaigns.errors import NotFoundForUser, UploadInvalid
from service.campaigns.models import Assignment, Campaign, Unit, UnitType
from service.campaigns.service import (
    DOCUMENT_KINDS,
    KIND_TITLES,
    REPORT_KINDS,
    CampaignSpec,
    document_fields,
    period_label,
    plan,
    recurrence_text,
)
from service.documents.registry import get_kind
from service.documents.sign import empty_field_box
from service.errors import DocsignError
from service.jobs.models import Job
from service.web.views import DONE, countdown, local, page_png, progress_chart, state_label

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))

KIND_OPTIONS = [
    ("responsibility_office", "控辍目标责任书（街道教育办版）", "下发给每个街道教育办，由教育办主任签字盖章"),
    ("responsibility_direct", "控辍目标责任书（区直学校版）", "下发给每所区直学校，由校长签字盖章"),
    ("pledge", "控辍保学承诺书", "下发给每所义务教育学校，由校长签字盖章；街道学校由教育办统一转交"),
]
FILTERS = [("all", "全部"), ("missing", "缺签"), ("late", "逾期签署"), ("pending", "待签"), ("signed", "已签")]


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def page_user(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise LoginRequired(request.url.path)
    return user


PageUser = Annotated[User, Depends(page_user)]


def tz_of(state: StateDep) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(state.settings.timezone)


def render(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"user": user, "flash": None, **context}, status_code=status_code)


def flash_redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- signing in --------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role == Role.BUREAU:
        return RedirectResponse("/dashboard", status_code=303)
    if user.role == Role.OFFICE:
        return RedirectResponse("/office", status_code=303)
    return RedirectResponse("/sign", status_code=303)


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, next=_safe_next(next), values={"username": ""}, errors={})


@router.post("/login")
def login(
    request: Request,
    state: StateDep,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "请输入用户名。"
    if not password:
        errors["password"] = "请输入密码。"
    if not errors:
        try:
            _, token = sign_in(session, state, client_address(request, state), username.strip(), password)
        except TooManyRequests as exc:
            errors["password"] = exc.message
        except AuthFailed:
            errors["password"] = "用户名或密码错误，请重新输入。"
        else:
            response = RedirectResponse(_safe_next(next), status_code=303)
            set_session_cookie(response, token, state.settings)
            return response
    return render(
        request,
        "login.html",
        None,
        next=_safe_next(next),
        values={"username": username[:64]},
        errors=errors,
    )


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(session, token)
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- the bureau --------------------------------------------------------------------------------


@router.get("/dashboard")
def dashboard(request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    scope.require(Role.BUREAU)
    tz = tz_of(state)
    refresh_periods(state, session)
    rows = []
    for c in session.scalars(select(Campaign).order_by(Campaign.id.desc())):
        if not campaign_visible(session, c, scope):
            continue
        st = state.campaigns.status(session, c)
        total = st["total"] or 1
        rows.append(
            {
                "id": c.id,
                "name": c.name,
                "status_title": {"draft": "待下发", "issuing": "下发中", "issued": "已下发"}.get(c.status, c.status),
                "status": c.status,
                "total": st["total"],
                "done": st["done"],
                "late": st["late"],
                "missing": st["missing"],
                "on_time_pct": 100 * st["on_time"] / total,
                "late_pct": 100 * st["late"] / total,
                "deadline_local": local(c.deadline, tz),
            }
        )
    return render(request, "dashboard.html", user, campaigns=rows)


def _new_values(state: StateDep) -> dict[str, Any]:
    now = state.clock.now().astimezone(tz_of(state))
    deadline = now + dt.timedelta(days=4)
    return {
        "name": f"{now.year}年控辍保学目标责任书与承诺书",
        "year": now.year,
        "kinds": list(DOCUMENT_KINDS),
        "deadline_date": deadline.date().isoformat(),
        "deadline_time": "16:00",
        "issue_date": now.date().isoformat(),
    }


def _recurring_values(state: StateDep) -> dict[str, Any]:
    return {
        "name": "控辍保学动态管理月报",
        "year": state.clock.now().astimezone(tz_of(state)).year,
        "recurrence": "monthly",
        "due_day": "20",
    }


def _new_page(
    request: Request,
    user: User,
    state: StateDep,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    recurring: dict[str, Any] | None = None,
    recurring_errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "campaign_new.html",
        user,
        values=values or _new_values(state),
        errors=errors or {},
        kind_options=KIND_OPTIONS,
        recurring=recurring or _recurring_values(state),
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
def new_campaign_page(request: Request, user: PageUser, scope: ScopeDep, state: StateDep) -> Response:
    scope.require(Role.BUREAU)
    return _new_page(request, user, state)


@router.post("/campaigns/new-recurring")
async def new_recurring_campaign(
    request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
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
    last = {"monthly": 28, "weekly": 7}.get(values["recurrence"])
    if last is None:
        errors["recurrence"] = "请选择每月报送或每周报送。"
    due_day = int(values["due_day"]) if values["due_day"].isdigit() else 0
    if last is not None and not 1 <= due_day <= last:
        errors["due_day"] = (
            "每月报送请填 1 到 28 日。" if last == 28 else "每周报送请填 1（周一）到 7（周日），例如周三填 3。"
        )
    if not errors:
        now = state.clock.now()
        spec = CampaignSpec(
            name=values["name"],
            year=year,
            deadline=now,
            issue_date=now.astimezone(tz_of(state)).date(),
            kinds=(),
            recurrence=values["recurrence"],
            due_day=due_day,
        )

        def create() -> Campaign:
            campaign = state.campaigns.create(session, bureau_of_scope(scope), spec, scope.actor)
            state.campaigns.issue(session, campaign, scope.actor)  # opens the current period; commits
            return campaign

        try:
            campaign = await run_in_threadpool(create)
        except DocsignError as exc:
            session.rollback()
            errors["_"] = exc.message
        else:
            return flash_redirect(f"/campaigns/{campaign.id}")
    return _new_page(request, user, state, recurring=values, recurring_errors=errors)


@router.post("/campaigns/new")
async def new_campaign(
    request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
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
    tz = tz_of(state)
    if not values["name"]:
        errors["name"] = "请填写任务名称。"
    year = _year(values["year"], errors)
    if not values["kinds"]:
        errors["kinds"] = "请至少选择一种文书。"
    try:
        deadline = dt.datetime.combine(
            dt.date.fromisoformat(values["deadline_date"]), dt.time.fromisoformat(values["deadline_time"]), tzinfo=tz
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
            name=values["name"],
            year=year,
            deadline=deadline.astimezone(dt.UTC),
            issue_date=issue_date,
            kinds=values["kinds"],
        )
        try:
            campaign = await run_in_threadpool(
                state.campaigns.create, session, bureau_of_scope(scope), spec, scope.actor
            )
        except DocsignError as exc:
            key = {"DEADLINE_PASSED": "deadline"}.get(exc.code, "_")
            errors[key] = exc.message
        else:
            session.commit()
            return flash_redirect(f"/campaigns/{campaign.id}")
    return _new_page(request, user, state, values=values, errors=errors)


def _rows(
    items: list[Assignment], now: dt.datetime, tz: zoneinfo.ZoneInfo, session: SessionDep, flt: str = "all"
) -> list[dict[str, Any]]:
    rows = []
    for a in items:
        doc = session.get(Document, a.document_id) if a.document_id else None
        label, tone = state_label(a, now, revoked=bool(doc and doc.status == DocumentStatus.REVOKED))
        keep = {
            "all": True,
            "missing": tone == "missing",
            "late": tone == "late",
            "pending": tone == "pending",
            "signed": a.state in DONE,
        }.get(flt, True)
        if keep:
            rows.append(
                {
                    "unit": a.unit.name,
                    "kind_title": KIND_TITLES.get(a.kind, a.kind),
                    "label": label,
                    "tone": tone,
                    "signed_at": local(a.signed_at, tz),
                    "assignment_id": a.id,
                }
            )
    return rows


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request,
    campaign: CampaignObj,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    filter: str = "all",
) -> Response:
    scope.require(Role.BUREAU)
    tz, now = tz_of(state), state.clock.now()
    refresh_periods(state, session)
    status = state.campaigns.status(session, campaign)
    items = state.campaigns.assignments(session, campaign, status["period"] if campaign.recurrence else None)
    groups: dict[str, dict[str, Any]] = {}
    for a in items:
        parent = a.unit.parent
        office = (
            a.unit
            if a.unit.type == UnitType.OFFICE
            else (parent if parent and parent.type == UnitType.OFFICE else None)
        )
        key = office.name if office else "区直学校"
        g = groups.setdefault(key, {"title": key, "items": []})
        g["items"].append(a)
    group_rows = []
    for g in sorted(groups.values(), key=lambda g: (g["title"] == "区直学校", g["title"])):
        done = sum(1 for a in g["items"] if a.state in DONE)
        group_rows.append(
            {
                "title": g["title"],
                "total": len(g["items"]),
                "done": done,
                "rows": _rows(g["items"], now, tz, session, filter),
            }
        )
    planned = plan(session, campaign.bureau, campaign.kinds) if campaign.recurrence is None else []
    counts: dict[str, int] = defaultdict(int)
    for _, kind in planned:
        counts[kind] += 1
    job = session.scalar(
        select(Job)
        .where(Job.kind == "campaign.issue", Job.params["campaign_id"].as_integer() == campaign.id)
        .order_by(Job.id.desc())
        .limit(1)
    )
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
        groups=group_rows,
        filters=FILTERS,
        filter=filter if filter in dict(FILTERS) else "all",
        deadline_local=local(campaign.deadline, tz),
        period=period_label(status["period"]) if campaign.recurrence else "",
        recurrence=recurrence_text(campaign.recurrence, campaign.due_day),
        countdown=countdown(campaign.deadline, now),
        chart=progress_chart(items, campaign.deadline, now, tz),
        planned_units=len({u.id for u, _ in planned}),
        planned_total=len(planned),
        planned_kinds=[(k, KIND_TITLES[k], counts[k]) for k in DOCUMENT_KINDS if counts[k]],
        job=show_job,
    )


@router.get("/campaigns/{campaign_id}/preview/{kind}.pdf")
def campaign_preview(
    campaign: CampaignObj, kind: str, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    scope.require(Role.BUREAU)
    units = [u for u, k in plan(session, campaign.bureau, campaign.kinds) if k == kind]
    if not units:
        raise NotFoundForUser("该任务不下发这种文书。")
    schools_under = sum(1 for u in session.scalars(select(Unit).where(Unit.parent_id == units[0].id)))
    fields = {k: v for k, v in document_fields(kind, units[0], campaign, schools_under).items() if v is not None}
    pdf = state.engine.preview(kind, fields)
    name = f"样稿-{get_kind(kind).title}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}"}
    )


@router.post("/campaigns/{campaign_id}/issue")
def campaign_issue(
    request: Request, campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    from service.api.campaigns import issue_campaign

    out = issue_campaign(campaign, scope, state, session)
    return templates.TemplateResponse(request, "_job.html", {"job": session.get(Job, out.id)})


@router.get("/jobs/{job_id}")
def job_fragment(request: Request, job: JobObj) -> Response:
    return templates.TemplateResponse(request, "_job.html", {"job": job})


@router.post("/campaigns/{campaign_id}/receive")
def campaign_receive(campaign: CampaignObj, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    scope.require(Role.BUREAU)
    state.campaigns.receive(session, campaign, scope.actor)
    session.commit()
    return flash_redirect(f"/campaigns/{campaign.id}")


@router.get("/units")
def units_page(request: Request, user: PageUser, scope: ScopeDep, session: SessionDep) -> Response:
    scope.require(Role.BUREAU)
    return _units(request, user, scope, session)


def _units(
    request: Request,
    user: User,
    scope: ScopeDep,
    session: SessionDep,
    import_errors: list[dict[str, Any]] | None = None,
    import_error: str = "",
    status_code: int = 200,
    flash: dict[str, str] | None = None,
) -> Response:
    units = [unit_out(u) for u in session.scalars(select(Unit).where(Unit.id.in_(scope.units)).order_by(Unit.id))]
    children: dict[int | None, list[Any]] = defaultdict(list)
    ids = {u.id for u in units}
    roots = []
    for u in units:
        if u.parent_id in ids:
            children[u.parent_id].append(u)
        else:
            roots.append(u)
    return render(
        request,
        "units.html",
        user,
        status_code=status_code,
        roots=roots,
        children=children,
        import_errors=import_errors or [],
        import_error=import_error,
        flash=flash,
    )


@router.post("/units/import")
async def units_import(
    request: Request,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    scope.require(Role.BUREAU)
    errors: list[dict[str, Any]] = []
    message = ""
    flash = None
    try:
        if file is None or not file.filename:
            raise NotFoundForUser("请选择要导入的表格文件。")
        data = await read_upload(file, state.settings.max_sheet_bytes, "表格文件")
        out = await run_in_threadpool(import_units_sheet, scope, state, session, data, file.filename)
        flash = {"tone": "ok", "text": f"导入完成：新增 {out.created} 个单位，更新 {out.updated} 个单位。"}
    except DocsignError as exc:
        message = exc.message
        errors = list((exc.details or {}).get("errors", [])) if isinstance(exc.details, dict) else []
    return _units(
        request,
        user,
        scope,
        session,
        import_errors=errors,
        import_error=message,
        status_code=200,
        flash=flash,
    )


# --- a unit's signer ---------------------------------------------------------------------------


@router.get("/sign")
def sign_list(request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    return _sign_list(request, user, state, session)


@router.post("/reports/{assignment_id}")
async def report_upload(
    request: Request,
    assignment: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        if file is None or not file.filename:
            raise UploadInvalid("请选择要上传的报表文件（PDF 或 Excel）。")
        data = await read_upload(file, state.settings.max_pdf_bytes, "报表文件")
        await run_in_threadpool(file_report_upload, assignment, scope, state, session, data, file.filename)
    except DocsignError as exc:
        session.rollback()
        return _sign_list(request, user, state, session, report_errors={assignment.id: exc.message})
    return flash_redirect("/sign")


def _sign_list(
    request: Request, user: User, state: StateDep, session: SessionDep, report_errors: dict[int, str] | None = None
) -> Response:
    tz, now = tz_of(state), state.clock.now()
    refresh_periods(state, session)
    reports = []
    for a in session.scalars(
        select(Assignment)
        .where(Assignment.unit_id == user.unit_id, Assignment.kind.in_(REPORT_KINDS.values()))
        .order_by(Assignment.deadline.desc(), Assignment.id.desc())
        .limit(12)
    ):
        label, tone = state_label(a, now)
        reports.append(
            {
                "id": a.id,
                "title": f"{period_label(a.period)}{KIND_TITLES.get(a.kind, a.kind)}",
                "label": label.replace("签署", "报送").replace("缺签", "未报送"),
                "tone": tone,
                "done": a.state in DONE,
                "campaign_name": a.campaign.name,
                "deadline_local": local(a.deadline, tz),
                "error": (report_errors or {}).get(a.id, ""),
            }
        )
    items = []
    for a in session.scalars(
        select(Assignment)
        .where(Assignment.unit_id == user.unit_id, Assignment.document_id.is_not(None))
        .order_by(Assignment.id.desc())
    ):
        doc = session.get(Document, a.document_id)
        label, tone = state_label(a, now, revoked=bool(doc and doc.status == DocumentStatus.REVOKED))
        items.append(
            {
                "id": a.id,
                "kind_title": KIND_TITLES.get(a.kind, a.kind),
                "label": label,
                "tone": tone,
                "campaign_name": a.campaign.name,
                "deadline_local": local(a.deadline, tz),
            }
        )
    return render(request, "sign_list.html", user, items=items, reports=reports, unit_name=user.unit.name)


def _sign_context(a: Assignment, user: User, state: StateDep, session: SessionDep) -> dict[str, Any]:
    tz, now = tz_of(state), state.clock.now()
    doc = session.get(Document, a.document_id)
    assert doc is not None
    revoked = doc.status == DocumentStatus.REVOKED
    label, tone = state_label(a, now, revoked)
    can_sign = not revoked and a.state not in DONE and user.role == Role.SIGNER and user.unit_id == a.unit_id
    if revoked:
        text = f"该文书已于 {local(doc.revoked_at, tz)} 撤回（{doc.revoke_reason}），无需再签署。"
    elif a.state in DONE:
        text = f"已于 {local(a.signed_at, tz)} 签署，{'晚于截止时间（逾期）' if a.late else '在截止时间之前（按时）'}。"
    elif now > a.deadline:
        text = "已过截止时间，请尽快签署；签署时间以可信时间戳为准，将记为逾期。"
    else:
        text = f"待签署：请阅读全文后在下方签名，截止 {local(a.deadline, tz)}（{countdown(a.deadline, now)}）。"
    pdf = state.engine.archive.get(doc.current_sha256)
    reader = PdfReader(io.BytesIO(pdf))
    kind = get_kind(a.kind)
    slot_page, slot_box = None, None
    if can_sign and kind.later_signers:
        try:
            slot_page, slot_box = empty_field_box(pdf, kind.later_signers[0].field_name)
        except DocsignError:
            slot_page = None
    pages = []
    for i, page in enumerate(reader.pages):
        w, h = float(page.mediabox.width), float(page.mediabox.height)
        slot = None
        if slot_page == i and slot_box is not None:
            x0, y0, x1, y1 = slot_box
            slot = {
                "left": 100 * x0 / w,
                "top": 100 * (h - y1) / h,
                "width": 100 * (x1 - x0) / w,
                "height": 100 * (y1 - y0) / h,
            }
        pages.append({"number": i + 1, "width": 900, "height": round(900 * h / w), "slot": slot})
    titles = {"responsibility_office": "教育办主任", "responsibility_direct": "校长", "pledge": "校长"}
    return {
        "a": _assignment_view(a),
        "state": {
            "text": text,
            "tone": {"ok": "ok", "late": "warn", "missing": "bad", "revoked": "bad"}.get(tone, "warn"),
        },
        "label": label,
        "deadline_local": local(a.deadline, tz),
        "pages": pages,
        "can_sign": can_sign,
        "sha256": doc.current_sha256,
        "signer_title": titles.get(a.kind, "负责人"),
        "errors": {},
    }


@router.get("/sign/{assignment_id}")
def sign_page(
    request: Request, a: AssignmentObj, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    if a.document_id is None:
        raise NotFoundForUser("这项任务是上传报表，不需要在线签署。")
    if a.unit_id == user.unit_id:
        state.campaigns.viewed(session, a, scope.actor)
        session.commit()
    return render(request, "sign.html", user, **_sign_context(a, user, state, session))


def _assignment_view(a: Assignment) -> dict[str, Any]:
    return {
        "id": a.id,
        "document_id": a.document_id,
        "kind_title": KIND_TITLES.get(a.kind, a.kind),
        "campaign_name": a.campaign.name,
        "state": a.state,
    }


@router.post("/sign/{assignment_id}")
def sign_submit(
    request: Request,
    a: AssignmentObj,
    user: PageUser,
    scope: ScopeDep,
    state: StateDep,
    session: SessionDep,
    signature_png: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    from service.api.common import decode_image

    errors: dict[str, str] = {}
    if user.role != Role.SIGNER or a.unit_id != user.unit_id:
        raise Forbidden("只能签署本单位的文书。")
    if not signature_png:
        errors["signature"] = "请先在签名框中写下您的签名。"
    if confirm != "yes":
        errors["confirm"] = "请勾选确认后再签署。"
    if not errors:
        try:
            image = decode_image(signature_png, state.settings.max_image_bytes, "签名图片")
            state.campaigns.sign(session, a, scope.actor, image)
            session.commit()
            return flash_redirect(f"/sign/{a.id}")
        except DocsignError as exc:
            session.rollback()
            if exc.code in ("ALREADY_SIGNED", "DOCUMENT_REVOKED"):
                return flash_redirect(f"/sign/{a.id}")
            errors["signature"] = exc.message
    session.refresh(a)
    context = _sign_context(a, user, state, session)
    context["errors"] = errors
    return render(request, "sign.html", user, **context)


@router.get("/documents/{document_id}/pages/{number}.png")
def document_page(doc: DocumentObj, number: int, state: StateDep) -> Response:
    if not 1 <= number <= doc.pages + 4:  # signatures never add pages; a little slack for old rows
        raise NotFoundForUser("没有这一页。")
    store = state.engine.archive
    path = getattr(store, "path_for", None)
    cache = state.settings.work_dir / "pages" / f"{doc.current_sha256}-{number}.png"
    if path is not None:
        source = path(doc.current_sha256)
    else:  # an object store: copy the PDF to the work folder first
        source = state.settings.work_dir / "pages" / f"{doc.current_sha256}.pdf"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(store.get(doc.current_sha256))
    out = page_png(source, number, cache)
    return FileResponse(out, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/documents/{document_id}/download")
def document_download(doc: DocumentObj, state: StateDep) -> Response:
    data = state.engine.archive.get(doc.current_sha256)
    name = f"{get_kind(doc.kind).title}-{doc.subject.name if doc.subject else doc.public.get('issuer', '')}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


# --- the office ----------------------------------------------------------------------------------


@router.get("/office")
def office_page(request: Request, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep) -> Response:
    scope.require(Role.OFFICE)
    return _office(request, user, state, session)


def _office(
    request: Request, user: User, state: StateDep, session: SessionDep, flash: dict[str, str] | None = None
) -> Response:
    tz, now = tz_of(state), state.clock.now()
    school_ids = [
        u.id for u in session.scalars(select(Unit).where(Unit.parent_id == user.unit_id, Unit.type == UnitType.SCHOOL))
    ]
    campaigns = []
    for c in session.scalars(select(Campaign).order_by(Campaign.id.desc())):
        items = [a for a in state.campaigns.assignments(session, c) if a.unit_id in school_ids and a.document_id]
        if not items:
            continue
        campaigns.append(
            {
                "id": c.id,
                "name": c.name,
                "deadline_local": local(c.deadline, tz),
                "rows": _rows(items, now, tz, session),
                "ready": sum(1 for a in items if a.state == "signed"),
            }
        )
    return render(request, "office.html", user, campaigns=campaigns, office_name=user.unit.name, flash=flash)


@router.post("/office/campaigns/{campaign_id}/forward")
def office_forward(
    request: Request, campaign: CampaignObj, user: PageUser, scope: ScopeDep, state: StateDep, session: SessionDep
) -> Response:
    scope.require(Role.OFFICE)
    try:
        batch = state.campaigns.forward(session, campaign, scope.unit, scope.actor)
        session.commit()
        flash = {"tone": "ok", "text": f"已将 {batch.count} 份已签署的文书统一转交教体局。"}
    except DocsignError as exc:
        session.rollback()
        flash = {"tone": "warn", "text": exc.message}
    return _office(request, user, state, session, flash=flash)


def error_page(
    request: Request, exc: DocsignError, status_code: int | None = None, code: str | None = None
) -> Response:
    heading = {404: "未找到", 403: "没有权限", 401: "请先登录", 429: "请求过于频繁"}.get(
        status_code or exc.http_status, "出错了"
    )
    user = None
    return render(
        request,
        "error.html",
        user,
        status_code=status_code or exc.http_status,
        heading=heading,
        message=exc.message,
        code=code or exc.code,
    )


def login_redirect(exc: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)
