"""Notices out, as use cases: contacts, the reminder rules, 催办, sending what is due with retries,
and signed webhooks fed from the audit log.

Everything sent is first a row of the delivery log (``Delivery``, ``WebhookDelivery``) with a unique
``dedupe_key``: the rules may run any number of times (the schedule, ``docsign notify run``, a job
rerun after a crash) and each message is queued once. Sending claims a row (``sending``) and commits
before the provider is called, so a process killed while sending never sends it again by itself: the
row stays 状态不明 for a person to resend. This package sits above every other domain and reads
them; none of them imports it: webhook events are read from the audit log by a cursor.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import secrets
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from service.accounts.models import Role, User
from service.accounts.scope import Scope
from service.audit.models import AuditEvent
from service.audit.service import mask_personal, record
from service.campaigns.models import Assignment, AssignmentState, Campaign
from service.cases.models import OPEN_STATUSES
from service.clock import wall_now
from service.db.scoping import valid_id
from service.db.session import write_first
from service.errors import NotFoundForUser
from service.jobs.runner import JobRunner
from service.ledgers.service import Ledgers
from service.notify.channels import (
    CHANNEL_TITLES,
    CHANNELS,
    LOUD,
    ROBOTS,
    Channel,
    Outgoing,
    mask_recipient,
    normalize_recipient,
)
from service.notify.errors import (
    ChannelNotConfigured,
    DeliveryFailed,
    NothingToUrge,
    RecipientInvalid,
    UnknownChannel,
    UrgedTooOften,
    WebhookInvalid,
)
from service.notify.models import (
    Delivery,
    DeliveryStatus,
    NotifyCursor,
    UnitContact,
    WebhookDelivery,
    WebhookSubscription,
)
from service.notify.tasks import SendDeliveries
from service.settings import Settings
from service.units.models import Unit, UnitType
from service.units.service import visible_unit_ids

log = logging.getLogger(__name__)

#: The states of an assignment still waiting for its unit.
WAITING = (AssignmentState.ISSUED, AssignmentState.VIEWED)
KIND_TITLES = {
    "responsibility_office": "控辍保学目标责任书（教育办）",
    "responsibility_direct": "控辍保学目标责任书（区直学校）",
    "pledge": "控辍保学承诺书",
    "report": "月报",
    "weekly_report": "周报",
    "term_report": "学生失学辍学信息报告",
}
#: Events a subscription may choose, and the audit actions they come from.
WEBHOOK_EVENTS = (
    "document.issued",
    "document.signed",
    "campaign.overdue",
    "case.opened",
    "case.closed",
    "report.signed",
)
_FROM_AUDIT = {
    "document.issue": "document.issued",
    "document.sign": "document.signed",
    "case.create": "case.opened",
    "case.register": "case.opened",
    "report.file": "report.signed",
}
#: Back-off of a webhook after each failed attempt: retried for about a day, then failed.
WEBHOOK_BACKOFF = tuple(dt.timedelta(minutes=m) for m in (1, 5, 30, 120, 300, 600, 600))
CURSOR = "webhooks"
NOTICES_CURSOR = "notices"
#: Overdue notices and escalations only for deadlines passed this recently: a service that starts
#: sending (or a unit given contacts) does not flood people with last year's late documents.
OVERDUE_WINDOW = dt.timedelta(days=7)


@dataclass
class ContactSpec:
    """A change of a unit's contacts: None keeps a field as it is, "" clears it."""

    email: str | None = None
    mobile: str | None = None
    wecom_webhook: str | None = None
    dingtalk_webhook: str | None = None
    dingtalk_secret: str | None = None
    #: The channels the unit reads, in order; None keeps them, [] means every one it has.
    channels: list[str] | None = None


@dataclass(frozen=True)
class Item:
    """One thing a unit should hear of in this run of the rules."""

    unit: Unit
    key: str
    kind: str
    subject: str
    line: str
    link: str
    campaign_id: int | None
    params: dict[str, str]


@dataclass
class RunReport:
    queued: list[Delivery] = field(default_factory=list)
    sent: list[Delivery] = field(default_factory=list)
    failed: list[Delivery] = field(default_factory=list)
    held: list[Delivery] = field(default_factory=list)
    webhooks_sent: int = 0
    webhooks_failed: int = 0


