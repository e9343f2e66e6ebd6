"""Campaigns: who gets which document, issuing them, signing online, forwarding, receiving, status.

The rules come from the Licheng notice: the bureau signs a 控辍目标责任书 with every 街道教育办 (教办版)
and every 区直学校 (区直版), and every school's principal signs a 控辍保学承诺书; schools under an
office hand theirs to the office, which forwards them to the bureau as one batch; 区直学校 send
their own. On time or late is decided by the time in the signature's timestamp against the deadline.
A recurring campaign (a 月报 due on the 20th, a 周报 due on Wednesday, the 学生失学辍学信息报告 due
15 days after each term's start) tracks a report per unit per period the same way.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from sqlalchemy import CursorResult, case, or_, select, update
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.archive.models import Document, DocumentStatus
from service.archive.service import Archive, BundleEntry, RecordAs, bundle_path, write_bundle
from service.audit.schemas import ActorRef
from service.audit.service import SYSTEM, Actor, record
from service.campaigns.draft import mark_draft
from service.campaigns.errors import (
    AssignmentNotSignable,
    CampaignInvalid,
    CampaignNotReady,
    DeadlinePassed,
    DocumentRevoked,
    NothingToForward,
    UnitDataMissing,
)
from service.campaigns.ledger import ledger_workbook
from service.campaigns.models import Assignment, AssignmentState, Campaign, ForwardBatch, TermStart
from service.campaigns.tasks import IssueCampaign
from service.clock import wall_now
from service.documents.errors import AlreadySigned
from service.documents.pipeline import IssuedDocument, IssueRequest
from service.documents.seal import check_signature_ink
from service.errors import NotFoundForUser, UploadInvalid
from service.jobs.models import Job
from service.jobs.runner import JobRunner
from service.units.models import Unit, UnitType
from service.units.service import all_units, descendants

DOCUMENT_KINDS = ("responsibility_office", "responsibility_direct", "pledge")
REPORT = "report"
WEEKLY_REPORT = "weekly_report"
INFO_REPORT = "info_report"
#: What a recurring campaign collects, by its recurrence: the 月报 (Suiyang 四: by the 20th), the
#: 周报 of the 辍学周报告制度 (Zaozhuang (四)/(五): every week, by Wednesday) and the 学生失学辍学信息报告
#: (county plan 二.(三).2: within 15 days of each term's start; its periods are the bureau's term starts).
REPORT_KINDS = {"monthly": REPORT, "weekly": WEEKLY_REPORT, "term": INFO_REPORT}
#: The largest due day of each recurrence: a day of the month, a weekday, days after term start.
DUE_DAY_LIMITS = {"monthly": 28, "weekly": 7, "term": 60}
KIND_TITLES = {
    "responsibility_office": "控辍目标责任书（教办版）",
    "responsibility_direct": "控辍目标责任书（区直版）",
    "pledge": "控辍保学承诺书",
    REPORT: "月报",
    WEEKLY_REPORT: "周报",
    INFO_REPORT: "学生失学辍学信息报告",
}
WEEKDAYS = "一二三四五六日"
#: The stages an issue job reports: the signers' certificates (units), then the documents.
KEYS_STAGE = "keys"
ISSUE_STAGE = "issue"
DONE_STATES = {AssignmentState.SIGNED, AssignmentState.FORWARDED, AssignmentState.RECEIVED}
#: How long a signature claim holds before recovery releases it (a signature takes well under a
#: second; an external TSA may take its full timeout).
SIGNING_LEASE = dt.timedelta(minutes=5)


def local_tz(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    year: int
    #: For a one-off campaign; without a time zone it is the bureau's local time.
    deadline: dt.datetime | None
    #: The date printed on the documents; today (local) if None.
    issue_date: dt.date | None
    kinds: Sequence[str] = DOCUMENT_KINDS
    recurrence: str | None = None
    due_day: int | None = None
    retention_target: float = 100


def _tree(session: Session, bureau: Unit) -> list[Unit]:
    units = all_units(session)
    ids = descendants(units, bureau.id)
    return [u for u in units if u.id in ids]


def plan(session: Session, bureau: Unit, kinds: Sequence[str]) -> list[tuple[Unit, str]]:
    """Which unit gets which document (or files which report)."""
    out: list[tuple[Unit, str]] = []
    for unit in _tree(session, bureau):
        report = next((k for k in kinds if k in REPORT_KINDS.values()), None)
        if report is not None:
            if unit.type in (UnitType.OFFICE, UnitType.SCHOOL):
                out.append((unit, report))
            continue
        if unit.type == UnitType.OFFICE and "responsibility_office" in kinds:
            out.append((unit, "responsibility_office"))
        if unit.is_direct_school and "responsibility_direct" in kinds:
            out.append((unit, "responsibility_direct"))
        if unit.type == UnitType.SCHOOL and "pledge" in kinds:
            out.append((unit, "pledge"))
    return out


def document_fields(
    kind: str, unit: Unit, campaign: Campaign, schools_under: int, retention: float = 100
) -> dict[str, Any]:
    """The document's fields, filled from the unit's data."""
    bureau = campaign.bureau
    base: dict[str, Any] = {
        "year": campaign.year,
        "bureau_name": bureau.name,
        "issue_date": campaign.issue_date.isoformat(),
    }
    if kind == "responsibility_office":
        return {
            **base,
            "office_name": unit.name,
            "office_director": unit.head_name,
            "school_count": schools_under or None,
            "retention_target": retention,
        }
    if kind == "responsibility_direct":
        return {**base, "school_name": unit.name, "principal_name": unit.head_name, "retention_target": retention}
    return {**base, "school_name": unit.name, "principal_name": unit.head_name}


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def is_term_period(period: str) -> bool:
    """A term's period is its start date, ``2027-09-01``."""
    return period.count("-") == 2


