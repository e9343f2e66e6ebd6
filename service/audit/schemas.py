"""How who acted travels where an object cannot (in a background job's stored parameters), and the
audit and access logs as the audit administrator reads them."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.audit.models import AccessEntry, AuditEvent
from service.audit.service import SYSTEM, Actor
from service.audit.titles import action_title, subject_title


class ActorRef(BaseModel):
    """The :class:`Actor` who started a job, kept in its parameters for the audit entries it writes."""

    model_config = ConfigDict(frozen=True)

    user_id: int | None = None
    label: str = SYSTEM.label
    unit_id: int | None = None
    client: str | None = None

    @classmethod
    def of(cls, actor: Actor) -> ActorRef:
        return cls(user_id=actor.user_id, label=actor.label, unit_id=actor.unit_id, client=actor.client)

    def actor(self) -> Actor:
        return Actor(self.user_id, self.label or SYSTEM.label, self.unit_id, self.client)


class AuditEventOut(BaseModel):
    """One event of the audit log, as the audit administrator reads it."""

    id: int
    at: dt.datetime
    actor: str
    actor_user_id: int | None
    unit_id: int | None
    action: str
    action_title: str
    object_type: str
    object_id: str
    client: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        return cls(
            id=e.id,
            at=e.at,
            actor=e.actor,
            actor_user_id=e.actor_user_id,
            unit_id=e.unit_id,
            action=e.action,
            action_title=action_title(e.action),
            object_type=e.object_type,
            object_id=e.object_id,
            client=e.client,
            detail=e.detail,
        )


class AccessEntryOut(BaseModel):
    """One read of children's data in the access log."""

    id: int
    at: dt.datetime
    user_id: int | None
    username: str
    role: str | None
    unit_id: int | None
    client: str | None
    via: str
    subject: str
    subject_title: str
    subject_id: str
    filter: dict[str, Any]
    rows: int | None
    purpose: str | None
    full: bool | None

    @classmethod
    def of(cls, a: AccessEntry) -> AccessEntryOut:
        return cls(
            id=a.id,
            at=a.at,
            user_id=a.user_id,
            username=a.username,
            role=a.role,
            unit_id=a.unit_id,
            client=a.client,
            via=a.via,
            subject=a.subject,
            subject_title=subject_title(a.subject),
            subject_id=a.subject_id,
            filter=a.filter,
            rows=a.rows,
            purpose=a.purpose,
            full=a.full,
        )


class AuditEventsPage(BaseModel):
    items: list[AuditEventOut]
    total: int
    page: int
    pages: int


class AccessEntriesPage(BaseModel):
    items: list[AccessEntryOut]
    total: int
    page: int
    pages: int


def local_time(at: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    """A logged time as the audit page and its export show it: Beijing time (the setting's zone)."""
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def event_view(e: AuditEvent, tz: zoneinfo.ZoneInfo, unit_names: Mapping[int, str]) -> dict[str, Any]:
    """One row of the audit page's table of events (times in Beijing time)."""
    return {
        "id": e.id,
        "time": local_time(e.at, tz),
        "who": e.actor,
        "unit": unit_names.get(e.unit_id or 0, "") if e.unit_id else "",
        "action": e.action,
        "action_title": action_title(e.action),
        "target": f"{e.object_type} {e.object_id}",
        "client": e.client or "",
        "reason": str(e.detail.get("reason", "")) if e.action == "access.denied" else "",
        "refused": e.action == "access.denied" or e.action.endswith(("_failed", "_refused", "_replay")),
    }


def access_view(
    a: AccessEntry, tz: zoneinfo.ZoneInfo, unit_names: Mapping[int, str], role_titles: Mapping[str, str]
) -> dict[str, Any]:
    """One row of the audit page's table of reads of children's data."""
    return {
        "id": a.id,
        "time": local_time(a.at, tz),
        "who": a.username,
        "role": role_titles.get(a.role or "", a.role or ""),
        "unit": unit_names.get(a.unit_id or 0, "") if a.unit_id else "",
        "subject": subject_title(a.subject),
        "subject_id": a.subject_id,
        "via": a.via,
        "rows": a.rows,
        "purpose": a.purpose or "",
        "full": a.full,
        "client": a.client or "",
    }
