"""送教上门 for a deferred child taught at home (county plan 二.(三).4, at least once a week): the
school records each visit; the weekly item shows on the school's list two days ahead, on its
office's and the bureau's once overdue, and clears when a visit is recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from service.accounts.errors import Forbidden
from service.cases.errors import CaseInvalid
from service.cases.models import Case, HomeVisit
from service.container import Services
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import TERM_START, YEAR, goto, new_case

PHOTO = b"\x89PNG\r\n\x1a\n home visit photo"
SCAN = b"%PDF-1.4 approval"


def D(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def home_items(services: Services, s: Session, username: str) -> dict[str, tuple[bool, str | None]]:
    """The 送教上门 items a user sees: student -> (overdue, source)."""
    out = {
        str(i.student): (i.overdue, i.source)
        for i in services.ledgers.due(s, scope_of(s, username))
        if i.kind == "home_teaching"
    }
    s.commit()
    return out


def test_home_teaching_weekly_after_a_deferral(services: Services) -> None:
    load_district(services)
    goto(services.clock, D(8, 20))
    with services.db.session() as s:
        head = scope_of(s, "wsr-sh-head")
        services.ledgers.deadlines.set_term(s, scope_of(s, "bureau"), "2027年秋季学期", TERM_START)
        s.commit()
        goto(services.clock, D(9, 2))
        home = new_case(services, s, "wsr-sh-head", "WSR-SH", 71, "秦在家", key_groups=("残疾儿童",))
        ill = new_case(services, s, "wsr-sh-head", "WSR-SH", 73, "尤休学")
        goto(services.clock, D(9, 3))
        services.cases.defer(
            s,
            head,
            home,
            basis="disability_assessment",
            authority="历城区残疾人联合会",
            approved_on=D(9, 3),
            approval=[("评估意见.pdf", SCAN)],
            home_teaching=True,
        )
        s.commit()
        services.cases.defer(
            s,
            head,
            ill,
            basis="court_ruling",
            authority="历城区人民法院",
            approved_on=D(9, 3),
            approval=[("判决书.pdf", SCAN)],
        )
        s.commit()
        assert home.closure is not None and home.closure.home_teaching

        goto(services.clock, D(9, 7))
        assert home_items(services, s, "wsr-sh-head") == {}
        goto(services.clock, D(9, 8))  # the week from the approval is due on the 10th, shown two days ahead
        # the demo bureau cites no notice of its own for 送教上门: the seed passage shows as a reference
        source = "参考外地：县实施方案 二.(三).4（非本局文件，请填写本局依据）"
        assert home_items(services, s, "wsr-sh-head") == {"秦在家": (False, source)}  # never 尤休学
        assert home_items(services, s, "wsr-staff") == {} and home_items(services, s, "bureau") == {}
        goto(services.clock, D(9, 11))
        assert home_items(services, s, "wsr-staff") == {"秦在家": (True, source)}
        assert home_items(services, s, "bureau") == {"秦在家": (True, source)}
        assert home_items(services, s, "hjl-staff") == {}  # another office's school

        # What a visit must carry, and who may record it.
        def visit(user: str, case: Case, day: dt.date | None, files: list[tuple[str, bytes]]) -> HomeVisit:
            return services.cases.add_home_visit(
                s,
                scope_of(s, user),
                case,
                date=day,
                teachers="资源教师 李红",
                content="语文识字、康复训练",
                evidence=files,
            )

        with pytest.raises(CaseInvalid, match="送教记录：请上传一份送教记录"):
            visit("wsr-sh-head", home, D(9, 11), [])
        with pytest.raises(CaseInvalid, match="送教日期：不能早于延缓入学/休学的批准日期"):
            visit("wsr-sh-head", home, D(9, 2), [("照片.png", PHOTO)])
        with pytest.raises(CaseInvalid, match="送教日期：不能晚于今天"):
            visit("wsr-sh-head", home, D(9, 12), [("照片.png", PHOTO)])
        with pytest.raises(CaseInvalid, match="只有办理了延缓入学/休学并安排送教上门的个案"):
            visit("wsr-sh-head", ill, D(9, 11), [("照片.png", PHOTO)])
        with pytest.raises(Forbidden):
            visit("wsr-xd-head", home, D(9, 11), [("照片.png", PHOTO)])
        s.rollback()
        assert s.query(HomeVisit).count() == 0

        v = visit("wsr-sh-head", home, D(9, 11), [("照片.png", PHOTO)])
        s.commit()
        assert (v.date, v.teachers, v.evidence_filename, v.evidence_size) == (
            D(9, 11),
            "资源教师 李红",
            "照片.png",
            len(PHOTO),
        )
        assert services.stores["files"].get(v.evidence_sha256) == PHOTO
        # the case's change log says what happened, in words
        assert "送教上门（2027-09-11）" in [c.what for c in services.ledgers.changes(s, [home.id])[home.id]]
        assert home_items(services, s, "wsr-sh-head") == {} and home_items(services, s, "bureau") == {}

        # A week from the visit: due the 18th, shown from the 16th, overdue upward from the 19th.
        goto(services.clock, D(9, 16))
        assert home_items(services, s, "wsr-sh-head") == {"秦在家": (False, source)}
        goto(services.clock, D(9, 19))
        assert home_items(services, s, "bureau") == {"秦在家": (True, source)}
        visit("wsr-sh-head", home, D(9, 18), [("签字记录.pdf", SCAN)])  # recorded late, for the 18th
        s.commit()
        assert home_items(services, s, "bureau") == {}
        goto(services.clock, D(9, 23))
        assert home_items(services, s, "wsr-sh-head") == {"秦在家": (False, source)}
        assert [x.date for x in s.get(Case, home.id).home_visits] == [D(9, 11), D(9, 18)]  # type: ignore[union-attr]
        assert unit(s, "WSR-SH").id == home.school_id
