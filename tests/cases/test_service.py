"""Case use cases without HTTP: a case's notices and its 一生一表 in versions, the register's blanks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from service.archive.models import DocumentStatus, DocumentVersion
from service.audit.models import AuditEvent
from service.cases.service import CaseIn, GuardianIn
from service.container import Services
from tests.district import load_district, scope_of, unit


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
        # two documents archived in one transaction: their journal is kept apart, nothing waits
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


def test_the_register_fills_every_block_from_the_case(services: Services) -> None:
    """The 一生一表 of a child deferred and taught at home: the guardian's 工作单位或务工地, the
    whole 当前状态, the 销号 block, every 送教上门 visit, and the principal at 校长签字."""
    from tests import checks
    from tests.ledgers.term import goto, new_case

    load_district(services)
    year = services.clock.now().year + 1
    goto(services.clock, dt.date(year, 9, 2))
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        case = new_case(services, s, "wsr-sh-head", "WSR-SH", 75, "秦在家", key_groups=("残疾儿童",))
        case.guardians[0].address = "浙江省宁波市务工"
        goto(services.clock, dt.date(year, 9, 3))
        services.cases.defer(
            s,
            head,
            case,
            basis="disability_assessment",
            authority="历城区残疾人联合会",
            approved_on=dt.date(year, 9, 3),
            approval=[("评估意见.pdf", b"%PDF-1.4 approval")],
            home_teaching=True,
        )
        s.commit()
        goto(services.clock, dt.date(year, 9, 12))
        for day, content in (
            (dt.date(year, 9, 10), "语文识字、康复训练"),
            (dt.date(year, 9, 11), "数学认数、生活技能"),
        ):
            services.cases.add_home_visit(
                s, head, case, date=day, teachers="资源教师 李红", content=content, evidence=[("记录.pdf", b"%PDF-1.4")]
            )
        s.commit()
        doc = services.cases.register(s, head, case)
        s.commit()
        text = checks.pdftotext(services.archive.documents.get(doc.current_sha256))
        flat = "".join(text.split())
    assert "浙江省宁波市务工" in flat  # 工作单位或务工地
    assert "当前状态延缓入学" in flat  # whole, on one line with its label
    assert "延缓入学/休学" in flat and "经残疾人教育专家委员会评估不具备学习条件" in flat  # 销号
    assert "历城区残疾人联合会" in flat
    assert "送教上门记录" in flat and "语文识字、康复训练" in flat and "数学认数、生活技能" in flat
    assert f"{year}年9月10日" in flat and f"{year}年9月11日" in flat
    head_name = unit_head(services, "WSR-SH")
    assert f"校长签字：{head_name}" in flat, flat[-200:]


def unit_head(services: Services, code: str) -> str:
    with services.db.session() as s:
        return str(unit(s, code).head_name)
