"""Campaigns: who gets which document, issuing them, signing online, forwarding, receiving, status.

The rules come from the Licheng notice: the bureau signs a 控辍目标责任书 with every 街道教育办 (教办版)
and every 区直学校 (区直版), and every school's principal signs a 控辍保学承诺书; schools under an
office hand theirs to the office, which forwards them to the bureau as one batch; 区直学校 send
their own. On time or late is decided by the time in the signature's timestamp against the deadline.
A recurring campaign (a 月报 due on the 20th, a 周报 due on Wednesday) tracks a report per unit per
period the same way.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from service.archive import service as archive
from service.archive.models import Document, DocumentStatus
from service.archive.store import ArchiveStore
from service.audit.service import SYSTEM, Actor, record
from service.campaigns.errors import (
    AssignmentNotSignable,
    CampaignInvalid,
    CampaignNotReady,
    DeadlinePassed,
    DocumentRevoked,
    NothingToForward,
    UnitDataMissing,
)
from service.campaigns.models import (
    Assignment,
    AssignmentState,
    Campaign,
    ForwardBatch,
    Unit,
    UnitType,
)
from service.campaigns.units import all_units, descendants
from service.documents.errors import AlreadySigned
from service.documents.pipeline import DocumentEngine, IssuedDocument, IssueRequest

DOCUMENT_KINDS = ("responsibility_office", "responsibility_direct", "pledge")
REPORT = "report"
WEEKLY_REPORT = "weekly_report"
#: What a recurring campaign collects, by its recurrence: the 月报 (Suiyang 四: by the 20th) and the
#: 周报 of the 辍学周报告制度 (Zaozhuang (四)/(五): every week, by Wednesday).
REPORT_KINDS = {"monthly": REPORT, "weekly": WEEKLY_REPORT}
KIND_TITLES = {
    "responsibility_office": "控辍目标责任书（教办版）",
    "responsibility_direct": "控辍目标责任书（区直版）",
    "pledge": "控辍保学承诺书",
    REPORT: "月报",
    WEEKLY_REPORT: "周报",
}
WEEKDAYS = "一二三四五六日"
DONE_STATES = {AssignmentState.SIGNED, AssignmentState.FORWARDED, AssignmentState.RECEIVED}


def local_tz(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    year: int
    deadline: dt.datetime
    issue_date: dt.date
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


def period_of(day: dt.date, recurrence: str) -> str:
    """The period a day falls in: ``2024-10`` for a month, ``2024-W40`` for an ISO week."""
    if recurrence == "weekly":
        iso = day.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def _period_start(period: str) -> dt.date:
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
    the end of the 20th), or weekday ``due_day`` of a week (1 is Monday; 每周三前: by Wednesday's end)."""
    start = _period_start(period)
    day = start + dt.timedelta(days=due_day - 1) if "W" in period else start.replace(day=due_day)
    end = dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=tz)
    return end.astimezone(dt.UTC)


def recurrence_text(recurrence: str | None, due_day: int | None) -> str:
    """``每月20日前报送`` or ``每周三前报送``; empty for a one-off campaign."""
    if recurrence == "weekly" and due_day:
        return f"每周{WEEKDAYS[due_day - 1]}前报送"
    if recurrence == "monthly" and due_day:
        return f"每月{due_day}日前报送"
    return ""


def period_label(period: str) -> str:
    """``2024年10月`` or ``2024年第40周``; empty for a one-off campaign."""
    if not period:
        return ""
    year, rest = period.split("-")
    return f"{year}年第{int(rest[1:])}周" if rest.startswith("W") else f"{year}年{int(rest)}月"


