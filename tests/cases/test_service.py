"""Case and roster use cases without HTTP: a case's notices and 一生一表, a roster imported and issued
as a named job, dates in Beijing time whatever the hour."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from sqlalchemy import func, select

from service.archive.models import Document, DocumentStatus, DocumentVersion
from service.archive.service import TransactionNotFresh
from service.audit.models import AuditEvent
from service.cases.models import PrintBundle, RosterEntry
from service.cases.service import CaseIn, GuardianIn
from service.container import Services
from service.errors import UploadInvalid
from tests.cases.roster_data import rows, xlsx
from tests.district import load_district, scope_of, unit

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at_beijing(services: Services, day: dt.date, hour: int) -> None:
    """Move the service's clock to ``hour`` o'clock Beijing time on ``day``."""
    target = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)
    if target > services.clock.now():
        services.clock.advance(target - services.clock.now())


def test_a_case_gets_notices_and_its_register_in_versions(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        case = services.cases.create(
            s,
            school,
            unit(s, "WSR-SH").id,
            CaseIn(
                student_name="王浩然",
                id_number="370112201203070013",
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                class_name="二班",
                confirmed=True,
                guardians=[GuardianIn("王德福", "父亲", "13805310001")],
            ),
        )
        s.commit()
        report_by = services.cases.today() + dt.timedelta(days=7)
        notice = services.cases.issue_notice(s, school, case, "return_notice", report_by)
        with pytest.raises(TransactionNotFresh):  # each document is archived in a transaction of its own
            services.cases.register(s, school, case)
        s.commit()
        first = services.cases.register(s, school, case)
        s.commit()
        second = services.cases.register(s, school, case)
        s.commit()
        assert notice.case_id == case.id and notice.issuer is not None and notice.issuer.code == "WSR-SH"
        assert notice.fields["issue_date"] == services.cases.today().isoformat()
        s.refresh(first)
        assert first.status == DocumentStatus.SUPERSEDED and first.superseded_by_id == second.id
        for doc in (notice, first, second):
            versions = s.scalars(select(DocumentVersion.event).where(DocumentVersion.document_id == doc.id)).all()
            assert versions == ["issued"]
        audit = s.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "document")).all()
        assert audit == ["document.issue", "case.register", "case.register"]


def test_a_roster_is_dated_in_beijing_time_and_issued_by_its_job(services: Services) -> None:
    load_district(services)
    # 01:00 in Beijing is 17:00 of the day before in UTC: the notices carry the Beijing date.
    day = (services.clock.now() + dt.timedelta(days=2)).astimezone(SHANGHAI).date()
    at_beijing(services, day, 1)
    assert services.clock.now().astimezone(dt.UTC).date() == day - dt.timedelta(days=1)
    sheet = xlsx(rows(30, ["WSR-SH", "WSR-XD"]))
    with services.db.session() as s:
        school_office = scope_of(s, "bureau")
        with pytest.raises(UploadInvalid, match="晚于今天"):
            services.cases.import_roster(s, school_office, sheet, "名单.xlsx", kind="enrollment_notice", report_by=day)
        roster, skipped = services.cases.import_roster(
            s, school_office, sheet, "名单.xlsx", kind="enrollment_notice", report_by=day + dt.timedelta(days=30)
        )
        s.commit()
        assert skipped == [] and roster.issue_date == day and roster.rows == 30
        job, _ = services.cases.start_roster_issue(s, school_office, roster, services.jobs)
        s.commit()
        ended = services.jobs.run_here(job.id)
        assert ended.status == "done", ended.error_message
        issued = s.scalars(
            select(Document)
            .join(RosterEntry, RosterEntry.document_id == Document.id)
            .where(RosterEntry.roster_id == roster.id)
        ).all()
        assert len(issued) == 30 and {d.fields["issue_date"] for d in issued} == {day.isoformat()}
        bundles = s.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster.id)).all()
        assert sorted(b.notices for b in bundles) == [15, 15]
        for b in bundles:
            assert services.archive.documents.exists(b.sha256)
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "roster.import")) == 1


def test_the_register_of_a_suspected_case_prints_dashes_not_guesses(services: Services) -> None:
    from tests import checks

    load_district(services)
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        case = services.cases.create(
            s,
            school,
            unit(s, "WSR-SH").id,
            CaseIn(
                student_name="王浩然",
                id_number="370112201203070013",
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                guardians=[GuardianIn("王德福", "父亲", "13805310001")],
            ),
        )
        s.commit()
        assert case.dropout_reason is None and case.home_address is None  # nothing chosen for the school
        doc = services.cases.register(s, school, case)
        s.commit()
        assert "dropout_reason" not in doc.fields and "home_address" not in doc.fields
        text = checks.pdftotext(services.archive.documents.get(doc.current_sha256))
        line = next(x for x in text.splitlines() if "辍学原因" in x)
        assert "—" in line and "其他" not in line, line
        address = next(x for x in text.splitlines() if "家庭住址" in x)
        assert "—" in address and "未登记" not in text, address