class Notify:
    def __init__(
        self,
        settings: Settings,
        channels: dict[str, Channel],
        now: Callable[[], dt.datetime],
        post: Callable[..., httpx.Response] | None = None,
        ledgers: Ledgers | None = None,
    ) -> None:
        self.settings = settings
        #: The case steps' deadlines (``ledgers.deadlines``), for the cases' due items.
        self.ledgers = ledgers
        self.channels = channels
        self.now = now
        self.tz = zoneinfo.ZoneInfo(settings.timezone)
        self.base = settings.public_base_url
        self.post = post or httpx.Client(timeout=settings.notify_timeout_seconds, trust_env=False).post

    # --- contacts -----------------------------------------------------------------------------

    def set_contacts(self, session: Session, scope: Scope, unit: Unit, spec: ContactSpec) -> UnitContact:
        """The unit's own accounts or bureau staff set where the unit is reached."""
        if unit.id not in scope.units:
            raise NotFoundForUser()
        if not (scope.acts_for(unit) or scope.has(Role.BUREAU)):
            raise scope.refuse("只有本单位或教体局工作人员可以修改联系方式。")
        unknown = [c for c in spec.channels or [] if c not in CHANNELS]
        if unknown:
            raise UnknownChannel(f"没有这种通知渠道：{'、'.join(unknown)}。可选 {'、'.join(CHANNELS)}。")
        contact = session.scalar(select(UnitContact).where(UnitContact.unit_id == unit.id))
        if contact is None:
            contact = UnitContact(unit=unit, unit_id=unit.id, channels=[])
            session.add(contact)

        def clean(channel: str, value: str | None) -> str | None:
            return normalize_recipient(channel, value) if value and value.strip() else None

        if spec.email is not None:
            contact.email = clean("email", spec.email)
        if spec.mobile is not None:
            contact.mobile = clean("sms", spec.mobile)
        if spec.wecom_webhook is not None:
            contact.wecom_webhook = clean("wecom", spec.wecom_webhook)
        if spec.dingtalk_webhook is not None:
            contact.dingtalk_webhook = clean("dingtalk", spec.dingtalk_webhook)
        if spec.dingtalk_secret is not None:
            contact.dingtalk_secret = spec.dingtalk_secret.strip() or None
        if spec.channels is not None:
            contact.channels = list(dict.fromkeys(spec.channels))
        contact.updated_at = self.now()
        session.flush()
        record(session, scope.actor, "notify.contacts", "unit", unit.id, self.now(), channels=contact.channels)
        return contact

    def contact_of(self, session: Session, unit: Unit) -> UnitContact | None:
        return session.scalar(select(UnitContact).where(UnitContact.unit_id == unit.id))

    def _addresses(self, contact: UnitContact | None) -> list[tuple[str, str, str | None]]:
        """(channel, recipient, secret) for each channel the unit has and wants and the service can use."""
        if contact is None:
            return []
        have = {
            "email": contact.email,
            "wecom": contact.wecom_webhook,
            "dingtalk": contact.dingtalk_webhook,
            "sms": contact.mobile,
        }
        wanted = contact.channels or list(CHANNELS)
        return [
            (c, have[c] or "", contact.dingtalk_secret if c == "dingtalk" else None)
            for c in wanted
            if have.get(c) and c in self.channels
        ]

    # --- queueing -----------------------------------------------------------------------------

    def _queue(
        self,
        session: Session,
        *,
        channel: str,
        recipient: str,
        secret: str | None,
        kind: str,
        subject: str,
        body: str,
        dedupe_key: str,
        unit: Unit | None = None,
        campaign_id: int | None = None,
        params: dict[str, str] | None = None,
        urgent: bool = False,
        status: str = DeliveryStatus.QUEUED,
    ) -> Delivery | None:
        """A new row of the delivery log, or None when one with this key exists (sent or queued)."""
        if session.scalar(select(Delivery.id).where(Delivery.dedupe_key == dedupe_key)) is not None:
            return None
        now = self.now()
        delivery = Delivery(
            message_id=uuid.uuid4().hex,
            channel=channel,
            recipient=recipient,
            recipient_masked=mask_recipient(channel, recipient),
            secret=secret,
            unit_id=unit.id if unit else None,
            campaign_id=campaign_id,
            kind=kind,
            subject=subject,
            body=body,
            params=params or {},
            urgent=urgent,
            status=status,
            created_at=now,
            not_before=now,
            dedupe_key=dedupe_key,
        )
        try:
            with session.begin_nested():  # another process queuing the same message at once wins
                session.add(delivery)
        except IntegrityError:
            return None
        return delivery

    def _queue_item(self, session: Session, item: Item, *, urgent: bool = False) -> list[Delivery]:
        out = []
        for channel, recipient, secret in self._addresses(self.contact_of(session, item.unit)):
            body = f"{item.line}\n办理：{item.link}（需登录）"
            queued = self._queue(
                session,
                channel=channel,
                recipient=recipient,
                secret=secret,
                kind=item.kind,
                subject=item.subject,
                body=body,
                dedupe_key=f"{item.key}:{channel}",
                unit=item.unit,
                campaign_id=item.campaign_id,
                params=item.params,
                urgent=urgent,
            )
            if queued is not None:
                out.append(queued)
        return out

    # --- the rules ----------------------------------------------------------------------------

    def _deadline_text(self, deadline: dt.datetime) -> str:
        return deadline.astimezone(self.tz).strftime("%Y年%m月%d日 %H:%M")

    def _items(self, session: Session, now: dt.datetime) -> list[Item]:
        """Everything due now: a notice of each issued document, reminders before the deadline, and
        for what is overdue a notice to the unit and an escalation to the unit above."""
        items: list[Item] = []
        days = sorted(set(self.settings.notify_remind_days))
        waiting = session.scalars(
            select(Assignment)
            .join(Campaign)
            .where(
                Assignment.state.in_(WAITING),
                Assignment.issued_at.is_not(None),
                Assignment.deadline >= now - OVERDUE_WINDOW,
                Campaign.status == "issued",
            )
            .order_by(Assignment.campaign_id, Assignment.unit_id, Assignment.id)
        )
        for a in waiting:
            campaign, unit = a.campaign, a.unit
            task = f"{campaign.name}（{KIND_TITLES.get(a.kind, a.kind)}{' ' + a.period if a.period else ''}）"
            deadline = self._deadline_text(a.deadline)
            link = f"{self.base}/sign/{a.id}"
            params = {"unit": unit.name, "task": campaign.name, "deadline": deadline}
            key = f"a{a.id}"
            if now < a.deadline:
                items.append(
                    Item(
                        unit,
                        f"{key}:issued",
                        "campaign.issued",
                        f"【待签署】{campaign.name}",
                        f"{unit.name}：教体局已下发「{task}」，请于 {deadline} 前签署。",
                        link,
                        campaign.id,
                        params,
                    )
                )
                left = a.deadline - now
                due = [d for d in days if left <= dt.timedelta(days=d)]
                if due:
                    d = min(due)  # one reminder per window: 3 days before, then 1 day before
                    items.append(
                        Item(
                            unit,
                            f"{key}:remind{d}",
                            "campaign.reminder",
                            f"【签署提醒】{campaign.name}",
                            f"{unit.name}：「{task}」将于 {deadline} 截止（还剩不到{d}天），尚未签署，请尽快办理。",
                            link,
                            campaign.id,
                            params,
                        )
                    )
                continue
            items.append(
                Item(
                    unit,
                    f"{key}:overdue",
                    "campaign.overdue",
                    f"【已逾期】{campaign.name}",
                    f"{unit.name}：「{task}」已于 {deadline} 截止，贵单位尚未签署，请立即办理。",
                    link,
                    campaign.id,
                    params,
                )
            )
            above = unit.parent
            if above is not None:
                # a school overdue: its office (or the bureau for a 区直学校); an office: the bureau
                page = (
                    f"{self.base}/office" if above.type == UnitType.OFFICE else f"{self.base}/campaigns/{campaign.id}"
                )
                items.append(
                    Item(
                        above,
                        f"{key}:escalate{above.id}",
                        "campaign.escalation",
                        f"【逾期督办】{campaign.name}",
                        f"{above.name}：下级单位「{unit.name}」的「{task}」已于 {deadline} 逾期未签署，请督促办理。",
                        page,
                        campaign.id,
                        {"unit": unit.name, "task": campaign.name, "deadline": deadline},
                    )
                )
        return items

    def _case_items(self, session: Session, today: dt.date) -> list[Item]:
        """Each case step due (复学通知书, 联合劝返, the monthly 劝返, weekly 送教上门...) to its school
        when it applies, and once overdue to the school, its office and the bureau. The child's name
        is masked (张*): messages reach group chats and phones."""
        if self.ledgers is None:
            return []
        schools = set(session.scalars(select(Unit.id).where(Unit.type == UnitType.SCHOOL)))
        items: list[Item] = []
        for i in self.ledgers.deadlines.items(session, schools, today):
            if i.case_id is None:
                continue  # term items and reports: campaigns remind of reports
            school = session.get(Unit, i.school_id)
            if school is None:
                continue
            student = str(mask_personal(i.student or "", "student"))
            due = f"{i.due:%Y年%m月%d日}"
            key = f"case{i.case_id}:{i.kind}:{i.period or ''}:{i.due.isoformat()}"
            link = f"{self.base}/cases/{i.case_id}"
            params = {"unit": school.name, "task": i.title, "deadline": due}
            if not i.overdue:
                line = f"{school.name}：学生{student}的个案应于 {due} 前完成「{i.title}」。"
                items.append(Item(school, f"{key}:due", "case.due", f"【个案待办】{i.title}", line, link, None, params))
                continue
            line = f"{school.name}：学生{student}的个案「{i.title}」已于 {due} 逾期，请立即办理。"
            items.append(
                Item(school, f"{key}:overdue", "case.overdue", f"【个案逾期】{i.title}", line, link, None, params)
            )
            above = [u for u in (school.parent, school.parent.parent if school.parent else None) if u is not None]
            for unit in above:
                line = f"{unit.name}：「{school.name}」学生{student}的个案「{i.title}」已于 {due} 逾期，请督促办理。"
                items.append(
                    Item(
                        unit,
                        f"{key}:escalate{unit.id}",
                        "case.escalation",
                        f"【个案督办】{i.title}",
                        line,
                        link,
                        None,
                        params,
                    )
                )
        return items

    def _audit_items(self, session: Session) -> list[Item]:
        """Notices of what people did, read from the audit log after its cursor: an office's
        转交 tells the bureau to receive; an account reset or disabled is told to its unit (its
        head hears of a reset nobody asked for). The cursor starts at the log's end (no notices of
        the past)."""
        cursor, made = _cursor(
            session, NOTICES_CURSOR, lambda: int(session.scalar(select(func.max(AuditEvent.id))) or 0)
        )
        if made:
            return []
        items: list[Item] = []
        top = int(session.scalar(select(func.max(AuditEvent.id))) or 0)
        events = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.id > cursor.audit_event_id,
                AuditEvent.id <= top,
                AuditEvent.action.in_(["campaign.forward", "auth.login_failed", "pki.attention", *ACCOUNT_EVENTS]),
            )
            .order_by(AuditEvent.id)
        )
        streaks: set[int] = set()
        for e in events:
            if e.action in ACCOUNT_EVENTS:
                items.extend(self._account_item(session, e))
                continue
            if e.action == "auth.login_failed":
                items.extend(self._failed_logins_item(session, e, streaks))
                continue
            if e.action == "pki.attention":
                items.extend(self._pki_items(session, e))
                continue
            campaign = session.get(Campaign, e.detail.get("campaign"))
            if campaign is None:
                continue
            bureau, count = campaign.bureau, len(e.detail.get("assignments") or [])
            office = str(e.detail.get("office") or "")
            line = f"{bureau.name}：{office}已转交所辖学校已签署的「{campaign.name}」{count} 份，请确认接收。"
            items.append(
                Item(
                    bureau,
                    f"audit{e.id}:forwarded",
                    "campaign.forwarded",
                    f"【已转交】{campaign.name}",
                    line,
                    f"{self.base}/campaigns/{campaign.id}",
                    campaign.id,
                    {"unit": office, "task": campaign.name, "deadline": self._deadline_text(campaign.deadline)},
                )
            )
        cursor.audit_event_id = max(top, cursor.audit_event_id)
        return items

    def _failed_logins_item(self, session: Session, e: AuditEvent, streaks: set[int]) -> list[Item]:
        """An account failing to sign in again and again is told to its unit once a streak (the
        streak ends at the next good login): someone may be guessing a principal's password."""
        user = session.scalar(select(User).where(User.username == e.object_id))
        if user is None or user.id in streaks or user.failed_logins < self.settings.notify_failed_logins:
            return []
        streaks.add(user.id)
        since = user.last_login_at or user.created_at
        last = (user.last_failed_login_at or e.at).astimezone(self.tz).strftime("%Y年%-m月%-d日 %H:%M")
        client = user.last_failed_login_client or "未知地址"
        line = (
            f"{user.unit.name}：账号「{user.display_name}」（{user.username}）自上次登录以来已登录失败 "
            f"{user.failed_logins} 次，最近一次在 {last}，来自 {client}。如果不是本人输错，可能有人在猜测密码："
            "请本人尽快修改密码，必要时联系教体局的系统管理员。"
        )
        return [
            Item(
                user.unit,
                f"failed{user.id}:{since.isoformat()}",
                "account.failed_logins",
                "【登录失败过多】",
                line,
                f"{self.base}/login",
                None,
                {"unit": user.unit.name, "task": "账号登录失败过多", "deadline": last},
            )
        ]

    def _pki_items(self, session: Session, e: AuditEvent) -> list[Item]:
        """What the PKI's daily upkeep could not do alone (a rollover with the root key offline, a
        root CRL to publish by hand) is told to the bureau, once for each distinct matter."""
        need = str(e.detail.get("need") or "")
        if not need:
            return []
        digest = hashlib.sha256(need.encode()).hexdigest()[:16]
        bureaus = session.scalars(select(Unit).where(Unit.type == UnitType.BUREAU, Unit.parent_id.is_(None)))
        return [
            Item(
                bureau,
                f"pki:{digest}",
                "pki.attention",
                "【证书需处理】",
                f"{bureau.name}：电子签章证书的例行维护需要人工处理：{need}",
                f"{self.base}/",
                None,
                {"unit": bureau.name, "task": "电子签章证书维护", "deadline": need[:40]},
            )
            for bureau in bureaus
        ]

    def _account_item(self, session: Session, e: AuditEvent) -> list[Item]:
        user = session.get(User, int(e.object_id)) if e.object_id.isdigit() else None
        if user is None:
            return []
        when = e.at.astimezone(self.tz).strftime("%Y年%-m月%-d日 %H:%M")
        who = f"「{user.display_name}」（{user.username}）"
        subject, what = ACCOUNT_EVENTS[e.action]
        if e.action in ("user.activate", "auth.totp_enable"):
            what_done = "用激活链接设置了密码和动态口令" if e.action == "user.activate" else "开通了动态口令"
            line = (
                f"{user.unit.name}：账号{who}于 {when} {what_done}。如果不是本人操作（例如激活链接被别人先打开），"
                "请立即联系教体局停用并重置该账号。"
            )
        elif e.action == "user.password_reset":
            line = (
                f"{user.unit.name}：账号{who}于 {when} 被 {e.actor} 重置，密码和动态口令已清除，须由本人用激活链接重新设置。"
                "如果不是本单位申请的重置，请立即联系教体局。"
            )
        else:
            reason = e.detail.get("reason") or ("长期未登录" if e.action == "user.disabled_dormant" else "")
            line = (
                f"{user.unit.name}：账号{who}于 {when} 被停用"
                + (f"（{reason}）" if reason else "")
                + "。如有疑问请联系教体局。"
            )
        return [
            Item(
                user.unit,
                f"audit{e.id}:{e.action}",
                what,
                subject,
                line,
                f"{self.base}/login",
                None,
                {"unit": user.unit.name, "task": subject.strip("【】"), "deadline": when},
            )
        ]

    def run_rules(self, session: Session, *, cases: bool = True) -> list[Delivery]:
        """Queue what the rules say is due now (each message once, ever): campaigns' and, with
        ``cases``, the case steps'. A unit with many items at once gets one digest; the items it
        replaces are kept in the log as 已并入汇总."""
        now = self.now()
        today = now.astimezone(self.tz).date()
        by_unit: dict[int, list[Item]] = defaultdict(list)
        found = self._items(session, now) + self._audit_items(session)
        found += self._case_items(session, today) if cases else []
        for item in found:
            by_unit[item.unit.id].append(item)
        queued: list[Delivery] = []
        for items in by_unit.values():
            fresh = [i for i in items if not self._known(session, i)]
            # a document issued close to its deadline: the notice says the deadline, no reminder too
            issued = {i.key.split(":", 1)[0] for i in fresh if i.kind == "campaign.issued"}
            covered = [i for i in fresh if i.kind == "campaign.reminder" and i.key.split(":", 1)[0] in issued]
            self._mark(session, covered, "skipped")
            fresh = [i for i in fresh if i not in covered]
            if len(fresh) >= self.settings.notify_digest_threshold:
                queued += self._digest(session, fresh, today)
            else:
                for item in fresh:
                    queued += self._queue_item(session, item)
        self._overdue_events(session, now)
        return queued

    def _known(self, session: Session, item: Item) -> bool:
        return (
            session.scalar(select(Delivery.id).where(Delivery.dedupe_key.startswith(item.key + ":")).limit(1))
            is not None
        )

    def _digest(self, session: Session, items: list[Item], today: dt.date) -> list[Delivery]:
        unit = items[0].unit
        lines = "\n".join(f"{n}. {i.line.split('：', 1)[-1]}\n   {i.link}" for n, i in enumerate(items, 1))
        digest = Item(
            unit,
            f"digest:u{unit.id}:{today.isoformat()}:{items[0].key}",
            "digest",
            f"【今日待办汇总】{unit.name} 共 {len(items)} 项",
            f"{unit.name}：以下 {len(items)} 项需要办理：\n{lines}",
            f"{self.base}/sign",
            None,
            {"unit": unit.name, "task": f"{len(items)}项待办", "deadline": today.isoformat()},
        )
        sent = self._queue_item(session, digest)
        self._mark(session, items, "digested")  # so no later run sends them one by one
        return sent

    def _mark(self, session: Session, items: list[Item], status: str) -> None:
        """Items kept in the log as handled without a message of their own (``digested``: in a
        digest; ``skipped``: said by another message of the same run)."""
        for item in items:
            self._queue(
                session,
                channel="digest",
                recipient=item.unit.name,
                secret=None,
                kind=item.kind,
                subject=item.subject,
                body=item.line,
                dedupe_key=f"{item.key}:{status}",
                unit=item.unit,
                campaign_id=item.campaign_id,
                status=status,
            )

    # --- 催办 ---------------------------------------------------------------------------------

    def urge(
        self,
        session: Session,
        scope: Scope,
        campaign: Campaign,
        unit_ids: Sequence[int],
        jobs: JobRunner | None = None,
    ) -> list[Delivery]:
        """Bureau staff remind the chosen late units now (at most once per unit in
        ``notify_urge_minutes``), recorded in the audit log; with ``jobs``, a job sends them once
        the caller commits (otherwise the next scheduled run does)."""
        bureau = scope.bureau_staff()
        if campaign.bureau_id != bureau.id:
            raise NotFoundForUser()
        unit_ids = [u for u in unit_ids if valid_id(u)]
        if not unit_ids:
            raise NothingToUrge("请选择要催办的单位。")
        now = self.now()
        waiting = [
            a
            for a in session.scalars(
                select(Assignment).where(
                    Assignment.campaign_id == campaign.id,
                    Assignment.unit_id.in_(list(unit_ids)),
                    Assignment.state.in_(WAITING),
                )
            )
        ]
        if not waiting:
            raise NothingToUrge()
        since = now - dt.timedelta(minutes=self.settings.notify_urge_minutes)
        recent = set(
            session.scalars(
                select(Delivery.unit_id).where(
                    Delivery.campaign_id == campaign.id,
                    Delivery.kind == "campaign.urge",
                    Delivery.created_at >= since,
                    Delivery.unit_id.in_([a.unit_id for a in waiting]),
                )
            )
        )
        if recent:
            names = sorted({a.unit.name for a in waiting if a.unit_id in recent})
            raise UrgedTooOften(
                f"{'、'.join(names)} 在 {self.settings.notify_urge_minutes} 分钟内已催办过，请稍后再催。",
                details={"unit_ids": sorted(recent)},
            )
        out: list[Delivery] = []
        stamp = now.strftime("%Y%m%d%H%M%S")
        for a in waiting:
            deadline = self._deadline_text(a.deadline)
            late = "已逾期" if now >= a.deadline else f"将于 {deadline} 截止"
            item = Item(
                a.unit,
                f"a{a.id}:urge{stamp}",
                "campaign.urge",
                f"【催办】{campaign.name}",
                f"{a.unit.name}：{bureau.name}催办「{campaign.name}」，该文书{late}，请尽快签署。",
                f"{self.base}/sign/{a.id}",
                campaign.id,
                {"unit": a.unit.name, "task": campaign.name, "deadline": deadline},
            )
            queued = self._queue_item(session, item)
            if not queued:  # no channel: still recorded, so the page says nobody could be reached
                self._queue(
                    session,
                    channel="none",
                    recipient=a.unit.name,
                    secret=None,
                    kind="campaign.urge",
                    subject=item.subject,
                    body=item.line,
                    dedupe_key=f"{item.key}:none",
                    unit=a.unit,
                    campaign_id=campaign.id,
                    status=DeliveryStatus.FAILED,
                )
            out += queued
        record(
            session,
            scope.actor,
            "campaign.urge",
            "campaign",
            campaign.id,
            now,
            units=sorted({a.unit_id for a in waiting}),
            messages=len(out),
        )
        if jobs is not None and out:
            jobs.enqueue(session, SendDeliveries(delivery_ids=[d.id for d in out]), unit_id=bureau.id)
        return out

    # --- sending ------------------------------------------------------------------------------

    def _quiet(self, at: dt.datetime) -> dt.datetime | None:
        """The end of the quiet hours ``at`` falls in (Beijing time), or None."""
        start, end = self.settings.notify_quiet_start, self.settings.notify_quiet_end
        local = at.astimezone(self.tz)
        hour = local.hour
        inside = (start <= hour or hour < end) if start > end else (start <= hour < end)
        if not inside:
            return None
        wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
        if wake <= local:
            wake += dt.timedelta(days=1)
        return wake.astimezone(dt.UTC)

    def _robot_busy(self, session: Session, delivery: Delivery, now: dt.datetime) -> bool:
        count = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.channel == delivery.channel,
                Delivery.recipient_bidx == delivery.recipient_bidx,
                Delivery.sent_at.is_not(None),
                Delivery.sent_at > now - dt.timedelta(minutes=1),
            )
        )
        return int(count or 0) >= self.settings.notify_robot_per_minute

    def send_due(self, session: Session, commit: Callable[[], None], *, only: Iterable[int] | None = None) -> RunReport:
        """Send every queued message whose time has come; each claimed and committed before it is
        handed to its provider, and its outcome committed after."""
        report = RunReport()
        now = self.now()
        query = select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED, Delivery.not_before <= now)
        if only is not None:
            query = query.where(Delivery.id.in_(list(only)))
        for delivery_id in list(session.scalars(query.order_by(Delivery.id))):
            delivery = session.get(Delivery, delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.QUEUED:
                continue
            if delivery.channel in LOUD and not delivery.urgent and (wake := self._quiet(now)) is not None:
                delivery.not_before = wake
                report.held.append(delivery)
                commit()
                continue
            if delivery.channel in ROBOTS and self._robot_busy(session, delivery, now):
                delivery.not_before = now + dt.timedelta(minutes=1)
                report.held.append(delivery)
                commit()
                continue
            self._send_one(session, delivery, commit, report)
        return report

    def _send_one(self, session: Session, delivery: Delivery, commit: Callable[[], None], report: RunReport) -> None:
        channel = self.channels.get(delivery.channel)
        if not _claim(session, Delivery, delivery.id, commit):
            return  # another process took it first
        session.refresh(delivery)
        try:
            if channel is None:
                raise ChannelNotConfigured(f"{CHANNEL_TITLES.get(delivery.channel, delivery.channel)}渠道未配置。")
            answer = channel.send(
                Outgoing(
                    recipient=delivery.recipient,
                    subject=delivery.subject,
                    body=delivery.body,
                    message_id=delivery.message_id,
                    secret=delivery.secret,
                    params=dict(delivery.params or {}),
                )
            )
        except (DeliveryFailed, ChannelNotConfigured) as exc:
            delivery.answer = _scrub(exc.message, delivery)
            if delivery.attempts >= self.settings.notify_max_attempts:
                delivery.status = DeliveryStatus.FAILED
                report.failed.append(delivery)
            else:
                delivery.status = DeliveryStatus.QUEUED
                delivery.not_before = self.now() + dt.timedelta(minutes=2 ** (delivery.attempts - 1))
                report.held.append(delivery)
            log.warning(
                "notice %s via %s to %s not sent (attempt %s): %s",
                delivery.message_id,
                delivery.channel,
                delivery.recipient_masked,
                delivery.attempts,
                delivery.answer,
            )
        else:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = self.now()
            delivery.answer = _scrub(answer, delivery)
            report.sent.append(delivery)
            log.info("notice %s sent via %s to %s", delivery.message_id, delivery.channel, delivery.recipient_masked)
        commit()

    def resend(self, session: Session, scope: Scope, delivery: Delivery, jobs: JobRunner | None = None) -> Delivery:
        """Bureau staff send a failed (or 状态不明) message again, now."""
        bureau = scope.bureau_staff()
        if delivery.unit_id is None or delivery.unit_id not in visible_unit_ids(session, bureau):
            raise NotFoundForUser()
        if delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.SENDING) or delivery.channel not in CHANNELS:
            raise RecipientInvalid("只有发送失败或状态不明的消息可以重发。")
        delivery.status = DeliveryStatus.QUEUED
        delivery.not_before = self.now()
        delivery.attempts = 0
        session.flush()
        record(session, scope.actor, "notify.resend", "delivery", delivery.id, self.now(), channel=delivery.channel)
        if jobs is not None:
            jobs.enqueue(session, SendDeliveries(delivery_ids=[delivery.id]), unit_id=bureau.id)
        return delivery

    def test_message(self, session: Session, channel: str, recipient: str, secret: str | None = None) -> Delivery:
        """A test message, queued as urgent (a person asked for it now, quiet hours or not)."""
        if channel not in CHANNELS:
            raise UnknownChannel()
        if channel not in self.channels:
            raise ChannelNotConfigured(f"{CHANNEL_TITLES[channel]}渠道尚未配置，请先填写相应的 DOCSIGN_ 设置。")
        recipient = normalize_recipient(channel, recipient)
        now = self.now()
        delivery = self._queue(
            session,
            channel=channel,
            recipient=recipient,
            secret=secret,
            kind="test",
            subject="【测试】控辍保学文书签署平台通知",
            body=f"这是一条测试消息，发送于 {now.astimezone(self.tz):%Y-%m-%d %H:%M}。\n平台地址：{self.base}/",
            dedupe_key=f"test:{uuid.uuid4().hex}",
            params={"unit": "测试", "task": "测试消息", "deadline": f"{now.astimezone(self.tz):%Y-%m-%d}"},
            urgent=True,
        )
        assert delivery is not None
        return delivery

    # --- webhooks -----------------------------------------------------------------------------

    def subscribe(self, session: Session, scope: Scope, url: str, events: Sequence[str]) -> WebhookSubscription:
        """A bureau subscribes another system; the secret is in the returned row (shown once)."""
        bureau = scope.bureau_staff()
        url = url.strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a port out of range raises here
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 500:
            raise WebhookInvalid("订阅地址应为 http(s) 开头的完整地址，例如 https://oa.example.gov.cn/hooks/docsign。")
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if not events or unknown:
            raise WebhookInvalid(f"事件应从 {'、'.join(WEBHOOK_EVENTS)} 中选择。")
        sub = WebhookSubscription(
            bureau_id=bureau.id,
            url=url,
            secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            events=list(dict.fromkeys(events)),
            created_at=self.now(),
        )
        session.add(sub)
        session.flush()
        record(session, scope.actor, "webhook.subscribe", "webhook", sub.id, self.now(), url=url, events=sub.events)
        return sub

    def _webhook(
        self, session: Session, sub: WebhookSubscription, key: str, event: str, payload: dict[str, Any]
    ) -> None:
        exists = session.scalar(
            select(WebhookDelivery.id).where(
                WebhookDelivery.subscription_id == sub.id, WebhookDelivery.event_key == key
            )
        )
        if exists is None:
            session.add(
                WebhookDelivery(
                    message_id="msg_" + uuid.uuid4().hex,
                    subscription_id=sub.id,
                    event_key=key,
                    event=event,
                    payload=payload,
                    created_at=self.now(),
                    not_before=self.now(),
                )
            )

    def _subscribers(
        self, session: Session, event: str, unit_id: int | None, at: dt.datetime
    ) -> list[WebhookSubscription]:
        """The active subscriptions to ``event`` that see ``unit_id`` and existed at ``at``."""
        subs = [
            s
            for s in session.scalars(select(WebhookSubscription).where(WebhookSubscription.active))
            if event in s.events and s.created_at <= at
        ]
        out = []
        for sub in subs:
            bureau = session.get(Unit, sub.bureau_id)
            if bureau is not None and (unit_id is None or unit_id in visible_unit_ids(session, bureau)):
                out.append(sub)
        return out

    def collect_events(self, session: Session) -> int:
        """Webhook deliveries for the audit events since the cursor; no personal data (ids, units)."""
        cursor, _ = _cursor(session, CURSOR, lambda: 0)
        found = 0
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.id > cursor.audit_event_id).order_by(AuditEvent.id)
        ):
            cursor.audit_event_id = e.id
            event = _FROM_AUDIT.get(e.action)
            if e.action == "case.status" and e.detail.get("to") not in {s.value for s in OPEN_STATUSES}:
                event = "case.closed"
            if event is None:
                continue
            unit = session.get(Unit, e.unit_id) if e.unit_id is not None else None
            data: dict[str, Any] = {"object_type": e.object_type, "object_id": e.object_id}
            if unit is not None:
                data["unit"] = {"id": unit.id, "code": unit.code, "name": unit.name}
            for key in ("assignment", "campaign", "period", "signed_at", "to"):
                if key in e.detail and isinstance(e.detail[key], (str, int)):
                    data[key] = e.detail[key]
            payload = {"type": event, "timestamp": e.at.isoformat(), "data": data}
            for sub in self._subscribers(session, event, e.unit_id, e.at):
                self._webhook(session, sub, f"audit:{e.id}", event, payload)
                found += 1
        session.flush()
        return found

    def _overdue_events(self, session: Session, now: dt.datetime) -> None:
        late = session.scalars(
            select(Assignment)
            .join(Campaign)
            .where(
                Assignment.state.in_(WAITING),
                Assignment.deadline <= now,
                Assignment.deadline >= now - OVERDUE_WINDOW,
                Campaign.status == "issued",
            )
        )
        for a in late:
            payload = {
                "type": "campaign.overdue",
                "timestamp": a.deadline.isoformat(),
                "data": {
                    "campaign": a.campaign_id,
                    "assignment": a.id,
                    "unit": {"id": a.unit.id, "code": a.unit.code, "name": a.unit.name},
                    "deadline": a.deadline.isoformat(),
                },
            }
            for sub in self._subscribers(session, "campaign.overdue", a.unit_id, now):
                self._webhook(session, sub, f"overdue:{a.id}", "campaign.overdue", payload)
        session.flush()

    def test_webhook(self, session: Session, scope: Scope, sub: WebhookSubscription) -> WebhookDelivery:
        """A ``webhook.test`` event for one subscription, queued now (the page's 测试 button)."""
        bureau = scope.bureau_staff()
        if sub.bureau_id != bureau.id:
            raise NotFoundForUser()
        now = self.now()
        wd = WebhookDelivery(
            message_id="msg_" + uuid.uuid4().hex,
            subscription_id=sub.id,
            event_key=f"test:{uuid.uuid4().hex}",
            event="webhook.test",
            payload={"type": "webhook.test", "timestamp": now.isoformat(), "data": {"bureau": bureau.code}},
            created_at=now,
            not_before=now,
        )
        session.add(wd)
        session.flush()
        return wd

    def send_webhooks(
        self,
        session: Session,
        commit: Callable[[], None],
        report: RunReport | None = None,
        *,
        only: Iterable[int] | None = None,
    ) -> RunReport:
        """POST every due webhook, signed per Standard Webhooks; a failure is retried with back-off
        for about a day (``WEBHOOK_BACKOFF``), then marked failed."""
        report = report or RunReport()
        now = self.now()
        query = select(WebhookDelivery.id).where(
            WebhookDelivery.status == DeliveryStatus.QUEUED, WebhookDelivery.not_before <= now
        )
        if only is not None:
            query = query.where(WebhookDelivery.id.in_(list(only)))
        due = list(session.scalars(query.order_by(WebhookDelivery.id)))
        for wid in due:
            wd = session.get(WebhookDelivery, wid)
            if wd is None or wd.status != DeliveryStatus.QUEUED:
                continue
            sub = session.get(WebhookSubscription, wd.subscription_id)
            assert sub is not None
            if not _claim(session, WebhookDelivery, wd.id, commit):
                continue  # another process took it first
            session.refresh(wd)
            body = json.dumps(wd.payload, ensure_ascii=False, separators=(",", ":")).encode()
            stamp = wall_now()  # receivers check it against their own clock
            headers = {
                "content-type": "application/json",
                "webhook-id": wd.message_id,
                "webhook-timestamp": str(int(stamp.timestamp())),
                "webhook-signature": Webhook(sub.secret).sign(wd.message_id, stamp, body),
            }
            try:
                response = self.post(sub.url, content=body, headers=headers)
                ok, answer = 200 <= response.status_code < 300, f"HTTP {response.status_code} {response.text[:300]}"
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                ok, answer = False, f"无法连接：{exc}"
            wd.answer = answer[:500]
            if ok:
                wd.status, wd.sent_at = DeliveryStatus.SENT, self.now()
                report.webhooks_sent += 1
            elif wd.attempts > len(WEBHOOK_BACKOFF) or wd.event == "webhook.test":  # a test is not retried
                wd.status = DeliveryStatus.FAILED
                report.webhooks_failed += 1
            else:
                wd.status = DeliveryStatus.QUEUED
                wd.not_before = self.now() + WEBHOOK_BACKOFF[wd.attempts - 1]
                report.webhooks_failed += 1
            commit()
        return report

    def replay(self, session: Session, scope: Scope, wd: WebhookDelivery) -> WebhookDelivery:
        """Bureau staff send one delivered (or failed) event again, as it was (same id, new signature)."""
        bureau = scope.bureau_staff()
        sub = session.get(WebhookSubscription, wd.subscription_id)
        if sub is None or sub.bureau_id != bureau.id:
            raise NotFoundForUser()
        wd.status = DeliveryStatus.QUEUED
        wd.not_before = self.now()
        session.flush()
        record(session, scope.actor, "webhook.replay", "webhook_delivery", wd.id, self.now())
        return wd

    # --- one run ------------------------------------------------------------------------------

    def forget_addresses(self, session: Session) -> int:
        """Addresses of messages older than ``notify_log_days`` erased (personal data kept no longer
        than the log needs it); a message still queued keeps its own."""
        before = self.now() - dt.timedelta(days=self.settings.notify_log_days)
        old = session.scalars(
            select(Delivery).where(
                Delivery.created_at < before,
                Delivery.recipient_bidx.is_not(None),
                Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.FAILED, "digested"]),
            )
        ).all()
        for delivery in old:
            delivery.recipient = ""
            delivery.secret = None
        session.flush()
        return len(old)

    def run(self, session: Session, commit: Callable[[], None], *, cases: bool = True) -> RunReport:
        """What the schedule does: the rules, the events, then everything due is sent. The rules
        read much and then write (the cursor, the log): on SQLite they hold the write lock from the
        start, so another run or a request writing meanwhile makes them wait, not fail."""
        commit()  # whatever the job read before ends here
        write_first(session)
        self.forget_addresses(session)
        queued = self.run_rules(session, cases=cases)
        self.collect_events(session)
        commit()
        report = self.send_due(session, commit)
        report.queued = queued
        return self.send_webhooks(session, commit, report)


