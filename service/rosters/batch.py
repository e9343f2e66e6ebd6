"""Notices for a whole roster, as one resumable batch (the steps behind ``Rosters.import_roster`` and
``Rosters.issue``).

Import reserves a verification code for every row (``RosterEntry.code``). Issuing takes the rows that
have no document yet, in class order, through the engine's merged conversion, and records each
document as soon as it is archived (committing every few documents). A run killed halfway is simply
run again: rows already recorded are skipped and the others get the code they were given, so no
code and no document is ever issued twice. At the end each school gets one print PDF of its
notices in class order (qpdf joins the signed files).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import and_, func, literal, select, tuple_, update
from sqlalchemy.orm import Session

from service.archive.models import Document
from service.archive.service import Archive, RecordAs, code_hash, receipt_digest
from service.audit.service import Actor, record
from service.cases.checks import parse_date
from service.cases.models import Case, CaseStatus, Guardian
from service.cases.notices import notice_fields
from service.db.sealed import session_keyring
from service.documents.codes import new_code
from service.documents.errors import ConversionError
from service.documents.pipeline import IssuedDocument, IssueRequest
from service.documents.registry import get_kind
from service.rosters.models import PrintBundle, Roster, RosterEntry
from service.rosters.sheet import RosterCheck, class_order
from service.units.models import Unit
from service.workdir import temp_dir

#: Rows handed to the engine at once (the engine merges them further into conversion chunks).
ISSUE_WINDOW = 400


def create_roster(
    session: Session,
    check: RosterCheck,
    *,
    kind: str,
    issuer: Unit,
    filename: str,
    report_by: dt.date,
    issue_date: dt.date,
    only_valid: bool,
    actor: Actor,
    now: dt.datetime,
) -> Roster:
    """Store the rows (all of them, or the good ones only when asked) with a reserved code each."""
    good = check.good
    today = issue_date  # the roster's own day: a 复学 roster's cases are listed from it at the latest
    roster = Roster(
        issuer_id=issuer.id,
        kind=kind,
        filename=filename[:128],
        report_by=report_by,
        issue_date=issue_date,
        rows=len(good),
        skipped=len(check.rows) - len(good),
        created_at=now,
        created_by_id=actor.user_id,
    )
    session.add(roster)
    session.flush()
    for r in good:
        assert r.school is not None
        case_id = None
        if kind == "return_notice":
            v = r.values
            case = Case(
                school_id=r.school.id,
                student_name=v["student_name"],
                id_number=v["id_number"],
                student_number=v.get("student_number") or None,
                sex=v.get("sex") or ("男" if int(v["id_number"][16]) % 2 else "女"),
                birth_date=parse_date(v.get("birth_date", "")) or _birth(v["id_number"]),
                grade=v.get("grade", ""),
                class_name=v.get("class_name") or None,
                home_address=v.get("home_address") or None,
                dropout_date=(dropped := parse_date(v.get("dropout_date", ""))),
                # listed as 辍学 from the 辍学日期 the sheet gives (the day of import without one)
                dropped_on=min(dropped, today) if dropped else today,
                dropout_reason=v.get("dropout_reason") or None,
                status=CaseStatus.DROPPED,
                created_at=now,
                updated_at=now,
            )
            session.add(case)
            session.flush()
            session.add(
                Guardian(
                    case_id=case.id,
                    name=v["guardian_name"],
                    relation=v.get("guardian_relation") or "其他监护人",
                    phone=v["guardian_phone"].replace(" ", ""),
                )
            )
            if v.get("guardian2_name"):
                session.add(
                    Guardian(
                        case_id=case.id,
                        name=v["guardian2_name"],
                        relation=v.get("guardian2_relation") or "其他监护人",
                        phone=v.get("guardian2_phone", "").replace(" ", ""),
                    )
                )
            case_id = case.id
        session.add(
            RosterEntry(
                roster_id=roster.id,
                row=r.row,
                school_id=r.school.id,
                class_order=class_order(r.values, r.row),
                grade_class=(r.values.get("grade", "") + r.values.get("class_name", ""))[:30] or None,
                fields=notice_fields(
                    guardian_name=r.values["guardian_name"],
                    student_name=r.values["student_name"],
                    id_number=r.values["id_number"],
                    grade_class=(r.values["grade"] + r.values.get("class_name", ""))
                    if kind == "return_notice" and r.values.get("grade")
                    else None,
                    school=r.school,
                    issuer=issuer,
                    report_by=report_by,
                    issue_date=issue_date,
                ),
                code=new_code(),
                case_id=case_id,
                receipt_digest=receipt_digest(r.values.get("guardian_phone")),
            )
        )
    session.flush()
    record(
        session,
        actor,
        "roster.import",
        "roster",
        roster.id,
        now,
        kind=kind,
        rows=len(good),
        skipped=roster.skipped,
        file=filename,
    )
    return roster


def _birth(id_number: str) -> dt.date:
    from stdnum.cn import ric

    return ric.get_birth_date(id_number)


def issue_roster(
    session: Session,
    archive: Archive,
    roster: Roster,
    actor: Actor,
    now: Callable[[], dt.datetime],
    *,
    checkpoint: Callable[[], None],
    progress: Callable[[int, int], None] | None = None,
    job_id: int | None = None,
    entry_ids: Sequence[int] | None = None,
) -> int:
    """Issue every notice of the roster that has no document yet, then each school's print PDF;
    returns how many were issued now. With ``entry_ids`` (a slice run by one of many workers) only
    those rows are issued, and the print files wait for :func:`finish_roster`."""
    mine = RosterEntry.roster_id == roster.id
    if entry_ids is not None:
        mine = and_(mine, RosterEntry.id.in_(list(entry_ids)))
    total = session.scalar(select(func.count()).select_from(RosterEntry).where(mine)) or 0
    done = (
        session.scalar(select(func.count()).select_from(RosterEntry).where(mine, RosterEntry.document_id.is_not(None)))
        or 0
    )
    if progress:
        progress(done, total)
    issuer = roster.issuer
    archive.engine.pki.ensure_unit(issuer.cert_key, issuer.name)
    #: request -> roster entry id, for the requests handed to the engine
    entries: dict[int, int] = {}
    keyring = session_keyring(session)

    def items() -> Iterator[tuple[IssueRequest, RecordAs]]:
        """The rows without a document, in class order, a window at a time."""
        after: tuple[str, int] = ("", 0)
        while True:
            rows = session.execute(
                select(
                    RosterEntry.id,
                    RosterEntry.class_order,
                    RosterEntry.fields_sealed,
                    RosterEntry.row_key,
                    RosterEntry.code,
                    RosterEntry.case_id,
                    RosterEntry.receipt_digest,
                )
                .where(
                    mine,
                    RosterEntry.document_id.is_(None),
                    tuple_(RosterEntry.class_order, RosterEntry.id) > tuple_(literal(after[0]), literal(after[1])),
                )
                .order_by(RosterEntry.class_order, RosterEntry.id)
                .limit(ISSUE_WINDOW)
            ).all()
            if not rows:
                return
            for entry_id, _, sealed, row_key, code, case_id, digest in rows:
                fields = RosterEntry.fields.open(keyring, sealed, row_key)
                request = IssueRequest(roster.kind, fields, issuer_key=issuer.cert_key, code=code)
                entries[id(request)] = entry_id
                yield request, RecordAs(issuer=issuer, case_id=case_id, receipt_digest=digest)
            after = (rows[-1].class_order, rows[-1].id)

    def on_recorded(group: list[tuple[IssuedDocument, Document]]) -> None:
        # Once its notice is issued an entry keeps only the code's hash, like the document: the
        # notice and the print file carry the code, the database no longer does.
        session.execute(
            update(RosterEntry),
            [
                {"id": entries.pop(id(issued.request)), "document_id": doc.id, "code": code_hash(issued.code)}
                for issued, doc in group
            ],
        )

    issued_now = archive.issue_batch(
        session,
        items(),
        total=total - done,
        checkpoint=checkpoint,
        on_recorded=on_recorded,
        progress=(lambda n: progress(done + n, total)) if progress else None,
        job_id=job_id,
    )
    if entry_ids is None:
        finish_roster(
            session, archive, roster, actor, now(), issued_now=issued_now, checkpoint=checkpoint, job_id=job_id
        )
    return issued_now


def slice_roster(session: Session, roster: Roster, size: int) -> list[list[int]]:
    """The ids of the rows without a document, in class order, cut into slices of ``size``."""
    ids = session.scalars(
        select(RosterEntry.id)
        .where(RosterEntry.roster_id == roster.id, RosterEntry.document_id.is_(None))
        .order_by(RosterEntry.class_order, RosterEntry.id)
    ).all()
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def finish_roster(
    session: Session,
    archive: Archive,
    roster: Roster,
    actor: Actor,
    at: dt.datetime,
    *,
    issued_now: int,
    checkpoint: Callable[[], None],
    job_id: int | None = None,
) -> None:
    """Once every row is issued: the audit entry and each school's print PDF."""
    total = session.scalar(select(func.count()).select_from(RosterEntry).where(RosterEntry.roster_id == roster.id)) or 0
    if roster.issued_at is None or issued_now:
        roster.issued_at = at
        record(session, actor, "roster.issue", "roster", roster.id, roster.issued_at, issued=issued_now, total=total)
    checkpoint()
    build_print_bundles(session, archive, roster, at, job_id=job_id)


