"""The roster use cases: import a sheet of students and guardians, issue its notices as one
background job (resumable: a rerun issues only what is missing), each school's print file, and the
回执台账 of who opened and confirmed their notice."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.archive.models import Document
from service.archive.service import Archive
from service.audit.schemas import ActorRef
from service.audit.service import Actor, record_when_done
from service.errors import DocsignError, NotFoundForUser, UploadInvalid
from service.jobs.models import Job
from service.jobs.runner import JobRunner
from service.rosters.batch import create_roster, issue_roster
from service.rosters.errors import RosterInvalid
from service.rosters.models import ROSTER_KINDS, PrintBundle, Roster, RosterEntry
from service.rosters.sheet import RosterRow, check_roster, schools_in
from service.rosters.tasks import IssueRoster
from service.sheets.cells import safe_cell
from service.units.models import Unit, UnitType


class Rosters:
    """The roster use cases, each taking the session and the ``Scope`` of whoever acts."""

    def __init__(self, archive: Archive, tz: str, now: Callable[[], dt.datetime]) -> None:
        self.archive = archive
        self.tz = zoneinfo.ZoneInfo(tz)
        self.now = now
        #: Told of every roster imported, with its good rows, in the importing transaction (the
        #: composition root adds the 适龄儿童台账's: a first-grade roster feeds it, no second import).
        self.on_imported: list[Callable[[Session, Scope, Roster, list[RosterRow]], object]] = []

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    def import_roster(
        self,
        session: Session,
        scope: Scope,
        data: bytes,
        filename: str,
        *,
        kind: str,
        report_by: dt.date,
        only_valid: bool = False,
        issue_date: dt.date | None = None,
    ) -> tuple[Roster, list[dict[str, Any]]]:
        """A school (or the bureau) imports a roster of students and guardians to send notices to.
        Every bad row is reported (row, column, reason); nothing is imported while any row is bad,
        unless ``only_valid``. Each good row gets its verification code now, so a batch killed
        halfway resumes without issuing a code twice. Returns the roster and the rows skipped."""
        try:
            return self._import(
                session,
                scope,
                data,
                filename,
                kind=kind,
                report_by=report_by,
                only_valid=only_valid,
                issue_date=issue_date,
            )
        except DocsignError as exc:
            # A refused import is audited too (once the caller's transaction ends, in one of its own,
            # since the caller rolls back): who tried, with which file, and why, none of the rows.
            errors = exc.details.get("errors", []) if isinstance(exc.details, dict) else []
            record_when_done(
                session,
                scope.actor,
                "roster.import_failed",
                "unit",
                scope.unit.id,
                self.now(),
                kind=kind,
                file=filename[:128],
                code=exc.code,
                errors=len(errors),
            )
            raise

    def _import(
        self,
        session: Session,
        scope: Scope,
        data: bytes,
        filename: str,
        *,
        kind: str,
        report_by: dt.date,
        only_valid: bool,
        issue_date: dt.date | None,
    ) -> tuple[Roster, list[dict[str, Any]]]:
        if kind not in ROSTER_KINDS:
            raise UploadInvalid("名单类型应为 enrollment_notice（入学通知书）或 return_notice（复学通知书）。")
        today = self.today()
        if report_by <= today:
            raise UploadInvalid("报到截止日期应晚于今天。")
        issuer = scope.unit
        if issuer.type == UnitType.OFFICE:
            raise UploadInvalid("通知书由学校或教体局发出，请用学校或教体局的账号导入名单。")
        scope.require_signer_for(issuer)
        check = check_roster(session, data, filename, kind, schools_in(session, scope.units))
        if not check.rows:
            raise RosterInvalid("名单中没有学生。")
        if check.errors and not only_valid:
            raise RosterInvalid(
                f"名单中有 {len(check.errors)} 处错误（涉及 {len(check.rows) - len(check.good)} 行），未导入任何学生。",
                details={"errors": check.errors},
            )
        if not check.good:
            raise RosterInvalid("名单中没有无误的行可以导入。", details={"errors": check.errors})
        roster = create_roster(
            session,
            check,
            kind=kind,
            issuer=issuer,
            filename=filename,
            report_by=report_by,
            issue_date=issue_date or today,
            only_valid=only_valid,
            actor=scope.actor,
            now=self.now(),
        )
        for listener in self.on_imported:
            listener(session, scope, roster, check.good)
        return roster, check.errors

    def start_issue(self, session: Session, scope: Scope, roster: Roster, jobs: JobRunner) -> tuple[Job, bool]:
        """Issue a roster's notices in the background (``roster.issue``); a rerun after an
        interruption issues only what is missing."""
        if roster.issuer_id not in scope.units:
            raise NotFoundForUser()
        scope.require_signer_for(roster.issuer)
        return jobs.enqueue(
            session,
            IssueRoster(roster_id=roster.id, actor=ActorRef.of(scope.actor)),
            unit_id=roster.issuer_id,
            user_id=scope.actor.user_id,
            active_key=f"roster.issue:{roster.id}",
        )

    def print_bundle(self, session: Session, roster: Roster, school_id: int) -> PrintBundle:
        bundle = session.scalar(
            select(PrintBundle).where(PrintBundle.roster_id == roster.id, PrintBundle.school_id == school_id)
        )
        if bundle is None:
            raise NotFoundForUser("该校还没有打印文件，请先签发名单。")
        return bundle

    def receipts_workbook(self, session: Session, roster: Roster) -> bytes:
        """The 回执台账: for each notice, whether it was issued, opened, and confirmed by the guardian."""
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "回执"
        ws.append(["行", "学校", "年级班级", "学生", "监护人", "签发", "首次查看", "查看次数", "确认阅知"])
        rows = session.execute(
            select(RosterEntry, Document)
            .outerjoin(Document, Document.id == RosterEntry.document_id)
            .where(RosterEntry.roster_id == roster.id)
            .order_by(RosterEntry.school_id, RosterEntry.class_order)
        ).all()
        units = {u.id: u.name for u in session.scalars(select(Unit))}
        for entry, doc in rows:
            f = entry.fields
            ws.append(
                [
                    safe_cell(v)
                    for v in (
                        entry.row,
                        units.get(entry.school_id, ""),
                        entry.grade_class or f.get("grade_class", ""),
                        f.get("student_name", ""),
                        f.get("guardian_name", ""),
                        "是" if doc else "否",
                        doc.opened_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if doc and doc.opened_at else "",
                        doc.opened_count if doc else 0,
                        doc.confirmed_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
                        if doc and doc.confirmed_at
                        else "",
                    )
                ]
            )
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    def issue(
        self,
        session: Session,
        roster: Roster,
        actor: Actor,
        *,
        checkpoint: Callable[[], None],
        progress: Callable[[int, int], None] | None = None,
        job_id: int | None = None,
        entry_ids: Sequence[int] | None = None,
    ) -> int:
        """Issue every notice of the roster that has no document yet, then each school's print PDF;
        returns how many were issued now. ``entry_ids``: only those rows (one slice of a batch run by
        many workers; the print files are made once all slices are done)."""
        return issue_roster(
            session,
            self.archive,
            roster,
            actor,
            self.now,
            checkpoint=checkpoint,
            progress=progress,
            job_id=job_id,
            entry_ids=entry_ids,
        )
