"""The 学生失学辍学信息报告 after the autumn term's start (county plan 二.(三).2: within 15 days): each
school's report is made from its data (the 适龄儿童's 入学, who is 失学, 辍学 or 疑似辍学 at the end of
the term's first 15 days by grade, key group and reason, each child named), its figures equal the
counts made here from the same events; it is signed with the school's key through the term
campaign, which clears the due item; an office's is the sum of its schools' signed versions; a
correction is a new signed version listing what changed."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.archive.models import Document, DocumentStatus
from service.campaigns.errors import CampaignInvalid
from service.campaigns.models import AssignmentState
from service.campaigns.service import CampaignSpec, period_deadline
from service.cases.errors import CaseInvalid
from service.cases.models import Case
from service.container import Services
from service.ledgers.models import ChildEntry
from service.ledgers.reports import TERM, add, covered, empty, period_kind, period_text
from tests import checks
from tests.district import load_district, scope_of, unit
from tests.ledgers.events import Events, assignments, recurring
from tests.ledgers.term import SHANGHAI, TERM_START, YEAR, goto, xlsx
from tests.rosters.roster_data import resident_id

PERIOD = TERM_START.isoformat()
START, END = TERM_START, dt.date(YEAR, 9, 15)
SH, XD = "历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def test_a_terms_period_is_its_start() -> None:
    assert period_kind(PERIOD) is TERM and covered(PERIOD) == (START, END)
    assert period_text(PERIOD) == "2027年9月1日开学后报送"
    assert period_deadline(PERIOD, 15, SHANGHAI) == dt.datetime(YEAR, 9, 16, 23, 59, 59, tzinfo=SHANGHAI)


def test_info_report_from_the_data_signed_summed_and_corrected(services: Services, nss_db: str) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        with pytest.raises(CampaignInvalid, match="开学后报送的天数应在1到60之间"):
            services.campaigns.create(
                s, bureau, CampaignSpec("信息报告", YEAR, None, None, kinds=(), recurrence="term", due_day=90)
            )
        s.rollback()
        services.ledgers.deadlines.set_term(s, bureau, "2027年秋季学期", TERM_START)
        s.commit()
        campaign = recurring(services, s, "学生失学辍学信息报告", "term", 15)
        assert assignments(s, campaign, PERIOD) == {}  # the term has not started

        # The 适龄儿童 of 辛甸小学: two report on the first day, one never does (失学).
        head_xd = scope_of(s, "wsr-xd-head")
        header = ("学校代码", "儿童姓名", "身份证号", "性别", "出生日期", "随迁子女", "监护人姓名", "监护人电话")
        kids = [
            (
                "",
                name,
                resident_id(n, "20210301", female=False),
                "男",
                "2021-03-01",
                migrant,
                f"{name[0]}父",
                f"1380531{n:04d}",
            )
            for n, name, migrant in ((81, "陈一", "否"), (83, "林二", "是"), (85, "黄三", "是"))
        ]
        services.ledgers.import_children(s, head_xd, unit(s, "WSR-XD"), YEAR, xlsx([header, *kids]), "一年级.xlsx")
        s.commit()
        entries = {e.student_name: e for e in s.scalars(select(ChildEntry))}

        events = Events(services, s)
        case, attempt = events.case, events.attempt
        category: dict[int, tuple[str, str]] = {}

        f = case("WSR-SH", "wsr-sh-head", 51, "冯八月", D(8, 26), groups=("留守儿童",), reason="厌学", detail="在家")
        category[f] = ("辍学", "厌学")
        goto(services.clock, TERM_START, 8)
        services.campaigns.refresh_recurring(s)
        s.commit()
        mine = assignments(s, campaign, PERIOD)
        assert {a.kind for a in mine.values()} == {"info_report"} and len(mine) == 10  # the offices and schools
        assert mine["WSR-SH"].deadline == period_deadline(PERIOD, 15, SHANGHAI)
        for name in ("陈一", "林二"):
            services.ledgers.report_child(s, head_xd, entries[name], TERM_START)
        s.commit()
        a = case("WSR-SH", "wsr-sh-head", 53, "陈疑似", D(9, 2), confirmed=False, grade="八年级")
        category[a] = ("疑似辍学", "原因未填写")
        b = case("WSR-SH", "wsr-sh-head", 55, "褚复学", D(9, 2), reason="学习困难")
        c = case("WSR-SH", "wsr-sh-head", 57, "卫后来", D(9, 3), groups=("家庭经济困难",), reason="外出务工")
        category[c] = ("辍学", "外出务工")
        attempt("wsr-sh-head", b, D(9, 4))
        attempt("wsr-sh-head", c, D(9, 5))
        goto(services.clock, D(9, 5), 12)
        lost = services.ledgers.child_missing(s, head_xd, entries["黄三"])
        s.commit()
        events.opened[lost.id] = ("WSR-XD", "一年级", ("随迁子女",), D(9, 5))
        events.log.append(("WSR-XD", "new_suspected", D(9, 5)))
        category[lost.id] = ("失学", "原因未填写")
        goto(services.clock, D(9, 10), 16)
        services.cases.returned(s, scope_of(s, "wsr-sh-head"), s.get(Case, b), D(9, 10))
        s.commit()
        events.close(b, "returned", D(9, 10))

        def expected(schools: set[str]) -> dict[str, object]:
            """The term's figures counted from the test's own log; the children by name."""
            out = events.expected(schools, START, END)
            still = events.still_open(schools, END)
            kinds = Counter(category[cid][0] for cid in still)
            children = 3 if "WSR-XD" in schools else 0
            out.update(
                children=children,
                children_reported=2 if children else 0,
                children_missing=1 if children else 0,
                out_of_school=kinds["失学"],
                dropped=kinds["辍学"],
                suspected=kinds["疑似辍学"],
                reasons=dict(Counter(category[cid][1] for cid in still)),
            )
            return out

        def listed(figures: dict[str, object]) -> tuple[dict[str, object], set[tuple[str, str, str, str]]]:
            rest = dict(figures)
            students = rest.pop("students")
            return rest, {(x["school"], x["name"], x["category"], x["reason"]) for x in students}  # type: ignore[attr-defined]

        # The due item is the campaign's: the school sees it from the start, never twice.
        goto(services.clock, D(9, 12))
        items = [i for i in services.ledgers.due(s, scope_of(s, "wsr-sh-head")) if i.kind == "info_report"]
        assert [(i.title, i.overdue, i.due) for i in items] == [
            ("学生失学辍学信息报告（2027年9月1日开学）", False, D(9, 16))
        ]
        s.commit()

        reports = services.ledgers.reports
        sh = scope_of(s, "wsr-sh-head")
        draft = reports.review(s, sh, mine["WSR-SH"])
        assert (draft.start, draft.end, draft.kind) == (START, END, TERM)
        figures, children = listed(draft.figures)
        assert figures == expected({"WSR-SH"})
        assert (figures["dropped"], figures["suspected"], figures["open"], figures["returned"]) == (2, 1, 3, 1)
        assert children == {
            (SH, "冯八月", "辍学", "厌学"),
            (SH, "陈疑似", "疑似辍学", "原因未填写"),
            (SH, "卫后来", "辍学", "外出务工"),
        }
        with pytest.raises(CaseInvalid, match="数据有变化，请重新核对信息报告"):
            reports.sign(s, sh, mine["WSR-SH"], "0" * 16)
        s.rollback()
        with pytest.raises(Forbidden):
            reports.sign(s, scope_of(s, "wsr-xd-head"), mine["WSR-SH"], draft.digest)
        s.rollback()
        v1 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        signed = s.get(type(mine["WSR-SH"]), mine["WSR-SH"].id)
        assert signed is not None and signed.state == AssignmentState.SIGNED and signed.late is False
        assert not [i for i in services.ledgers.due(s, sh) if i.kind == "info_report"]  # cleared by signing
        s.commit()
        doc = s.get(Document, v1.document_id)
        assert doc is not None and doc.kind == "info_report" and doc.issuer_unit_id == unit(s, "WSR-SH").id
        assert doc.fields["period_label"] == "2027年9月1日开学后报送"
        assert {"item": "辍学（含劝返中）", "count": 2} in doc.fields["rows"]
        assert {"item": "外出务工", "count": 1} in doc.fields["reasons"]
        pdf = services.stores["documents"].get(doc.current_sha256)
        check = checks.pdfsig(pdf, nss_db)
        assert "Signature is Valid." in check and f"Signer Certificate Common Name: {SH}" in check
        text = checks.pdftotext(pdf).replace(" ", "")
        for phrase in (
            "学生失学辍学信息报告",
            "2027年9月1日至2027年9月15日",
            "失学辍学学生名单",
            "卫后来",
            "外出务工",
            "陈疑似",
        ):
            assert phrase in text, phrase
        assert "褚复学" not in text  # back at school before the report

        # 辛甸小学 files a day late; until then its office sees the item overdue.
        goto(services.clock, D(9, 17))
        office_items = [i for i in services.ledgers.due(s, scope_of(s, "wsr-staff")) if i.kind == "info_report"]
        assert {(i.school, i.overdue) for i in office_items} >= {(XD, True)} and SH not in {
            i.school for i in office_items
        }
        s.commit()
        xd = scope_of(s, "wsr-xd-head")
        xd_draft = reports.review(s, xd, mine["WSR-XD"])
        figures, children = listed(xd_draft.figures)
        assert figures == expected({"WSR-XD"}) and children == {(XD, "黄三", "失学", "原因未填写")}
        assert (figures["children"], figures["children_missing"], figures["out_of_school"]) == (3, 1, 1)
        s.commit()
        reports.sign(s, xd, mine["WSR-XD"], xd_draft.digest)
        s.commit()
        assert s.get(type(mine["WSR-XD"]), mine["WSR-XD"].id).late is True  # type: ignore[union-attr]

        # The office's report sums its schools' signed reports, children and all.
        office = scope_of(s, "wsr-head")
        od = reports.review(s, office, mine["WSR"])
        summed = add(add(empty(TERM), reports.latest(s, unit(s, "WSR-SH").id, PERIOD).figures), xd_draft.figures)  # type: ignore[union-attr]
        assert od.figures == summed
        figures, children = listed(od.figures)
        assert figures == expected({"WSR-SH", "WSR-XD"}) and len(children) == 4
        assert od.parts == [SH, XD] and od.missing == ["历城区王舍人街道中学"]
        s.commit()
        reports.sign(s, office, mine["WSR"], od.digest)
        s.commit()

        # A return on the 14th recorded late (the 18th): the school corrects, as a new signed version.
        goto(services.clock, D(9, 18), 9)
        services.cases.returned(s, sh, s.get(Case, c), D(9, 14))
        s.commit()
        events.close(c, "returned", D(9, 14))
        draft = reports.review(s, sh, mine["WSR-SH"])
        figures, children = listed(draft.figures)
        assert figures == expected({"WSR-SH"})
        assert draft.changes == [
            "辍学（含劝返中） 2→1",
            "未销号个案合计 3→2",
            "开学以来劝返复学 1→2",
            "年级「七年级」2→1",
            "重点群体「家庭经济困难」1→0",
            "辍学原因「外出务工」1→0",
            "不再列入 历城区王舍人街道石河小学卫后来（七年级一班）",
        ]
        s.commit()
        v2 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        old, new = s.get(Document, v1.document_id), s.get(Document, v2.document_id)
        assert old is not None and new is not None and v2.version == 2
        assert old.status == DocumentStatus.SUPERSEDED and old.superseded_by_id == new.id
        text = checks.pdftotext(services.stores["documents"].get(new.current_sha256)).replace(" ", "")
        assert "第2版（更正）" in text and "不再列入" in text and "卫后来" in text
        with pytest.raises(CaseInvalid, match="无需更正"):
            reports.sign(s, sh, mine["WSR-SH"], reports.review(s, sh, mine["WSR-SH"]).digest)
        s.rollback()
        assert "不再列入 历城区王舍人街道石河小学卫后来（七年级一班）" in reports.review(s, office, mine["WSR"]).changes