class Campaigns:
    """The campaign rules, with the resources they need (the document engine, the clock, the archive)."""

    def __init__(
        self,
        engine: DocumentEngine,
        store: ArchiveStore,
        reports: ArchiveStore,
        tz: str,
        now: Callable[[], dt.datetime],
    ) -> None:
        self.engine = engine
        self.store = store
        self.reports = reports
        self.tz = local_tz(tz)
        self.now = now

    # --- creating and issuing -----------------------------------------------------------------

    def create(self, session: Session, bureau: Unit, spec: CampaignSpec, actor: Actor) -> Campaign:
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
            deadline = spec.deadline if spec.deadline.tzinfo else spec.deadline.replace(tzinfo=self.tz)
            if deadline <= now:
                local = deadline.astimezone(self.tz)
                raise DeadlinePassed(f"截止时间 {local:%Y年%m月%d日 %H:%M} 已经过去，请设置一个将来的时间。")
        else:
            if spec.recurrence not in REPORT_KINDS:
                raise CampaignInvalid("周期只能是 monthly（每月）或 weekly（每周）。")
            if spec.recurrence == "monthly" and not (spec.due_day and 1 <= spec.due_day <= 28):
                raise CampaignInvalid("每月截止日应在1到28之间。")
            if spec.recurrence == "weekly" and not (spec.due_day and 1 <= spec.due_day <= 7):
                raise CampaignInvalid("每周截止日应在1（周一）到7（周日）之间，例如每周三前报送填3。")
            kinds = [REPORT_KINDS[spec.recurrence]]
            due_day = spec.due_day or 1  # checked above
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
            issue_date=spec.issue_date,
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

    def issue(
        self, session: Session, campaign: Campaign, actor: Actor, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Fill, certify and issue every planned document not issued yet; returns how many were issued.

        Each document is committed as soon as it is signed and archived, so an interrupted run keeps
        what it did and a rerun issues only what is missing, never a duplicate.
        """
        if campaign.recurrence is not None:
            created = self.ensure_periods(session, campaign, actor)
            self._mark_issued(session, campaign, actor)
            session.commit()
            return created
        todo = self.pending(session, campaign)
        total = len(todo)
        if progress:
            progress(0, total)
        if not todo:
            self._mark_issued(session, campaign, actor)
            session.commit()
            return 0
        bureau = campaign.bureau
        schools_under: dict[int, int] = defaultdict(int)
        for u in _tree(session, bureau):
            if u.type == UnitType.SCHOOL and u.parent_id is not None:
                schools_under[u.parent_id] += 1
        requests = [
            IssueRequest(
                kind, _clean(document_fields(kind, unit, campaign, schools_under[unit.id])), issuer_key=bureau.cert_key
            )
            for unit, kind in todo
        ]
        self.engine.pki.ensure_unit(bureau.cert_key, bureau.name)
        for unit, _ in todo:  # each signer's certificate, before anything is issued
            self.engine.pki.ensure_unit(unit.cert_key, unit.name)
        campaign.status = "issuing"
        session.commit()
        done = 0
        by_request = {id(r): pair for r, pair in zip(requests, todo, strict=True)}

        def on_issued(doc: IssuedDocument) -> None:
            nonlocal done
            unit, kind = by_request[id(doc.request)]
            now = self.now()
            record_doc = archive.record_issued(
                session,
                doc,
                issuer=bureau,
                subject=unit,
                at=now,
            )
            session.add(
                Assignment(
                    campaign_id=campaign.id,
                    unit_id=unit.id,
                    kind=kind,
                    period="",
                    deadline=campaign.deadline,
                    document_id=record_doc.id,
                    state=AssignmentState.ISSUED,
                    issued_at=now,
                )
            )
            record(
                session,
                actor,
                "document.issue",
                "document",
                record_doc.id,
                now,
                kind=kind,
                unit=unit.name,
                sha256=doc.sha256,
                campaign=campaign.id,
            )
            session.commit()
            done += 1
            if progress:
                progress(done, total)

        self.engine.issue_many(requests, on_issued=on_issued)
        self._mark_issued(session, campaign, actor)
        session.commit()
        return done

    def _mark_issued(self, session: Session, campaign: Campaign, actor: Actor) -> None:
        if campaign.status != "issued":
            campaign.status = "issued"
            campaign.issued_at = self.now()
            record(session, actor, "campaign.issue", "campaign", campaign.id, campaign.issued_at)

    def periods(self, campaign: Campaign) -> list[str]:
        """The periods (months or weeks) opened so far: from the first one whose deadline falls
        after the campaign was created, up to the current one."""
        assert campaign.due_day is not None and campaign.recurrence is not None
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
        periods = self.periods(campaign)
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
        """Open this month's period of every issued recurring campaign (done lazily, on reading; the
        caller commits, and treats a conflict with a concurrent reader doing the same as done)."""
        for campaign in session.scalars(
            select(Campaign).where(Campaign.recurrence.is_not(None), Campaign.status == "issued")
        ):
            periods = self.periods(campaign)
            if periods and not session.scalar(
                select(Assignment.id)
                .where(Assignment.campaign_id == campaign.id, Assignment.period == periods[-1])
                .limit(1)
            ):
                self.ensure_periods(session, campaign)

    # --- a unit's actions ---------------------------------------------------------------------

    def viewed(self, session: Session, assignment: Assignment, actor: Actor) -> None:
        now = self.now()
        if assignment.state == AssignmentState.ISSUED and actor.unit_id == assignment.unit_id:
            assignment.state = AssignmentState.VIEWED
            assignment.viewed_at = now
        record(session, actor, "document.view", "document", assignment.document_id, now, assignment=assignment.id)

    def sign(
        self,
        session: Session,
        assignment: Assignment,
        actor: Actor,
        signature_png: bytes,
        seal_png: bytes | None = None,
    ) -> Document:
        """The unit signs its document: the drawn signature and the unit's seal, with the unit's key."""
        if assignment.kind in REPORT_KINDS.values() or assignment.document_id is None:
            raise AssignmentNotSignable(f"{KIND_TITLES.get(assignment.kind, '报表')}请上传报表文件，不需要在线签署。")
        doc = session.get(Document, assignment.document_id)
        assert doc is not None
        if doc.status == DocumentStatus.REVOKED:
            raise DocumentRevoked(f"该文书已于 {doc.revoked_at:%Y-%m-%d} 撤回（{doc.revoke_reason}），不能再签署。")
        # Claim the assignment and commit the claim: a second click (or a second device) finds it
        # taken and stops, and the signature below is made without holding a database lock (on
        # SQLite that lock would stop every other writer for as long as the TSA takes).
        previous = assignment.state
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(Assignment)
                .where(
                    Assignment.id == assignment.id,
                    Assignment.state.in_([AssignmentState.ISSUED, AssignmentState.VIEWED]),
                )
                .values(state=AssignmentState.SIGNING)
            ),
        ).rowcount
        if not claimed:
            raise AlreadySigned("该文书已经签署（或正在签署），不能重复签署。")
        session.commit()
        unit = assignment.unit
        try:
            self.engine.pki.ensure_unit(unit.cert_key, unit.name)
            pdf = self.store.get(doc.current_sha256)
            signed, sha256 = self.engine.sign_as(
                pdf, unit_key=unit.cert_key, signature_image=signature_png, seal_image=seal_png
            )
            report = self.engine.verify(signed)
        except BaseException:
            session.rollback()
            session.execute(
                update(Assignment)
                .where(Assignment.id == assignment.id, Assignment.state == AssignmentState.SIGNING)
                .values(state=previous)
            )
            session.commit()
            raise
        signed_at = report.signatures[-1].signing_time or self.now()
        now = self.now()
        archive.record_signed(session, doc, sha256=sha256, size=len(signed), signer=unit, at=now)
        session.refresh(assignment)
        assignment.state = AssignmentState.SIGNED
        assignment.signed_at = signed_at
        assignment.late = signed_at > assignment.deadline
        if assignment.viewed_at is None:
            assignment.viewed_at = now
        record(
            session,
            actor,
            "document.sign",
            "document",
            doc.id,
            now,
            assignment=assignment.id,
            unit=unit.name,
            sha256=sha256,
            signed_at=signed_at.isoformat(),
            late=assignment.late,
        )
        return doc

    def file_report(self, session: Session, assignment: Assignment, actor: Actor, data: bytes, filename: str) -> None:
        if assignment.kind not in REPORT_KINDS.values():
            raise AssignmentNotSignable("这份文书需要在线签署，不是上传报表。")
        if assignment.state in DONE_STATES:
            raise AlreadySigned("本期报表已经报送。")
        now = self.now()
        sha256 = self.reports.put(data)
        assignment.state = AssignmentState.SIGNED
        assignment.signed_at = now
        assignment.late = now > assignment.deadline
        assignment.report_sha256 = sha256
        assignment.report_name = filename[:128]
        record(
            session,
            actor,
            "report.file",
            "assignment",
            assignment.id,
            now,
            period=assignment.period,
            sha256=sha256,
            late=assignment.late,
        )

    def forward(self, session: Session, campaign: Campaign, office: Unit, actor: Actor) -> ForwardBatch:
        """The office sends its schools' signed documents to the bureau as one batch."""
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

    def receive(self, session: Session, campaign: Campaign, actor: Actor) -> int:
        """The bureau takes in what has reached it: offices' and 区直学校' own signatures, forwarded batches."""
        now = self.now()
        count = 0
        for a in session.scalars(select(Assignment).where(Assignment.campaign_id == campaign.id)):
            direct = a.unit.type == UnitType.OFFICE or a.unit.is_direct_school or a.kind in REPORT_KINDS.values()
            if a.state == AssignmentState.FORWARDED or (a.state == AssignmentState.SIGNED and direct):
                a.state = AssignmentState.RECEIVED
                a.received_at = now
                count += 1
        if count:
            record(session, actor, "campaign.receive", "campaign", campaign.id, now, count=count)
        return count

    def revoke(self, session: Session, doc: Document, actor: Actor, reason: str) -> None:
        reason = reason.strip()
        if not reason or len(reason) > 200:
            raise CampaignInvalid("请填写撤回原因（不超过200字）。")
        if doc.status == DocumentStatus.REVOKED:
            raise CampaignNotReady("该文书已经撤回。")
        now = self.now()
        archive.revoke(doc, reason, now)
        record(session, actor, "document.revoke", "document", doc.id, now, reason=reason)

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
            opened = self.periods(campaign)
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
