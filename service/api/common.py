"""Helpers the routers share: uploads with size limits, data URLs, output shapes."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zoneinfo

from fastapi import UploadFile

from service.accounts.models import ROLE_TITLES, Role, User
from service.accounts.schemas import UserOut
from service.archive.models import STATUS_TITLES, Document, DocumentStatus
from service.campaigns.errors import UploadInvalid, UploadTooLarge
from service.campaigns.models import STATE_TITLES, UNIT_TYPE_TITLES, Assignment, AssignmentState, Unit, UnitType
from service.campaigns.schemas import AssignmentOut, UnitOut
from service.campaigns.service import KIND_TITLES


async def read_upload(file: UploadFile, limit: int, what: str) -> bytes:
    """The whole upload, refusing it as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        chunk = await file.read(1024 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"{what}过大：最大 {limit // (1024 * 1024) or 1} MB。")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise UploadInvalid(f"{what}是空的。")
    return data


def decode_image(data_url: str, limit: int, what: str) -> bytes:
    """A PNG/JPEG given as a data URL (what a signature pad produces) or bare base64."""
    text = data_url.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header or not header.startswith(("data:image/png", "data:image/jpeg")):
            raise UploadInvalid(f"{what}应为 PNG 或 JPEG 图片。")
    if len(text) > limit * 4 // 3 + 8:
        raise UploadTooLarge(f"{what}过大：最大 {limit // 1024} KB。")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadInvalid(f"{what}的编码无效（应为 base64）。") from None
    if not data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        raise UploadInvalid(f"{what}应为 PNG 或 JPEG 图片。")
    return data


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        role_title=ROLE_TITLES.get(Role(user.role), user.role),
        unit_id=user.unit_id,
        unit_name=user.unit.name,
        unit_type=user.unit.type,
    )


def unit_out(unit: Unit) -> UnitOut:
    return UnitOut(
        id=unit.id,
        code=unit.code,
        name=unit.name,
        type=unit.type,
        type_title="区直学校" if unit.is_direct_school else UNIT_TYPE_TITLES[UnitType(unit.type)],
        parent_id=unit.parent_id,
        head_name=unit.head_name,
        phone=unit.phone,
        is_direct_school=unit.is_direct_school,
    )


def assignment_out(a: Assignment, doc: Document | None, now: dt.datetime) -> AssignmentOut:
    done = a.state in (AssignmentState.SIGNED, AssignmentState.FORWARDED, AssignmentState.RECEIVED)
    return AssignmentOut(
        id=a.id,
        campaign_id=a.campaign_id,
        campaign_name=a.campaign.name,
        unit_id=a.unit_id,
        unit_name=a.unit.name,
        kind=a.kind,
        kind_title=KIND_TITLES.get(a.kind, a.kind),
        period=a.period,
        deadline=a.deadline,
        state=a.state,
        state_title=STATE_TITLES[AssignmentState(a.state)],
        document_id=a.document_id,
        document_status=doc.status if doc else None,
        issued_at=a.issued_at,
        viewed_at=a.viewed_at,
        signed_at=a.signed_at,
        forwarded_at=a.forwarded_at,
        received_at=a.received_at,
        late=a.late,
        overdue=not done and now > a.deadline,
    )


def status_title(doc: Document) -> str:
    return STATUS_TITLES[DocumentStatus(doc.status)]


def local_time(t: dt.datetime, tz: str) -> str:
    return t.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y年%-m月%-d日 %H:%M")
