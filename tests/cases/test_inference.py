"""No cross-unit inference: what a school types (ID numbers in a roster or a case form) is checked
only against its own records, so it learns nothing about other schools' children; every import,
refused or not, is in the audit log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from service.audit.models import AuditEvent
from tests.api.conftest import Service, running_service, setup_licheng
from tests.rosters.roster_data import HEADER, resident_id, rows, xlsx

COL = {name: i for i, name in enumerate(HEADER)}


def _case(service: Service, school_id: int, id_number: str) -> Any:
    return service.client.post(
        "/api/cases",
        json={
            "school_id": school_id,
            "student_name": "李四",
            "id_number": id_number,
            "sex": "男" if int(id_number[16]) % 2 else "女",
            "birth_date": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
            "grade": "一年级",
            "confirmed": True,
            "guardians": [{"name": "李大", "phone": "13805310002"}],
        },
    )


def _return_roster(service: Service, data: list[list[str]]) -> Any:
    header = (*HEADER, "辍学日期", "辍学原因")
    return service.client.post(
        "/api/rosters",
        files={"file": ("复学名单.xlsx", xlsx([[*r, "2024-09-02", "厌学"] for r in data], header))},
        data={"kind": "return_notice", "report_by": (dt.date.today() + dt.timedelta(days=10)).isoformat()},
    )


def _messages(errors: list[dict[str, Any]], row: int) -> list[tuple[str, str]]:
    return sorted((e["column"], e["message"]) for e in errors if e["row"] == row)


def test_a_roster_that_probes_another_schools_children_learns_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        elsewhere = resident_id(401, "20180415", female=False)  # has an open case at 洪家楼小学
        unknown = resident_id(405, "20180415", female=False)  # nobody's
        own = resident_id(407, "20180415", female=False)  # has an open case at 石河小学 itself
        service.login("hjl-xx-head")
        assert _case(service, units["HJL-XX"], elsewhere).status_code == 201
        service.login("wsr-sh-head")
        assert _case(service, units["WSR-SH"], own).status_code == 201

        data = [list(r) for r in rows(3, ["WSR-SH"], seed=3)]
        for r, id_number in zip(data, (elsewhere, unknown, own), strict=True):
            r[COL["身份证号"]], r[COL["学籍号"]] = id_number, "G" + id_number
            r[COL["出生日期"]], r[COL["性别"]], r[COL["年级"]] = "2018-04-15", "男", "一年级"
            r[COL["监护人电话"]] = "12345"  # a planted error on every row, so the import is refused
        r = _return_roster(service, data)
        assert r.status_code == 422 and r.json()["code"] == "ROSTER_INVALID", r.text
        errors = r.json()["details"]["errors"]
        # the child with a case at another school reads exactly like an unknown child
        assert _messages(errors, 2) == _messages(errors, 3) == [("监护人电话", _messages(errors, 2)[0][1])]
        # the school's own open case is still pointed out
        assert any("未结案" in m for _, m in _messages(errors, 4))
        assert "洪家楼" not in r.text

        # a case form with the other school's child is not refused as a duplicate, and names nobody
        r = _case(service, units["WSR-SH"], elsewhere)
        assert r.status_code == 201, r.text
        dup = _case(service, units["WSR-SH"], own)
        assert dup.status_code == 409 and "石河小学" in dup.json()["message"]

        # the refused import is audited, with who and which file but none of the rows
        with service.state.db.session() as s:
            failed = s.scalars(select(AuditEvent).where(AuditEvent.action == "roster.import_failed")).all()
        assert len(failed) == 1
        assert failed[0].detail["file"] == "复学名单.xlsx" and failed[0].detail["errors"] == len(errors)
        assert failed[0].unit_id == units["WSR-SH"] and elsewhere not in str(failed[0].detail)