def _scrub(answer: str, delivery: Delivery) -> str:
    """A provider's answer as the log keeps it: the recipient (a robot's address holds its key)
    replaced by its masked form, mobiles and ID numbers masked."""
    text = answer.replace(delivery.recipient, delivery.recipient_masked) if delivery.recipient else answer
    return str(mask_personal(text))[:500]


def _claim(
    session: Session, model: type[Delivery] | type[WebhookDelivery], row_id: int, commit: Callable[[], None]
) -> bool:
    """Take a queued row for sending, atomically across processes (one UPDATE on its status), and
    commit: a process killed from here on never sends it again by itself."""
    claimed = session.execute(
        update(model)
        .where(model.id == row_id, model.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SENDING, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    commit()
    return bool(getattr(claimed, "rowcount", 0) == 1)


#: Account events a unit is told of: (subject, kind of message).
ACCOUNT_EVENTS = {
    "user.password_reset": ("【账号已重置】", "account.reset"),
    "user.disabled": ("【账号已停用】", "account.disabled"),
    "user.disabled_dormant": ("【账号已停用】", "account.disabled"),
    # the holder's own steps, told to the unit: a link opened by someone else first shows here
    "user.activate": ("【账号已激活】", "account.activated"),
    "auth.totp_enable": ("【动态口令已开通】", "account.second_factor"),
}


def _cursor(session: Session, name: str, start: Callable[[], int]) -> tuple[NotifyCursor, bool]:
    """The cursor ``name``, locked for this transaction (two runs at once read the log once); made
    at ``start()`` when there is none yet, whether made here (True) or by a run at the same moment."""
    query = select(NotifyCursor).where(NotifyCursor.name == name).with_for_update()
    row = session.scalar(query)
    if row is not None:
        return row, False
    try:
        with session.begin_nested():
            row = NotifyCursor(name=name, audit_event_id=start())
            session.add(row)
        return row, True
    except IntegrityError:  # another run made it first: use theirs
        made = session.scalar(query)
        assert made is not None
        return made, False
