"""Retention on a fast clock: each rule makes due exactly what it says on the day it says, the job
removes exactly that (rows anonymised, files and signed PDFs gone, the rest untouched), logs it,
and a guardian's request is a bureau's act with a reason."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

import pytest
from sqlalchemy import func, select

from service.accounts.errors import Forbidden
from service.archive.models import Document, DocumentStatus, DocumentVersion
from service.archive.schemas import Verification
from service.archive.service import DocumentErased, stored_pdf
from service.audit.models import AuditEvent
from service.audit.service import verify_chain
from service.cases.models import Case, CaseFile, Guardian
from service.cases.service import CaseIn, GuardianIn
from service.container import Services
from service.ledgers.models import ChildEntry
from service.retention.models import RetentionRecord
from service.retention.rules import RetentionRules, add_years, case_due, compulsory_end, roster_due, school_year_end
from service.retention.service import ERASED_TEXT, CaseStillOpen, ErasureReasonMissing
from service.retention.tasks import ApplyRetention
from service.rosters.models import PrintBundle, Roster, RosterEntry
from tests.district import load_district, scope_of, unit
from tests.rosters.roster_data import rows, xlsx

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_the_rules_dates() -> None:
    rules = RetentionRules()
    # entered at six: born by 8月31日 starts that September, nine years later it ends
    assert compulsory_end(dt.date(2012, 3, 7)) == dt.date(2027, 8, 31)
    assert compulsory_end(dt.date(2012, 9, 1)) == dt.date(2028, 8, 31)
    assert school_year_end(dt.date(2026, 12, 7)) == dt.date(2027, 8, 31)
    assert school_year_end(dt.date(2027, 8, 31)) == dt.date(2027, 8, 31)
    assert add_years(dt.date(2024, 2, 29), 3) == dt.date(2027, 2, 28)
    # a closed case waits for the later of its closing and the end of compulsory age
    assert case_due(dt.date(2026, 12, 7), dt.date(2012, 3, 7), rules) == dt.date(2030, 8, 31)
    assert case_due(dt.date(2026, 12, 7), dt.date(2008, 5, 1), rules) == dt.date(2029, 12, 7)
    assert roster_due(dt.date(2026, 12, 7), rules) == dt.date(2028, 8, 30)


def _case(services: Services, s: object, name: str, id_number: str, born: dt.date) -> Case:
    school = scope_of(s, "wsr-sh-head")  # type: ignore[arg-type]
    return services.cases.create(
        s,  # type: ignore[arg-type]
        school,
        unit(s, "WSR-SH").id,  # type: ignore[arg-type]
        CaseIn(
            student_name=name,
            id_number=id_number,
            sex="男",
            birth_date=born,
            grade="六年级",
            class_name="二班",
            home_address="历城区王舍人街道石河村88号",
            confirmed=True,
            guardians=[GuardianIn("王德福", "父亲", "13805310001")],
        ),
    )


def at_beijing(services: Services, day: dt.date, hour: int) -> None:
    target = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)
    assert target > services.clock.now()
    services.clock.advance(target - services.clock.now())


def test_retention_on_a_fast_clock_removes_exactly_what_is_due(services: Services) -> None:
    load_district(services)
    retention = services.retention
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        today = services.cases.today()
        young = _case(services, s, "王浩然", "370112201203070013", dt.date(2012, 3, 7))
        old = _case(services, s, "李明远", "370112200805010013", dt.date(2008, 5, 1))
        still_open = _case(services, s, "张小军", "370112201001010012", dt.date(2010, 1, 1))
        s.commit()
        notice = services.cases.issue_notice(s, school, old, "return_notice", today + dt.timedelta(days=7))
        services.cases.add_attempt(
            s,
            school,
            old,
            date=today,
            staff="刘老师",
            method="家访",
            result="家长同意送回",
            note="住在石河村88号",
            attachments=[("家访照片.pdf", b"%PDF-1.4 a photo of the visit\n%%EOF\n")],
        )
        s.commit()
        for case in (young, old):
            services.cases.returned(s, school, case, today)
        s.commit()
        sheet = xlsx(rows(4, ["WSR-SH"], seed=5))
        roster, _ = services.rosters.import_roster(
            s, school, sheet, "名单.xlsx", kind="enrollment_notice", report_by=today + dt.timedelta(days=20)
        )
        s.commit()
        job, _ = services.rosters.start_issue(s, school, roster, services.jobs)
        s.commit()
        assert services.jobs.run_here(job.id).status == "done"
        ids = {"young": young.id, "old": old.id, "open": still_open.id, "roster": roster.id, "notice": notice.id}
        roster_docs = [e.document_id for e in s.scalars(select(RosterEntry).where(RosterEntry.roster_id == roster.id))]
        old_versions = s.scalars(
            select(DocumentVersion.sha256)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(Document.case_id == old.id)
        ).all()
        roster_versions = s.scalars(
            select(DocumentVersion.sha256).where(DocumentVersion.document_id.in_(roster_docs))
        ).all()
        bundles = s.scalars(select(PrintBundle.sha256).where(PrintBundle.roster_id == roster.id)).all()
        files = s.scalars(select(CaseFile.sha256).where(CaseFile.case_id == old.id)).all()
        children = s.scalar(select(func.count()).select_from(ChildEntry)) or 0

        # what falls due, and on which day
        rules = RetentionRules()
        roster_day = roster_due(today, rules)
        old_day = add_years(today, rules.case_years)
        assert retention.plan(s, roster_day - dt.timedelta(days=1)).items == []
        assert [(i.rule, i.subject_id) for i in retention.plan(s, roster_day).items] == [("roster", roster.id)]
        due = retention.plan(s, old_day)
        assert [(i.rule, i.subject_id) for i in due.items] == [("case", old.id), ("roster", roster.id)]
        assert "李明远" not in " ".join(i.label for i in due.items)  # the plan names no child
        # the 适龄儿童台账 rows the first-grade roster made wait for the end of those children's compulsory age
        assert children > 0 and all(i.rule != "children" for i in due.items)

    # the daily job on that day removes exactly that
    at_beijing(services, old_day, 9)
    with services.db.session() as s:
        job, _ = services.jobs.enqueue(s, ApplyRetention())
        s.commit()
    assert services.jobs.run_here(job.id).status == "done"
    with services.db.session() as s:
        old, young, still_open = (s.get_one(Case, ids[k]) for k in ("old", "young", "open"))
        assert old.student_name == ERASED_TEXT and old.id_number == "" and old.home_address is None
        assert old.birth_date == dt.date(2008, 1, 1) and old.status == "returned" and old.erased_at is not None
        guardian = s.scalars(select(Guardian).where(Guardian.case_id == old.id)).one()
        assert (guardian.name, guardian.phone) == (ERASED_TEXT, "")
        assert [a.note for a in old.attempts] == [None] and old.attempts[0].result == ERASED_TEXT
        assert s.scalars(select(CaseFile).where(CaseFile.case_id == old.id)).all() == []
        for sha in files:
            assert not services.archive.stores["files"].exists(sha)
        for sha in [*old_versions, *roster_versions, *bundles]:
            assert not services.archive.documents.exists(sha), sha
        erased = s.get_one(Document, ids["notice"])
        assert erased.status == DocumentStatus.ERASED and erased.fields == {}
        assert set(erased.public) <= {"kind", "title", "issuer", "date"}
        with pytest.raises(DocumentErased):
            stored_pdf(erased)
        page = Verification.of_document(erased, lambda: None, SHANGHAI)
        assert page.verdict == "已按期删除" and not page.genuine and "李" not in str(page.data)
        # the rest is untouched
        assert young.student_name == "王浩然" and young.erased_at is None
        assert still_open.student_name == "张小军" and still_open.id_number == "370112201001010012"
        entries = s.scalars(select(RosterEntry).where(RosterEntry.roster_id == ids["roster"])).all()
        assert entries and all(e.fields == {} and e.receipt_digest is None for e in entries)
        assert s.get_one(Roster, ids["roster"]).erased_at is not None
        assert s.scalars(select(PrintBundle).where(PrintBundle.roster_id == ids["roster"])).all() == []
        assert {d.status for d in s.scalars(select(Document).where(Document.id.in_(roster_docs)))} == {"erased"}
        # logged, once each, with counts and no personal data; the audit chain still holds
        log = s.scalars(select(RetentionRecord).order_by(RetentionRecord.id)).all()
        assert [(r.rule, r.subject_id) for r in log] == [("case", ids["old"]), ("roster", ids["roster"])]
        assert log[0].removed["documents"] == 1 and log[0].removed["files"] == 1
        assert log[1].removed["documents"] == 4
        assert s.scalar(select(func.count()).where(AuditEvent.action == "retention.erase")) == 2
        assert verify_chain(s).ok
        # nothing is due twice
        assert retention.plan(s).items == []


def test_a_guardians_request_is_the_bureaus_act_with_a_reason(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        school, bureau, office = (scope_of(s, u) for u in ("wsr-sh-head", "bureau", "wsr-staff"))
        case = _case(services, s, "王浩然", "370112201203070013", dt.date(2012, 3, 7))
        s.commit()
        with pytest.raises(CaseStillOpen, match="须继续劝返"):
            services.retention.erase_case_on_request(s, bureau, case, "监护人书面申请")
        services.cases.returned(s, school, case, services.cases.today())
        s.commit()
        for who in (school, office):
            with pytest.raises(Forbidden):
                services.retention.erase_case_on_request(s, who, case, "监护人书面申请")
        with pytest.raises(ErasureReasonMissing):
            services.retention.erase_case_on_request(s, bureau, case, "  ")
        s.rollback()
        entry = services.retention.erase_case_on_request(s, bureau, case, "监护人王德福 2026年12月1日书面申请")
        s.commit()
        assert entry.rule == "request" and "历城区教育和体育局" in entry.actor and entry.actor_user_id is not None
        assert s.get_one(Case, case.id).student_name == ERASED_TEXT
        assert retention_reasons(s) == ["监护人王德福 2026年12月1日书面申请"]


def retention_reasons(s: object) -> list[str]:
    return list(s.scalars(select(RetentionRecord.reason)))  # type: ignore[attr-defined]


def test_cached_page_images_go_after_their_days(services: Services) -> None:
    cache = services.settings.page_cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    old, new = cache / "old-1.png", cache / "new-1.png"
    for p in (old, new):
        p.write_bytes(b"png")
    eight_days = (services.clock.now() - dt.timedelta(days=8)).timestamp()
    os.utime(old, (eight_days, eight_days))
    with services.db.session() as s:
        plan = services.retention.plan(s)
        assert plan.page_images == [old]
        services.retention.apply(s, plan)
        s.commit()
        assert not old.exists() and new.exists()
        assert [(r.rule, r.removed["files"]) for r in s.scalars(select(RetentionRecord))] == [("page_cache", 1)]