def build_print_bundles(
    session: Session, archive: Archive, roster: Roster, at: dt.datetime, job_id: int | None = None
) -> list[PrintBundle]:
    """One print PDF per school with its notices in class order (qpdf joins the signed files)."""
    store = archive.documents
    rows = session.execute(
        select(RosterEntry.school_id, Document.current_sha256)
        .join(Document, Document.id == RosterEntry.document_id)
        .where(RosterEntry.roster_id == roster.id)
        .order_by(RosterEntry.school_id, RosterEntry.class_order)
    ).all()
    by_school: dict[int, list[str]] = defaultdict(list)
    for school_id, sha256 in rows:
        by_school[school_id].append(sha256)
    bundles = []
    with temp_dir(archive.temp_root, "print") as tmp:

        def join(school_id: int, hashes: list[str]) -> tuple[Path, int]:
            with contextlib.ExitStack() as files:
                paths = [files.enter_context(store.local_path(sha256)) for sha256 in hashes]
                out = Path(tmp, f"school-{school_id}.pdf")
                args = Path(tmp, f"school-{school_id}.args")
                args.write_text(
                    "\n".join(["--empty", "--pages", *map(str, paths), "--", str(out)]) + "\n", encoding="utf-8"
                )
                try:
                    subprocess.run(["qpdf", f"@{args}"], check=True, capture_output=True, timeout=600)
                    pages = int(
                        subprocess.run(
                            ["qpdf", "--show-npages", str(out)], check=True, capture_output=True, text=True, timeout=120
                        ).stdout.strip()
                    )
                except (OSError, subprocess.SubprocessError, ValueError) as exc:
                    raise ConversionError("无法合并打印用的 PDF，请确认已安装 qpdf（运行 scripts/setup）。") from exc
            return out, pages

        # One qpdf per school, as many at once as there are cores.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="docsign-print") as pool:
            joined = list(pool.map(join, by_school.keys(), by_school.values()))
        for (school_id, hashes), (path, pages) in zip(by_school.items(), joined, strict=True):
            sha = archive.keep_file(session, "documents", path, job_id=job_id)
            bundle = session.scalar(
                select(PrintBundle).where(PrintBundle.roster_id == roster.id, PrintBundle.school_id == school_id)
            )
            if bundle is None:
                bundle = PrintBundle(
                    roster_id=roster.id,
                    school_id=school_id,
                    sha256=sha,
                    notices=len(hashes),
                    pages=pages,
                    created_at=at,
                )
                session.add(bundle)
            else:
                bundle.sha256, bundle.notices, bundle.pages, bundle.created_at = sha, len(hashes), pages, at
            bundles.append(bundle)
    session.flush()
    return bundles


def roster_title(roster: Roster) -> str:
    return f"{get_kind(roster.kind).title}（{roster.filename}）"
