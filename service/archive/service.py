"""Records of issued documents: versions, public information, revocation, lookups, export bundles.

The signed bytes live in the archive store (content-addressed, written first); the rows here say
what they are. A verification code is looked up by its SHA-256 only.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.archive.models import Document, DocumentStatus, DocumentVersion
from service.archive.store import ArchiveStore
from service.campaigns.models import Unit
from service.documents.codes import normalize_code
from service.documents.registry import get_kind

if TYPE_CHECKING:
    from service.documents.pipeline import IssuedDocument


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小雨 -> 张*雨, 欧阳晓娜 -> 欧**娜: enough for a guardian to recognise, no more."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def public_info(kind_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What the public page shows of a document: the kind, who issued it and when, the fields a
    guardian needs (school, report-by date) and the person's name masked. No ID numbers."""
    kind = get_kind(kind_key)
    out: dict[str, Any] = {
        "kind": kind.key,
        "title": kind.title,
        "issuer": str(fields.get(kind.issuer_field, "")),
        "date": str(fields.get(kind.date_field, "")),
    }
    for name in kind.public_fields:
        if fields.get(name) is not None:
            out[name] = fields[name]
    if kind.subject_field and fields.get(kind.subject_field):
        out["subject"] = mask_name(str(fields[kind.subject_field]))
    if fields.get("guardian_name"):
        out["guardian"] = mask_name(str(fields["guardian_name"]))
    return out


def record_issued(
    session: Session,
    issued: IssuedDocument,
    *,
    issuer: Unit | None,
    at: dt.datetime,
    subject: Unit | None = None,
    case_id: int | None = None,
    flush: bool = True,
) -> Document:
    """The record of a newly issued document and its first version. With ``flush=False`` the rows
    are written at the session's next flush (a batch writes them many at a time); the document
    has no id until then."""
    kind, fields = issued.kind, issued.fields
    doc = Document(
        kind=kind,
        code_hash=code_hash(issued.code),
        issuer_unit_id=issuer.id if issuer else None,
        subject_unit_id=subject.id if subject else None,
        fields=json.loads(json.dumps(dict(fields), ensure_ascii=False, default=str)),
        public=public_info(kind, fields),
        status=DocumentStatus.VALID,
        issued_at=at,
        current_sha256=issued.sha256,
        pages=issued.pages,
        case_id=case_id,
    )
    session.add(doc)
    session.add(
        DocumentVersion(
            document=doc,
            number=1,
            sha256=issued.sha256,
            size=len(issued.pdf),
            created_at=at,
            event="issued",
            signer_unit_id=issuer.id if issuer else None,
        )
    )
    if flush:
        session.flush()
    return doc


def record_signed(
    session: Session, doc: Document, *, sha256: str, size: int, signer: Unit, at: dt.datetime
) -> DocumentVersion:
    number = (
        session.scalar(select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == doc.id)) or 0
    ) + 1
    version = DocumentVersion(
        document_id=doc.id,
        number=number,
        sha256=sha256,
        size=size,
        created_at=at,
        event="signed",
        signer_unit_id=signer.id,
    )
    session.add(version)
    doc.current_sha256 = sha256
    session.flush()
    return version


def versions(session: Session, doc: Document) -> list[DocumentVersion]:
    return list(
        session.scalars(
            select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.number)
        )
    )


def revoke(doc: Document, reason: str, at: dt.datetime) -> None:
    doc.status = DocumentStatus.REVOKED
    doc.revoked_at = at
    doc.revoke_reason = reason


def find_by_code(session: Session, text: str) -> Document | None:
    code = normalize_code(text)
    # Hash even a malformed code, so that every lookup costs the same.
    digest = code_hash(code if code is not None else "invalid:" + text[:64])
    doc = session.scalar(select(Document).where(Document.code_hash == digest))
    return doc if code is not None else None


def find_version_by_hash(session: Session, sha256: str) -> DocumentVersion | None:
    return session.scalar(
        select(DocumentVersion).where(DocumentVersion.sha256 == sha256).order_by(DocumentVersion.id.desc()).limit(1)
    )


@dataclass(frozen=True)
class BundleEntry:
    path: str
    sha256: str
    meta: dict[str, Any]


def write_bundle(out: IO[bytes], store: ArchiveStore, entries: Iterable[BundleEntry], title: str) -> int:
    """A zip of signed PDFs with manifest.json and manifest.csv (path, SHA-256 and what each file is)."""
    rows = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            data = store.get(e.sha256)  # re-checks each file against its hash
            zf.writestr(e.path, data)
            rows.append({"path": e.path, "sha256": e.sha256, "bytes": len(data), **e.meta})
        manifest = {"title": title, "generated_at": dt.datetime.now(dt.UTC).isoformat(), "files": rows}
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
        buf = io.StringIO()
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        zf.writestr("manifest.csv", "\ufeff" + buf.getvalue())
    return len(rows)


def safe_filename(name: str) -> str:
    bad = '\\/:*?"<>|\0'
    clean = "".join("_" if c in bad or ord(c) < 32 else c for c in name).strip()
    return "_" if clean in ("", ".", "..") else clean


def bundle_path(*parts: str) -> str:
    return str(Path(*[safe_filename(p) for p in parts]))