def period_of(day: dt.date, recurrence: str) -> str:
    """The period a day falls in: ``2024-10`` for a month, ``2024-W40`` for an ISO week."""
    if recurrence == "weekly":
        iso = day.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def _period_start(period: str) -> dt.date:
    if is_term_period(period):
        return dt.date.fromisoformat(period)
    year, rest = period.split("-")
    if rest.startswith("W"):
        return dt.date.fromisocalendar(int(year), int(rest[1:]), 1)
    return dt.date(int(year), int(rest), 1)


def next_period(period: str) -> str:
    start = _period_start(period)
    if "W" in period:
        return period_of(start + dt.timedelta(days=7), "weekly")
    return period_of((start + dt.timedelta(days=32)).replace(day=1), "monthly")


def period_deadline(period: str, due_day: int, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The end of the period's due day, local time: the ``due_day``-th of a month (每月20日前: by
    the end of the 20th), weekday ``due_day`` of a week (1 is Monday; 每周三前: by Wednesday's end),
    or ``due_day`` days after a term's start (开学后15日内)."""
    start = _period_start(period)
    if is_term_period(period):
        day = start + dt.timedelta(days=due_day)
    elif "W" in period:
        day = start + dt.timedelta(days=due_day - 1)
    else:
        day = start.replace(day=due_day)
    end = dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=tz)
    return end.astimezone(dt.UTC)


def recurrence_text(recurrence: str | None, due_day: int | None) -> str:
    """``每月20日前报送`` or ``每周三前报送``; empty for a one-off campaign."""
    if recurrence == "weekly" and due_day:
        return f"每周{WEEKDAYS[due_day - 1]}前报送"
    if recurrence == "monthly" and due_day:
        return f"每月{due_day}日前报送"
    if recurrence == "term" and due_day:
        return f"每学期开学后{due_day}日内报送"
    return ""


def period_label(period: str) -> str:
    """``2024年10月``, ``2024年第40周`` or ``2024年9月1日开学``; empty for a one-off campaign."""
    if not period:
        return ""
    if is_term_period(period):
        start = _period_start(period)
        return f"{start.year}年{start.month}月{start.day}日开学"
    year, rest = period.split("-")
    return f"{year}年第{int(rest[1:])}周" if rest.startswith("W") else f"{year}年{int(rest)}月"


def state_label(a: Assignment, now: dt.datetime, revoked: bool = False) -> tuple[str, str]:
    """(label, tone) of an assignment as people say it: a document is signed, a report filed."""
    report = a.kind in REPORT_KINDS.values()
    if revoked:
        return "已撤回", "revoked"
    if a.state in DONE_STATES:
        if report:
            word = {"signed": "已报送", "forwarded": "已报送", "received": "已接收"}[a.state]
        else:
            word = {"signed": "已签署", "forwarded": "已转交", "received": "已接收"}[a.state]
        return (f"{word}（逾期）", "late") if a.late else (f"{word}（按时）", "ok")
    if now > a.deadline:
        return ("未报送（已逾期）" if report else "缺签（已逾期）"), "missing"
    if report:
        return "待报送", "pending"
    return ("已查看，待签署" if a.state == AssignmentState.VIEWED else "待签署"), "pending"


