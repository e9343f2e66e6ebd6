"""Each bureau's own basis: a rule names the source the bureau entered; until then the notice its default
came from is shown as another place's reference (nearest the bureau's region first), never as the
bureau's own; the demo district cites its own 历城区 notice; the 巩固率 target is the bureau's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.cases.errors import CaseInvalid
from service.container import Services
from service.ledgers.basis import examples, reference
from service.ledgers.models import DeadlineRule
from service.units.models import Unit
from service.units.service import SheetRow, import_units
from tests.api.conftest import running_service, setup_licheng
from tests.district import load_district, scope_of, unit
from tests.ledgers.term import YEAR, goto, new_case

OTHER_PLACES = ("谯城区通知", "睢阳区通知", "枣庄市通知", "县实施方案")


def test_references_are_chosen_nearest_the_bureaus_region_and_say_whose_they_are() -> None:
    assert [c.notice for c in examples("confirm", "山东省济南市")] == ["licheng", "zaozhuang"]
    assert [c.notice for c in examples("confirm", "山东省枣庄市")] == ["zaozhuang", "licheng"]
    assert [c.notice for c in examples("monthly_report", "河南省商丘市")] == ["suiyang", "licheng"]
    assert reference("unregistered", "山东省济南市") == "参考安徽省亳州市：谯城区通知 五（非本局文件，请填写本局依据）"
    assert reference("survey") == "参考外地：县实施方案 二.(三).2（非本局文件，请填写本局依据）"


def test_the_demo_bureau_cites_its_own_notice_and_marks_the_rest_as_references(services: Services) -> None:
    load_district(services)
    goto(services.clock, dt.date(YEAR, 9, 20))
    with services.db.session() as s:
        bureau = unit(s, "LCJT")
        rules = {r.key: r for r in services.ledgers.deadlines.rules(s, bureau)}
        assert rules["confirm"].cited == "历城区通知 二.(一)" and rules["monthly_report"].cited == "历城区通知 三"
        for r in rules.values():
            assert r.cited.startswith("历城区通知") or (r.source == "" and "非本局文件" in r.cited), r.key
        new_case(services, s, "wsr-sh-head", "WSR-SH", 301, "依据测试", confirmed=False)
        s.commit()
        due = services.ledgers.due(s, scope_of(s, "wsr-sh-head"))
        [confirm] = [i for i in due if i.kind == "confirm"]
        assert confirm.source == "历城区通知 二.(一)"
        for item in due:  # another place's notice appears only as a marked reference
            if item.source and item.source.startswith(OTHER_PLACES):
                pytest.fail(f"{item.title} cites {item.source} as the bureau's own")
        district = services.ledgers.district_for(s, scope_of(s, "bureau"), None)
        assert (district.target, district.target_source) == (1.0, "历城区通知 二.(四)")  # 零流失


def test_a_bureau_names_its_own_basis_and_cannot_take_another_places_as_its_own(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        import_units(
            s, [SheetRow(2, {"code": "ZZJT", "name": "枣庄市薛城区教育和体育局", "type": "教体局", "parent": ""})]
        )
        s.commit()
        other = s.scalar(select(Unit).where(Unit.code == "ZZJT"))
        assert other is not None
        deadlines = services.ledgers.deadlines
        rules = {r.key: r for r in deadlines.rules(s, other)}
        assert rules["confirm"].source == "" and rules["confirm"].cited.startswith("参考山东省济南市：历城区通知")
        scope = scope_of(s, "bureau")
        with pytest.raises(CaseInvalid, match="其他地区的文件"):
            deadlines.set_rule(s, scope, "unregistered", days=7, lead_days=0, active=True, source="谯城区通知 五")
        s.rollback()
        deadlines.set_rule(
            s, scope, "unregistered", days=5, lead_days=0, active=True, source="历城区教体局〔2026〕3号 二"
        )
        deadlines.set_basis(
            s, scope, region="山东省济南市", notice="本局通知", target=0.995, target_source="本局通知 一"
        )
        s.commit()
        assert s.scalar(select(func.count()).select_from(DeadlineRule).where(DeadlineRule.key == "unregistered")) == 1
        rules = {r.key: r for r in deadlines.rules(s, unit(s, "LCJT"))}
        assert (rules["unregistered"].days, rules["unregistered"].cited) == (5, "历城区教体局〔2026〕3号 二")
        district = services.ledgers.district_for(s, scope, None)
        assert (district.target, district.target_source) == (0.995, "本局通知 一")


def test_no_page_shows_another_places_notice_as_the_bureaus(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        service.login("bureau")
        for page in ("/district", "/deadlines"):
            text = service.client.get(page).text
            for other in OTHER_PLACES:
                for found in [text[max(0, i - 40) : i] for i in range(len(text)) if text.startswith(other, i)]:
                    assert "参考" in found, f"{page}: {other} without 参考"
            assert "谯城区通知）" not in text
        r = service.client.post(
            "/deadlines/basis",
            data={
                "region": "山东省济南市",
                "notice": "本局通知",
                "target": "100",
                "target_source": "历城区通知 二.(四)",
            },
        )
        assert r.status_code == 200 and "历城区通知 二.(四)" in r.text
        assert "巩固率目标不低于 100%（历城区通知 二.(四)）" in service.client.get("/district").text
        r = service.client.post(
            "/deadlines/rules", data={"key": "survey", "days": 10, "active": "yes", "source": "县实施方案 二.(三).2"}
        )
        assert "其他地区的文件，不能作为本局的依据" in r.text
