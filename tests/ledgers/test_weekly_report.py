"""The 辍学周报告 over the ISO week of 13–19 September of the autumn term, filed in the next week by
Wednesday: each school's figures equal the counts made here from the same events; an office's is
the sum of its schools' signed versions; a correction is a new signed version with its
differences. The same machinery as the monthly report, over a week."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.archive.models import Document, DocumentStatus
from service.campaigns.errors import AssignmentNotSignable
from service.campaigns.models import Assignment, AssignmentState
from service.cases.errors import CaseInvalid
from service.cases.models import Case
from service.container import Services
from service.ledgers.models import ReportVersion
from service.ledgers.reports import add, covered, empty
from tests import checks
from tests.district import load_district, scope_of, unit
from tests.ledgers.events import Events, assignments, recurring
from tests.ledgers.term import YEAR, goto

SCAN = b"%PDF-1.4 scan"
#: The week the report counts (ISO week 37) and the period it is filed in (week 38, by Wednesday 22nd).
START, END = dt.date(YEAR, 9, 13), dt.date(YEAR, 9, 19)
PERIOD = f"{YEAR}-W38"


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def test_the_period_counts_the_iso_week_before() -> None:
    assert covered(PERIOD) == (START, END)
    assert covered("2027-W01") == (dt.date(2026, 12, 28), dt.date(2027, 1, 3))  # across the year's end
    assert covered("2027-10") == (D(9, 1), D(9, 30))  # the monthly's unchanged
    with pytest.raises(ValueError):
        covered("2027-W99")


def test_weekly_report_from_the_data_summed_and_corrected(services: Services, nss_db: str) -> None:
    load_district(services)
    goto(services.clock, D(9, 6))

    with services.db.session() as s:
        campaign = recurring(services, s, "辍学周报告", "weekly", 3)
        events = Events(services, s)
        case, attempt = events.case, events.attempt

        # The week before: opened and tried, not this week's news but open at its end.
        f = case("WSR-SH", "wsr-sh-head", 51, "冯上周", D(9, 10), groups=("留守儿童",))
        g = case("WSR-SH", "wsr-sh-head", 63, "韩延缓", D(9, 10), grade="八年级")
        attempt("wsr-sh-head", f, D(9, 12))  # Sunday before: not counted
        # The week itself, Monday 13th to Sunday 19th.
        a = case("WSR-SH", "wsr-sh-head", 53, "陈疑似", D(9, 13), confirmed=False, grade="八年级")
        b = case("WSR-SH", "wsr-sh-head", 55, "褚复学", D(9, 14), groups=("留守儿童", "家庭经济困难"))
        c = case("WSR-SH", "wsr-sh-head", 57, "卫核实", D(9, 14), confirmed=False)
        goto(services.clock, D(9, 15), 9)
        services.cases.confirm(s, scope_of(s, "wsr-sh-head"), s.get(Case, c))
        s.commit()
        events.confirmed(c, D(9, 15))
        d = case("WSR-XD", "wsr-xd-head", 59, "蒋随迁", D(9, 15), grade="三年级", groups=("随迁子女",))
        attempt("wsr-sh-head", b, D(9, 15))
        attempt("wsr-sh-head", c, D(9, 16))
        attempt("wsr-xd-head", d, D(9, 16))
        attempt("wsr-sh-head", b, D(9, 17))
        goto(services.clock, D(9, 17), 16)
        services.cases.defer(
            s,
            scope_of(s, "wsr-sh-head"),
            s.get(Case, g),
            basis="court_ruling",
            authority="历城区人民法院",
            approved_on=D(9, 17),
            approval=[("判决书.pdf", SCAN)],
        )
        s.commit()
        events.close(g, "deferred", D(9, 17))
        goto(services.clock, D(9, 18), 16)
        services.cases.returned(s, scope_of(s, "wsr-sh-head"), s.get(Case, b), D(9, 18))
        s.commit()
        events.close(b, "returned", D(9, 18))
        goto(services.clock, D(9, 19), 16)  # Sunday afternoon: still this week
        services.cases.write_off(
            s, scope_of(s, "wsr-sh-head"), s.get(Case, a), "enrolled_elsewhere", [("学籍.pdf", SCAN)]
        )
        s.commit()
        events.close(a, "written_off", D(9, 19))
        case("WSR-SH", "wsr-sh-head", 65, "杨下周", D(9, 20))  # next week's, and not open at this one's end
        attempt("wsr-sh-head", f, D(9, 20))  # Monday after: next week's

        def expected(schools: set[str]) -> dict[str, object]:
            return events.expected(schools, START, END)

        goto(services.clock, D(9, 20), 12)
        services.campaigns.refresh_recurring(s)
        s.commit()
        mine = assignments(s, campaign, PERIOD)
        assert {a.kind for a in mine.values()} == {"weekly_report"}
        reports = services.ledgers.reports
        sh = scope_of(s, "wsr-sh-head")
        draft = reports.review(s, sh, mine["WSR-SH"])
        assert (draft.start, draft.end) == (START, END)
        assert draft.figures == expected({"WSR-SH"})
        assert draft.figures["attempts"] == 3 and draft.figures["deferred"] == 1 and draft.figures["new_dropped"] == 2
        assert draft.figures["open"] == 2  # 冯上周 and 卫核实
        with pytest.raises(CaseInvalid, match="数据有变化，请重新核对周报告"):
            reports.sign(s, sh, mine["WSR-SH"], "0" * 16)
        s.rollback()
        with pytest.raises(Forbidden):  # another school cannot sign it
            reports.sign(s, scope_of(s, "wsr-xd-head"), mine["WSR-SH"], draft.digest)
        s.rollback()
        v1 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        assignment = s.get(Assignment, mine["WSR-SH"].id)
        assert assignment is not None and assignment.state == AssignmentState.SIGNED and assignment.late is False
        assert assignment.report_name == "历城区王舍人街道石河小学周报告第1版.pdf"
        doc = s.get(Document, v1.document_id)
        assert doc is not None and doc.kind == "weekly_report" and doc.issuer_unit_id == unit(s, "WSR-SH").id
        assert doc.fields["period_label"] == "2027年第38周报送"
        assert doc.fields["rows"][-1] == {"item": "周末未销号个案", "count": 2}
        assert {"item": "延缓入学/休学", "count": 1} in doc.fields["rows"]
        signed = checks.pdfsig(services.stores["documents"].get(doc.current_sha256), nss_db)
        assert "Signature is Valid." in signed
        assert "Signer Certificate Common Name: 历城区王舍人街道石河小学" in signed  # the school's own key
        text = checks.pdftotext(services.stores["documents"].get(doc.current_sha256)).replace(" ", "")
        assert "辍学周报告" in text and "2027年9月13日至2027年9月19日" in text and "周末未销号个案" in text

        # The school's other reports are not touched: the week's version is the week's alone.
        assert reports.latest(s, unit(s, "WSR-SH").id, f"{YEAR}-10") is None

        xd = scope_of(s, "wsr-xd-head")
        s.commit()
        reports.sign(s, xd, mine["WSR-XD"], reports.review(s, xd, mine["WSR-XD"]).digest)
        s.commit()
        assert reports.latest(s, unit(s, "WSR-XD").id, PERIOD).figures["attempts"] == 1  # type: ignore[union-attr]

        # The office's report is the sum of its schools' signed reports; the one not yet in is named.
        office = scope_of(s, "wsr-head")
        od = reports.review(s, office, mine["WSR"])
        summed = add(add(empty(), expected({"WSR-SH"})), expected({"WSR-XD"}))
        assert od.figures == summed == expected({"WSR-SH", "WSR-XD"})
        assert od.parts == ["历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"]
        assert od.missing == ["历城区王舍人街道中学"]
        s.commit()
        reports.sign(s, office, mine["WSR"], od.digest)
        s.commit()

        # A late record (on Tuesday) of the week's attempt: the school corrects, as a new signed version.
        attempt("wsr-sh-head", c, D(9, 18), recorded=D(9, 21))
        s.commit()
        draft = reports.review(s, sh, mine["WSR-SH"])
        assert draft.figures == expected({"WSR-SH"}) and draft.changes == ["劝返次数 3→4"]
        s.commit()
        v2 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        assert v2.version == 2 and v2.period == PERIOD
        old, new = s.get(Document, v1.document_id), s.get(Document, v2.document_id)
        assert old is not None and new is not None
        assert old.status == DocumentStatus.SUPERSEDED and old.superseded_by_id == new.id
        assert new.fields["changes"] == ["劝返次数 3→4"] and new.fields["version"] == 2
        text = checks.pdftotext(services.stores["documents"].get(new.current_sha256)).replace(" ", "")
        assert "第2版（更正）" in text and "劝返次数3→4" in text
        assert "Signature is Valid." in checks.pdfsig(services.stores["documents"].get(new.current_sha256), nss_db)
        with pytest.raises(CaseInvalid, match="无需更正"):
            reports.sign(s, sh, mine["WSR-SH"], reports.review(s, sh, mine["WSR-SH"]).digest)
        s.rollback()
        od2 = reports.review(s, office, mine["WSR"])
        assert od2.changes == ["劝返次数 4→5"] and od2.figures == expected({"WSR-SH", "WSR-XD"})
        assert [v.version for v in s.scalars(select(ReportVersion).order_by(ReportVersion.id))] == [1, 1, 1, 2]

        # An assignment whose period does not match its kind is not a report to sign.
        bad = s.get(Assignment, mine["WSR-SH"].id)
        assert bad is not None
        bad.period = f"{YEAR}-10"
        with pytest.raises(AssignmentNotSignable):
            reports.review(s, sh, bad)
        s.rollback()