class Campaigns:
    """The campaign use cases, with the services they need (the archive and its engine, the clock)."""

    def __init__(self, archive: Archive, tz: str, now: Callable[[], dt.datetime]) -> None:
        self.archive = archive
        self.engine = archive.engine
        self.tz = local_tz(tz)
        self.now = now

    # --- creating and issuing -----------------------------------------------------------------

    def create(self, session: Session, scope: Scope, spec: CampaignSpec) -> Campaign:
        """A bureau creates a campaign (documents to sign by a deadline) or a recurring report."""
        scope.require(Role.BUREAU)
        bureau, actor = scope.bureau(), scope.actor
        now = self.now()
        name = spec.name.strip()
        if not name or len(name) > 100:
            raise CampaignInvalid("任务名称不能为空，且不超过100个字。")
        if not 2000 <= spec.year <= 2100:
            raise CampaignInvalid("年度应在2000到2100之间。")
        kinds = list(dict.fromkeys(spec.kinds))
        if spec.recurrence is None:
            unknown = [k for k in kinds if k not in DOCUMENT_KINDS]
            if not kinds or unknown:
                raise CampaignInvalid(f"文书类型应从 {'、'.join(DOCUMENT_KINDS)} 中选择。")
            if spec.deadline is None:
                raise CampaignInvalid("请填写截止时间，例如 2024-09-29T16:00。")
            deadline = spec.deadline if spec.deadline.tzinfo else spec.deadline.replace(tzinfo=self.tz)
            deadline = deadline.astimezone(dt.UTC)
            if deadline <= now:
                local = deadline.astimezone(self.tz)
                raise DeadlinePassed(f"截止时间 {local:%Y年%m月%d日 %H:%M} 已经过去，请设置一个将来的时间。")
        else:
            if spec.recurrence not in REPORT_KINDS:
                raise CampaignInvalid("周期只能是 monthly（每月）、weekly（每周）或 term（每学期开学后）。")
            if spec.recurrence == "monthly" and not (spec.due_day and 1 <= spec.due_day <= 28):
                raise CampaignInvalid("每月截止日应在1到28之间。")
            if spec.recurrence == "weekly" and not (spec.due_day and 1 <= spec.due_day <= 7):
                raise CampaignInvalid("每周截止日应在1（周一）到7（周日）之间，例如每周三前报送填3。")
            if spec.recurrence == "term" and not (spec.due_day and 1 <= spec.due_day <= 60):
                raise CampaignInvalid("开学后报送的天数应在1到60之间，例如开学后15日内报送填15。")
            kinds = [REPORT_KINDS[spec.recurrence]]
            due_day = spec.due_day or 1  # checked above
            if spec.recurrence == "term":
                # until a term's period opens, the campaign's deadline is the latest term's (or none yet: now)
                terms = self.term_periods(session, bureau)
                deadline = period_deadline(terms[-1], due_day, self.tz) if terms else now
            else:
                period = period_of(now.astimezone(self.tz).date(), spec.recurrence)
                deadline = period_deadline(period, due_day, self.tz)
                if deadline <= now:  # this period's report is already due: the first period is the next
                    deadline = period_deadline(next_period(period), due_day, self.tz)
        planned = plan(session, bureau, kinds)
        if not planned:
            raise CampaignInvalid("该教体局下没有需要签署这些文书的单位，请先导入单位。")
        if spec.recurrence is None:
            missing = sorted({u.name for u, k in planned if not u.head_name})
            if missing:
                raise UnitDataMissing(
                    f"以下单位缺少负责人姓名，文书无法填写：{'、'.join(missing[:10])}{'等' if len(missing) > 10 else ''}。请在单位信息中补全后再创建。",
                    details={"units": missing},
                )
        campaign = Campaign(
            bureau_id=bureau.id,
            name=name,
            year=spec.year,
            kinds=kinds,
            deadline=deadline,
            issue_date=spec.issue_date or now.astimezone(self.tz).date(),
            recurrence=spec.recurrence,
            due_day=spec.due_day,
            status="draft",
            created_by_id=actor.user_id,
            created_at=now,
        )
        session.add(campaign)
        session.flush()
        record(
            session,
            actor,
            "campaign.create",
            "campaign",
            campaign.id,
            now,
            name=name,
            kinds=kinds,
            deadline=deadline.isoformat(),
            units=len(planned),
        )
        return campaign

    def pending(self, session: Session, campaign: Campaign) -> list[tuple[Unit, str]]:
        """Planned (unit, kind) pairs that have no document yet: what an issue run still has to do."""
        done = {
            (a.unit_id, a.kind)
            for a in session.scalars(
                select(Assignment).where(Assignment.campaign_id == campaign.id, Assignment.document_id.is_not(None))
            )
        }
        return [(u, k) for u, k in plan(session, campaign.bureau, campaign.kinds) if (u.id, k) not in done]

    def start_issue(self, session: Session, scope: Scope, campaign: Campaign, jobs: JobRunner) -> tuple[Job, bool]:
        """The bureau starts issuing a campaign in the background (``campaign.issue``); a second
        start while one runs returns the running job."""
        scope.require(Role.BUREAU)
        if campaign.bureau_id not in scope.units:
            raise CampaignNotReady("只能下发本局的任务。")
        scope.require_signer_for(campaign.bureau)
        return jobs.enqueue(
            session,
            IssueCampaign(campaign_id=campaign.id, actor=ActorRef.of(scope.actor)),
            unit_id=campaign.bureau_id,
            user_id=scope.actor.user_id,
            active_key=f"campaign.issue:{campaign.id}",
        )

    def issue(
        self,
        session: Session,
        campaign: Campaign,
        actor: Actor,
        *,
        checkpoint: Callable[[], None],
        progress: Callable[[int, int, str], None] | None = None,
        job_id: int | None = None,
        only: Collection[tuple[int, str]] | None = None,
    ) -> int:
        """Fill, certify and issue every planned document not issued yet; returns how many were
        issued. ``checkpoint`` commits: each group of documents is committed once signed and
        archived, so an interrupted run keeps what it did and a rerun issues only what is missing.
        A recurring campaign opens its current period instead. ``only``: just these (unit id,
        kind) pairs, one slice of a batch run by many workers; the campaign is marked issued by
        :meth:`finish_issue` once every slice is done."""
        if campaign.recurrence is not None:
            created = self.ensure_periods(session, campaign, actor)
            self._mark_issued(session, campaign, actor)
            return created
        todo = self.pending(session, campaign)
        if only is not None:
            wanted = {(int(u), str(k)) for u, k in only}
            todo = [(u, k) for u, k in todo if (u.id, k) in wanted]
        total = len(todo)
        if progress:
            progress(0, total, ISSUE_STAGE)
        if not todo:
            if only is None:
                self._mark_issued(session, campaign, actor)
            return 0
        bureau = campaign.bureau
        schools_under: dict[int, int] = defaultdict(int)
        for u in _tree(session, bureau):
            if u.type == UnitType.SCHOOL and u.parent_id is not None:
                schools_under[u.parent_id] += 1
        # each signer's certificate, before anything is issued: for a first campaign this is most
        # of the wait (a key pair per unit), so the bar counts it too (not a slice's: the job's
        # progress is the sum of its slices' documents)
        signers = list({u.id: u for u in [bureau, *(unit for unit, _ in todo)]}.values())
        for i, unit in enumerate(signers, 1):
            self.engine.pki.ensure_unit(unit.cert_key, unit.name)
            if progress and only is None:
                progress(i, len(signers), KEYS_STAGE)
        if progress:
            progress(0, total, ISSUE_STAGE)
        campaign.status = "issuing"
        checkpoint()
        kinds: dict[int, tuple[Unit, str]] = {}

        def items() -> Iterator[tuple[IssueRequest, RecordAs]]:
            for unit, kind in todo:
                fields = _clean(document_fields(kind, unit, campaign, schools_under[unit.id]))
                request = IssueRequest(kind, fields, issuer_key=bureau.cert_key)
                kinds[id(request)] = (unit, kind)
                yield request, RecordAs(issuer=bureau, subject=unit)

        def on_recorded(group: list[tuple[IssuedDocument, Document]]) -> None:
            now = self.now()
            for issued, doc in group:
                unit, kind = kinds.pop(id(issued.request))
                session.add(
                    Assignment(
                        campaign_id=campaign.id,
                        unit_id=unit.id,
                        kind=kind,
                        period="",
                        deadline=campaign.deadline,
                        document_id=doc.id,
                        state=AssignmentState.ISSUED,
                        issued_at=now,
                    )
                )
                record(
                    session,
                    actor,
                    "document.issue",
                    "document",
                    doc.id,
                    now,
                    kind=kind,
                    unit=unit.name,
                    sha256=doc.current_sha256,
                    campaign=campaign.id,
                )

        done = self.archive.issue_batch(
            session,
            items(),
            total=total,
            checkpoint=checkpoint,
            on_recorded=on_recorded,
            progress=(lambda n: progress(n, total, ISSUE_STAGE)) if progress else None,
            job_id=job_id,
        )
        if only is None:
            self._mark_issued(session, campaign, actor)
        return done

    def finish_issue(self, session: Session, campaign: Campaign, actor: Actor) -> None:
        """After the last slice of a campaign issued by many workers."""
        self._mark_issued(session, campaign, actor)

    def open_recurring(self, session: Session, scope: Scope, campaign: Campaign) -> int:
        """A recurring campaign starts at once: its current period opens for every unit."""
        scope.require(Role.BUREAU)
        if campaign.recurrence is None:
            raise CampaignNotReady("只有周期报送任务可以直接开始。")
        created = self.ensure_periods(session, campaign, scope.actor)
        self._mark_issued(session, campaign, scope.actor)
        return created

    def _mark_issued(self, session: Session, campaign: Campaign, actor: Actor) -> None:
        if campaign.status != "issued":
            campaign.status = "issued"
            campaign.issued_at = self.now()
            record(session, actor, "campaign.issue", "campaign", campaign.id, campaign.issued_at)

    def term_periods(self, session: Session, bureau: Unit) -> list[str]:
        """The bureau's terms that have started, oldest first, as periods (their start dates)."""
        today = self.now().astimezone(self.tz).date()
        return [
            t.starts_on.isoformat()
            for t in session.scalars(
                select(TermStart)
                .where(TermStart.bureau_id == bureau.id, TermStart.starts_on <= today)
                .order_by(TermStart.starts_on)
            )
        ]

    def periods(self, campaign: Campaign, session: Session) -> list[str]:
        """The periods (months, weeks or terms) opened so far: from the first one whose deadline
        falls after the campaign was created, up to the current one. A term's period opens on the
        term's start date as the bureau entered it."""
        assert campaign.due_day is not None and campaign.recurrence is not None
        if campaign.recurrence == "term":
            due_day = campaign.due_day
            return [
                p
                for p in self.term_periods(session, campaign.bureau)
                if period_deadline(p, due_day, self.tz) > campaign.created_at
            ]
        period = period_of(campaign.created_at.astimezone(self.tz).date(), campaign.recurrence)
        if period_deadline(period, campaign.due_day, self.tz) <= campaign.created_at:
            period = next_period(period)
        current = _period_start(period_of(self.now().astimezone(self.tz).date(), campaign.recurrence))
        out = []
        while _period_start(period) <= current:
            out.append(period)
            period = next_period(period)
        return out

    def ensure_periods(self, session: Session, campaign: Campaign, actor: Actor = SYSTEM) -> int:
        """Open every period up to the current one for a recurring campaign; returns new assignments."""
        assert campaign.due_day is not None
        now = self.now()
        periods = self.periods(campaign, session)
        existing = {
            (a.unit_id, a.period)
            for a in session.scalars(select(Assignment).where(Assignment.campaign_id == campaign.id))
        }
        created = 0
        for period in periods:
            deadline = period_deadline(period, campaign.due_day, self.tz)
            for unit, kind in plan(session, campaign.bureau, campaign.kinds):
                if (unit.id, period) not in existing:
                    session.add(
                        Assignment(
                            campaign_id=campaign.id,
                            unit_id=unit.id,
                            kind=kind,
                            period=period,
                            deadline=deadline,
                            state=AssignmentState.ISSUED,
                            issued_at=now,
                        )
                    )
                    created += 1
        if periods:
            campaign.deadline = period_deadline(periods[-1], campaign.due_day, self.tz)
        if created:
            record(
                session, actor, "campaign.periods", "campaign", campaign.id, now, created=created, period=periods[-1]
            )
        return created

    def refresh_recurring(self, session: Session) -> None:
        """Open the current period of every issued recurring campaign (the ``campaigns.open_periods``
        schedule; the caller commits). Reading never opens one."""
        for campaign in session.scalars(
            select(Campaign).where(Campaign.recurrence.is_not(None), Campaign.status == "issued")
        ):
            periods = self.periods(campaign, session)
            if periods and not session.scalar(
                select(Assignment.id)
                .where(Assignment.campaign_id == campaign.id, Assignment.period == periods[-1])
                .limit(1)
            ):
                self.ensure_periods(session, campaign)

    # --- a unit's actions ---------------------------------------------------------------------

    def viewed(self, session: Session, scope: Scope, assignment: Assignment) -> None:
        """Someone opened the document; the assignment counts as viewed when its own unit did."""
        now = self.now()
        if assignment.state == AssignmentState.ISSUED and scope.unit.id == assignment.unit_id:
            assignment.state = AssignmentState.VIEWED
            assignment.viewed_at = now
        record(session, scope.actor, "document.view", "document", assignment.document_id, now, assignment=assignment.id)

    def sign(
        self,
        session: Session,
        scope: Scope,
        assignment: Assignment,
        signature_png: bytes,
        seal_png: bytes | None = None,
    ) -> Document:
        """A unit's signer signs its document: the drawn signature and the unit's seal, with the
        unit's key. The assignment is claimed first in a transaction of its own (with a lease that
        recovery releases if this process dies), so a second click or device stops at once and the
        signature is made without holding a database lock; the caller commits the result."""
        if assignment.unit_id not in scope.delegated:  # a delegate signs for the unit that chose them
            scope.require(Role.SIGNER, message="只有本单位负责人（签署人）可以签署。")
            if assignment.unit_id != scope.unit.id:
                raise scope.refuse("只能签署本单位的文书。")
        if assignment.kind in REPORT_KINDS.values() or assignment.document_id is None:
            raise AssignmentNotSignable(f"{KIND_TITLES.get(assignment.kind, '报表')}请上传报表文件，不需要在线签署。")
        doc = session.get(Document, assignment.document_id)
        assert doc is not None
        if doc.status == DocumentStatus.REVOKED:
            raise DocumentRevoked(f"该文书已于 {doc.revoked_at:%Y-%m-%d} 撤回（{doc.revoke_reason}），不能再签署。")
        check_signature_ink(signature_png)
        self._claim(assignment)
        try:
            unit = assignment.unit
            signed = self.archive.sign(
                session,
                doc,
                scope.actor,
                key=unit.cert_key,
                name=unit.name,
                unit=unit,
                signature_png=signature_png,
                seal_png=seal_png,
                assignment=assignment.id,
            )
        except BaseException:
            session.rollback()
            self._release(assignment)
            raise
        session.refresh(assignment)
        assignment.state = AssignmentState.SIGNED
        assignment.claimed_until = None
        assignment.signed_at = signed.signed_at
        assignment.late = signed.signed_at > assignment.deadline
        if assignment.viewed_at is None:
            assignment.viewed_at = self.now()
        session.flush()
        return doc

    def _claim(self, assignment: Assignment) -> None:
        with self.archive.db.session() as apart:
            claimed = cast(
                CursorResult[Any],
                apart.execute(
                    update(Assignment)
                    .where(
                        Assignment.id == assignment.id,
                        Assignment.state.in_([AssignmentState.ISSUED, AssignmentState.VIEWED]),
                    )
                    .values(state=AssignmentState.SIGNING, claimed_until=wall_now() + SIGNING_LEASE)
                ),
            ).rowcount
            apart.commit()
        if not claimed:
            raise AlreadySigned("该文书已经签署（或正在签署），不能重复签署。")

    def _release(self, assignment: Assignment) -> None:
        with self.archive.db.session() as apart:
            apart.execute(
                update(Assignment)
                .where(Assignment.id == assignment.id, Assignment.state == AssignmentState.SIGNING)
                .values(
                    state=case(
                        (Assignment.viewed_at.is_(None), AssignmentState.ISSUED.value),
                        else_=AssignmentState.VIEWED.value,
                    ),
                    claimed_until=None,
                )
            )
            apart.commit()

    def release_expired_claims(self, session: Session) -> int:
        """Signatures claimed by a process that died before making them are free again."""
        released = cast(
            CursorResult[Any],
            session.execute(
                update(Assignment)
                .where(
                    Assignment.state == AssignmentState.SIGNING,
                    or_(Assignment.claimed_until.is_(None), Assignment.claimed_until < wall_now()),
                )
                .values(
                    state=case(
                        (Assignment.viewed_at.is_(None), AssignmentState.ISSUED.value),
                        else_=AssignmentState.VIEWED.value,
                    ),
                    claimed_until=None,
                )
            ),
        ).rowcount
        return int(released or 0)

    def file_report(self, session: Session, scope: Scope, assignment: Assignment, data: bytes, filename: str) -> None:
        """A unit files this period's report (a PDF or an Excel file)."""
        scope.require(Role.SIGNER, Role.OFFICE)
        if assignment.unit_id != scope.unit.id:
            raise scope.refuse("只能报送本单位的报表。")
        if assignment.kind not in REPORT_KINDS.values():
            raise AssignmentNotSignable("这份文书需要在线签署，不是上传报表。")
        if assignment.state in DONE_STATES:
            raise AlreadySigned("本期报表已经报送。")
        if not (data.startswith(b"%PDF-") or data[:2] == b"PK"):
            raise UploadInvalid("报表应为 PDF 或 Excel（.xlsx）文件。")
        now = self.now()
        sha256 = self.archive.keep(session, "reports", data)
        assignment.state = AssignmentState.SIGNED
        assignment.signed_at = now
        assignment.late = now > assignment.deadline
        assignment.report_sha256 = sha256
        assignment.report_name = filename[:128]
        record(
            session,
            scope.actor,
            "report.file",
            "assignment",
            assignment.id,
            now,
            period=assignment.period,
            sha256=sha256,
            late=assignment.late,
        )

    def forward(self, session: Session, scope: Scope, campaign: Campaign) -> ForwardBatch:
        """An office sends its schools' signed documents to the bureau as one batch."""
        scope.require(Role.OFFICE)
        office, actor = scope.unit, scope.actor
        if office.type != UnitType.OFFICE:
            raise NothingToForward("只有街道教育办需要转交所辖学校的文书。")
        school_ids = [u.id for u in all_units(session) if u.parent_id == office.id and u.type == UnitType.SCHOOL]
        items = list(
            session.scalars(
                select(Assignment).where(
                    Assignment.campaign_id == campaign.id,
                    Assignment.unit_id.in_(school_ids),
                    Assignment.state == AssignmentState.SIGNED,
                )
            )
        )
        if not items:
            raise NothingToForward("所辖学校中没有已签署、尚未转交的文书。")
        now = self.now()
        batch = ForwardBatch(
            campaign_id=campaign.id, office_id=office.id, created_by_id=actor.user_id, created_at=now, count=len(items)
        )
        session.add(batch)
        session.flush()
        for a in items:
            a.state = AssignmentState.FORWARDED
            a.forwarded_at = now
            a.forward_batch_id = batch.id
        record(
            session,
            actor,
            "campaign.forward",
            "forward_batch",
            batch.id,
            now,
            campaign=campaign.id,
            office=office.name,
            assignments=[a.id for a in items],
        )
        return batch

    def receive(self, session: Session, scope: Scope, campaign: Campaign) -> int:
        """The bureau takes in what has reached it: offices' and 区直学校' own signatures, forwarded batches."""
        scope.require(Role.BUREAU)
        now = self.now()
        count = 0
        for a in session.scalars(select(Assignment).where(Assignment.campaign_id == campaign.id)):
            direct = a.unit.type == UnitType.OFFICE or a.unit.is_direct_school or a.kind in REPORT_KINDS.values()
            if a.state == AssignmentState.FORWARDED or (a.state == AssignmentState.SIGNED and direct):
                a.state = AssignmentState.RECEIVED
                a.received_at = now
                count += 1
        if count:
            record(session, scope.actor, "campaign.receive", "campaign", campaign.id, now, count=count)
        return count

    def preview(self, session: Session, scope: Scope, campaign: Campaign, kind: str) -> bytes:
        """A draft of one of the campaign's documents, filled for the first unit that gets it:
        unsigned, without a code, marked 样稿 on every page, for the bureau to read before issuing."""
        scope.require(Role.BUREAU)
        units = [u for u, k in plan(session, campaign.bureau, campaign.kinds) if k == kind]
        if not units:
            raise NotFoundForUser("该任务不下发这种文书。")
        schools_under = sum(1 for u in all_units(session) if u.parent_id == units[0].id)
        return mark_draft(self.engine.preview(kind, _clean(document_fields(kind, units[0], campaign, schools_under))))

    def issue_job(self, session: Session, campaign: Campaign) -> Job | None:
        """The campaign's latest issuing job, if any."""
        return session.scalar(
            select(Job)
            .where(Job.kind == "campaign.issue", Job.params["campaign_id"].as_integer() == campaign.id)
            .order_by(Job.id.desc())
            .limit(1)
        )

    # --- exports ------------------------------------------------------------------------------

    def export_ledger(self, session: Session, scope: Scope, campaign: Campaign) -> bytes:
        """The campaign's 台账 as an Excel workbook (the units the user sees), audited."""
        items = [a for a in self.assignments(session, campaign) if a.unit_id in scope.units]
        now = self.now()
        revoked = {
            a.id
            for a in items
            if a.document_id is not None
            and (doc := session.get(Document, a.document_id)) is not None
            and doc.status == DocumentStatus.REVOKED
        }
        data = ledger_workbook(
            campaign,
            items,
            KIND_TITLES,
            self.tz,
            now,
            label=lambda a: state_label(a, now, a.id in revoked)[0],
            report=campaign.recurrence is not None,
        )
        record(session, scope.actor, "campaign.export_ledger", "campaign", campaign.id, self.now(), rows=len(items))
        return data

    def export_archive(self, session: Session, scope: Scope, campaign: Campaign, out: IO[bytes]) -> int:
        """Every signed document of the campaign the user sees (or, for a report campaign, every
        filed report), as a zip with a SHA-256 manifest; times in the bureau's time zone."""
        scope.require(Role.BUREAU, Role.OFFICE)
        now = self.now()
        report = campaign.recurrence is not None
        entries = []
        statuses = {"valid": "有效", "superseded": "已被新版本替代", "revoked": "已撤回"}
        for a in self.assignments(session, campaign):
            if a.unit_id not in scope.units:
                continue
            group = a.unit.parent.name if a.unit.parent is not None else a.unit.name
            meta: dict[str, Any] = {
                "unit": a.unit.name,
                "unit_code": a.unit.code,
                "kind": KIND_TITLES.get(a.kind, a.kind),
                "state": state_label(a, now)[0],
                "signed_at": a.signed_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S") if a.signed_at else "",
                "late": "" if a.late is None else ("是" if a.late else "否"),
            }
            if report:
                if a.report_sha256 is None:
                    continue
                name = a.report_name or "报表"
                suffix = name[name.rfind(".") :] if "." in name else ""
                path = bundle_path(
                    group, f"{a.unit.name}-{period_label(a.period)}{KIND_TITLES.get(a.kind, '')}{suffix}"
                )
                entries.append(BundleEntry(path, a.report_sha256, {**meta, "filename": name}))
                continue
            if a.document_id is None:
                continue
            doc = session.get(Document, a.document_id)
            assert doc is not None
            meta["document_status"] = statuses.get(doc.status, doc.status)
            if doc.status == DocumentStatus.REVOKED:
                meta["state"] = "已撤回"
            entries.append(
                BundleEntry(
                    bundle_path(group, f"{a.unit.name}-{KIND_TITLES.get(a.kind, a.kind)}.pdf"), doc.current_sha256, meta
                )
            )
        store = self.archive.stores["reports"] if report else self.archive.documents
        headers = {"signed_at": "报送时间（北京时间）", "kind": "报表"} if report else None
        count = write_bundle(out, store, entries, campaign.name, self.tz, headers)
        record(session, scope.actor, "campaign.export_archive", "campaign", campaign.id, now, files=count)
        return count

    def escalations(self, session: Session, scope: Scope) -> list[dict[str, object]]:
        """Units directly below the user's own whose document or report is overdue: whom to chase."""
        now = self.now()
        below = scope.units - {scope.unit.id}
        out: list[dict[str, object]] = []
        for a in session.scalars(
            select(Assignment).where(
                Assignment.unit_id.in_(below),
                Assignment.deadline < now,
                Assignment.state.in_([AssignmentState.ISSUED, AssignmentState.VIEWED]),
            )
        ):
            if a.unit.parent_id == scope.unit.id:
                out.append(
                    {
                        "assignment_id": a.id,
                        "campaign": a.campaign.name,
                        "unit_id": a.unit_id,
                        "unit": a.unit.name,
                        "kind": a.kind,
                        "period": a.period,
                        "deadline": a.deadline.isoformat(),
                    }
                )
        return out

    # --- watching -----------------------------------------------------------------------------

    def assignments(self, session: Session, campaign: Campaign, period: str | None = None) -> list[Assignment]:
        query = select(Assignment).where(Assignment.campaign_id == campaign.id)
        if period is not None:
            query = query.where(Assignment.period == period)
        return list(session.scalars(query.order_by(Assignment.unit_id, Assignment.kind)))

    def status(
        self, session: Session, campaign: Campaign, visible: set[int] | None = None, period: str | None = None
    ) -> dict[str, Any]:
        """Counts, who is missing grouped by office, and what escalates to whom."""
        now = self.now()
        if campaign.recurrence and period is None:
            opened = self.periods(campaign, session)
            period = opened[-1] if opened else ""
        items = [a for a in self.assignments(session, campaign, period) if visible is None or a.unit_id in visible]
        counts: dict[str, int] = defaultdict(int)
        groups: dict[str, dict[str, Any]] = {}
        escalations: dict[int, dict[str, Any]] = {}
        for a in items:
            counts[a.state] += 1
            done = a.state in DONE_STATES
            overdue = not done and now > a.deadline
            if done and a.late:
                counts["late"] += 1
            elif done:
                counts["on_time"] += 1
            elif overdue:
                counts["missing"] += 1
            else:
                counts["pending"] += 1
            unit = a.unit
            if unit.type == UnitType.SCHOOL and unit.parent is not None and unit.parent.type == UnitType.OFFICE:
                group_unit = unit.parent
            elif unit.type == UnitType.OFFICE:
                group_unit = unit
            else:
                group_unit = None
            key = str(group_unit.id) if group_unit else "direct"
            group = groups.setdefault(
                key,
                {
                    "office_id": group_unit.id if group_unit else None,
                    "title": group_unit.name if group_unit else "区直学校",
                    "total": 0,
                    "done": 0,
                    "late": 0,
                    "missing": [],
                    "pending": [],
                },
            )
            group["total"] += 1
            group["done"] += int(done)
            group["late"] += int(bool(done and a.late))
            row = {"assignment_id": a.id, "unit_id": unit.id, "unit": unit.name, "kind": a.kind, "state": a.state}
            if overdue:
                group["missing"].append(row)
                superior = unit.parent
                if superior is not None:
                    esc = escalations.setdefault(
                        superior.id, {"unit_id": superior.id, "unit": superior.name, "overdue": []}
                    )
                    esc["overdue"].append(row)
            elif not done:
                group["pending"].append(row)
        total = len(items)
        return {
            "campaign_id": campaign.id,
            "name": campaign.name,
            "period": period or "",
            "deadline": (items[0].deadline if items else campaign.deadline).isoformat(),
            "deadline_passed": now > (items[0].deadline if items else campaign.deadline),
            "now": now.isoformat(),
            "total": total,
            "done": sum(counts[s] for s in DONE_STATES),
            "on_time": counts["on_time"],
            "late": counts["late"],
            "missing": counts["missing"],
            "pending": counts["pending"],
            "by_state": {s.value: counts[s.value] for s in AssignmentState},
            "groups": sorted(groups.values(), key=lambda g: (g["office_id"] is None, g["title"])),
            "escalations": sorted(escalations.values(), key=lambda e: e["unit"]),
        }
