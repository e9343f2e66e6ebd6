"""The 控辍保学动态管理月报表 over September of the autumn term: each school's figures equal the counts
made here from the same events; an office's and the bureau's are the sums of their schools'
signed versions; a correction is a new signed version with its differences."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.archive.models import Document, DocumentStatus
from service.campaigns.models import Assignment, AssignmentState
from service.cases.errors import CaseInvalid
from service.cases.models import Case
from service.container import Services
from service.ledgers.models import ReportVersion
from service.ledgers.reports import add, empty
from tests import checks
from tests.district import load_district, scope_of, unit
from tests.ledgers.events import Events, assignments, recurring
from tests.ledgers.term import YEAR, goto

SCAN = b"%PDF-1.4 scan"


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def test_monthly_report_from_the_data_summed_up_the_tree_and_corrected(services: Services, nss_db: str) -> None:
    load_district(services)
    goto(services.clock, D(8, 25))

    with services.db.session() as s:
        campaign = recurring(services, s, "控辍保学动态管理月报", "monthly", 20)
        events = Events(services, s)
        case, attempt = events.case, events.attempt

        f = case("WSR-SH", "wsr-sh-head", 51, "冯八月", D(8, 26), groups=("留守儿童",))
        attempt("wsr-sh-head", f, D(8, 28))
        a = case("WSR-SH", "wsr-sh-head", 53, "陈疑似", D(9, 2), confirmed=False, grade="八年级")
        b = case("WSR-SH", "wsr-sh-head", 55, "褚复学", D(9, 2), groups=("留守儿童", "家庭经济困难"))
        c = case("WSR-SH", "wsr-sh-head", 57, "卫核实", D(9, 3), confirmed=False)
        goto(services.clock, D(9, 3), 15)
        services.cases.confirm(s, scope_of(s, "wsr-sh-head"), s.get(Case, c))
        s.commit()
        events.confirmed(c, D(9, 3))
        d = case("WSR-XD", "wsr-xd-head", 59, "蒋随迁", D(9, 4), grade="三年级", groups=("随迁子女",))
        case("HJL-XX", "hjl-xx-head", 61, "沈他办", D(9, 5), grade="四年级")
        attempt("wsr-sh-head", b, D(9, 5))
        attempt("wsr-sh-head", c, D(9, 6))
        attempt("wsr-xd-head", d, D(9, 10))
        attempt("wsr-sh-head", b, D(9, 12))
        goto(services.clock, D(9, 20), 16)
        services.cases.returned(s, scope_of(s, "wsr-sh-head"), s.get(Case, b), D(9, 20))
        s.commit()
        events.close(b, "returned", D(9, 20))
        goto(services.clock, D(9, 21), 16)
        services.cases.write_off(
            s, scope_of(s, "wsr-sh-head"), s.get(Case, a), "enrolled_elsewhere", [("学籍.pdf", SCAN)]
        )
        s.commit()
        events.close(a, "written_off", D(9, 21))
        attempt("wsr-sh-head", f, D(10, 2))  # October's: not in September's report

        def expected(schools: set[str]) -> dict[str, object]:
            return events.expected(schools, D(9, 1), D(9, 30))

        goto(services.clock, D(10, 8))
        services.campaigns.refresh_recurring(s)
        s.commit()
        mine = assignments(s, campaign, f"{YEAR}-10")
        reports = services.ledgers.reports
        sh = scope_of(s, "wsr-sh-head")
        draft = reports.review(s, sh, mine["WSR-SH"])
        assert draft.figures == expected({"WSR-SH"})
        assert draft.figures["attempts"] == 3 and draft.figures["open"] == 2  # 冯八月 and 卫核实
        with pytest.raises(CaseInvalid, match="数据有变化"):
            reports.sign(s, sh, mine["WSR-SH"], "0" * 16)
        s.rollback()
        with pytest.raises(Forbidden):  # another school cannot sign it
            reports.sign(s, scope_of(s, "wsr-xd-head"), mine["WSR-SH"], draft.digest)
        s.rollback()
        v1 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        assignment = s.get(Assignment, mine["WSR-SH"].id)
        assert assignment is not None and assignment.state == AssignmentState.SIGNED and assignment.late is False
        doc = s.get(Document, v1.document_id)
        assert doc is not None and doc.kind == "monthly_report" and doc.issuer_unit_id == unit(s, "WSR-SH").id
        assert doc.fields["rows"][-1] == {"item": "月末未销号个案", "count": 2}
        signed = checks.pdfsig(services.stores["documents"].get(doc.current_sha256), nss_db)
        # (the certificate itself is dated in the test's future term, so pdfsig, on today's clock,
        # cannot call it current: the signature and the signer are what is checked here)
        assert "Signature is Valid." in signed
        assert "Signer Certificate Common Name: 历城区王舍人街道石河小学" in signed  # the school's own key
        text = checks.pdftotext(services.stores["documents"].get(doc.current_sha256))
        assert "控辍保学动态管理月报表" in text and "2027年9月1日至2027年9月30日" in text.replace(" ", "")

        xd = scope_of(s, "wsr-xd-head")
        s.commit()
        reports.sign(s, xd, mine["WSR-XD"], reports.review(s, xd, mine["WSR-XD"]).digest)
        s.commit()
        assert reports.latest(s, unit(s, "WSR-XD").id, f"{YEAR}-10").figures["attempts"] == 1  # type: ignore[union-attr]

        # The office's report is the sum of its schools' signed reports; the one not yet in is named.
        office = scope_of(s, "wsr-head")
        od = reports.review(s, office, mine["WSR"])
        summed = add(add(empty(), expected({"WSR-SH"})), expected({"WSR-XD"}))
        assert od.figures == summed == expected({"WSR-SH", "WSR-XD"})
        assert od.parts == ["历城区王舍人街道石河小学", "历城区王舍人街道辛甸小学"]
        assert od.missing == ["历城区王舍人街道中学"]
        s.commit()
        # the office's staff prepare and review it; only its head puts the office's seal on it
        staff = scope_of(s, "wsr-staff")
        assert reports.review(s, staff, mine["WSR"]).digest == od.digest
        with pytest.raises(Forbidden, match="只有该单位负责人"):
            reports.sign(s, staff, mine["WSR"], od.digest)
        s.rollback()
        reports.sign(s, office, mine["WSR"], od.digest)
        s.commit()
        bd = reports.draft(s, unit(s, "LCJT"), f"{YEAR}-10")
        assert bd.figures == summed and "历城区洪家楼小学" in bd.missing

        # A late record of a September attempt: the school corrects, as a new signed version.
        attempt("wsr-sh-head", c, D(9, 25), recorded=D(10, 9))
        s.commit()
        draft = reports.review(s, sh, mine["WSR-SH"])
        assert draft.figures == expected({"WSR-SH"}) and draft.changes == ["劝返次数 3→4"]
        s.commit()
        v2 = reports.sign(s, sh, mine["WSR-SH"], draft.digest)
        s.commit()
        assert v2.version == 2
        old, new = s.get(Document, v1.document_id), s.get(Document, v2.document_id)
        assert old is not None and new is not None
        assert old.status == DocumentStatus.SUPERSEDED and old.superseded_by_id == new.id
        assert new.fields["changes"] == ["劝返次数 3→4"] and new.fields["version"] == 2
        with pytest.raises(CaseInvalid, match="无需更正"):
            reports.sign(s, sh, mine["WSR-SH"], reports.review(s, sh, mine["WSR-SH"]).digest)
        s.rollback()
        # the office sees what changed under it, and its correction sums the new version
        od2 = reports.review(s, office, mine["WSR"])
        assert od2.changes == ["劝返次数 4→5"] and od2.figures == expected({"WSR-SH", "WSR-XD"})
        assert [v.version for v in s.scalars(select(ReportVersion).order_by(ReportVersion.id))] == [1, 1, 1, 2]
