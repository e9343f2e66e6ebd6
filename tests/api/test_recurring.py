"""A monthly report due on the 20th uses the same tracking: periods open each month, late is late."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from tests.api.conftest import running_service, setup_licheng

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_monthly_report(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("bureau")
        r = c.post(
            "/api/campaigns",
            json={
                "name": "控辍保学动态管理月报",
                "year": 2026,
                "recurrence": "monthly",
                "due_day": 20,
                "kinds": ["report"],
            },
        )
        assert r.status_code == 201, r.text
        campaign = r.json()
        cid = campaign["id"]
        first_deadline = dt.datetime.fromisoformat(campaign["deadline"]).astimezone(SHANGHAI)
        assert (first_deadline.day, first_deadline.hour, first_deadline.minute) == (20, 23, 59)
        assert first_deadline > service.clock.now()
        service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])

        # Move to the first day of the first period's month: its reports open for every office and school.
        opening = first_deadline.replace(day=1, hour=9, minute=0, second=0)
        if opening > service.clock.now():
            service.clock.advance(opening - service.clock.now())
        service.login("bureau")  # the session from a week ago has expired
        status = c.get(f"/api/campaigns/{cid}/status").json()
        period = f"{first_deadline.year:04d}-{first_deadline.month:02d}"
        assert status["period"] == period and status["total"] == 10 and status["pending"] == 10

        service.login("wsr-sh-head")
        (mine,) = [
            a for a in c.get("/api/assignments").json() if a["period"] == period and a["unit_name"].endswith("石河小学")
        ]
        r = c.post(f"/api/assignments/{mine['id']}/report", files={"file": ("10月月报.xlsx", b"PK\x03\x04 report")})
        assert r.status_code == 200 and r.json()["late"] is False and r.json()["state"] == "signed"
        r = c.post(f"/api/assignments/{mine['id']}/report", files={"file": ("again.pdf", b"%PDF-1.7 again")})
        assert r.status_code == 409 and r.json()["code"] == "ALREADY_SIGNED"

        # After the 20th: one more school files, late; the rest are missing and escalate.
        service.clock.advance(first_deadline + dt.timedelta(days=1) - service.clock.now())
        service.login("wsr-xd-head")
        (xd,) = [
            a for a in c.get("/api/assignments").json() if a["period"] == period and a["unit_name"].endswith("辛甸小学")
        ]
        assert (
            c.post(f"/api/assignments/{xd['id']}/report", files={"file": ("月报.pdf", b"%PDF-1.7")}).json()["late"]
            is True
        )
        service.login("bureau")
        status = c.get(f"/api/campaigns/{cid}/status", params={"period": period}).json()
        assert (status["on_time"], status["late"], status["missing"]) == (1, 1, 8)


def test_weekly_report_due_by_wednesday(tmp_path: Path) -> None:
    """The 辍学周报告制度 (Zaozhuang (四)/(五)): every office and school reports each week by Wednesday."""
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("bureau")
        base = {"name": "辍学周报告", "year": 2026, "recurrence": "weekly"}
        for bad in (None, 0, 8):
            r = c.post("/api/campaigns", json={**base, "due_day": bad})
            assert r.status_code in (400, 422) and "campaigns" not in r.text, r.text
        assert c.get("/api/campaigns").json() == []  # nothing half-made

        r = c.post("/api/campaigns", json={**base, "due_day": 3})
        assert r.status_code == 201, r.text
        campaign = r.json()
        assert campaign["kinds"] == ["weekly_report"]
        cid = campaign["id"]
        first_deadline = dt.datetime.fromisoformat(campaign["deadline"]).astimezone(SHANGHAI)
        assert first_deadline.isoweekday() == 3 and (first_deadline.hour, first_deadline.minute) == (23, 59)
        assert dt.timedelta(0) < first_deadline - service.clock.now() <= dt.timedelta(days=7)
        service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])

        # Monday of the first period's week: its reports are open for every office and school.
        monday = (first_deadline - dt.timedelta(days=2)).replace(hour=9, minute=0, second=0)
        if monday > service.clock.now():
            service.clock.advance(monday - service.clock.now())
        iso = first_deadline.isocalendar()
        period = f"{iso.year:04d}-W{iso.week:02d}"
        service.login("bureau")
        status = c.get(f"/api/campaigns/{cid}/status").json()
        assert status["period"] == period and status["total"] == 10 and status["pending"] == 10
        page = c.get(f"/campaigns/{cid}").text
        assert f"本期 {iso.year}年第{iso.week}周（每周三前报送）" in page

        service.login("wsr-sh-head")
        mine = [a for a in c.get("/api/assignments").json() if a["period"] == period]
        (shihe,) = [a for a in mine if a["unit_name"].endswith("石河小学")]
        assert shihe["kind_title"] == "周报"
        due = [d for d in c.get("/api/due").json() if d["kind"] == "weekly_report"]
        assert [d["title"] for d in due] == [f"控辍保学辍学周报告（{iso.year}年第{iso.week}周）"]  # named once
        assert due[0]["due"] == first_deadline.date().isoformat() and due[0]["overdue"] is False
        r = c.post(f"/api/assignments/{shihe['id']}/report", files={"file": ("周报.xlsx", b"PK\x03\x04 report")})
        assert r.status_code == 200 and r.json()["late"] is False
        assert not [d for d in c.get("/api/due").json() if d["kind"] == "weekly_report"]

        # Thursday: a late one, and the next Monday opens the next week for everyone.
        service.clock.advance(first_deadline + dt.timedelta(hours=10) - service.clock.now())
        service.login("wsr-xd-head")
        (xd,) = [
            a for a in c.get("/api/assignments").json() if a["period"] == period and a["unit_name"].endswith("辛甸小学")
        ]
        assert c.post(f"/api/assignments/{xd['id']}/report", files={"file": ("周报.pdf", b"%PDF-1.7")}).json()["late"]
        service.clock.advance(dt.timedelta(days=4))
        service.open_periods()  # the schedule's next round; reading the status opens nothing
        nxt = (first_deadline + dt.timedelta(days=7)).isocalendar()
        service.login("bureau")
        status = c.get(f"/api/campaigns/{cid}/status").json()
        assert status["period"] == f"{nxt.year:04d}-W{nxt.week:02d}" and status["pending"] == 10
        last_week = c.get(f"/api/campaigns/{cid}/status", params={"period": period}).json()
        assert (last_week["on_time"], last_week["late"], last_week["missing"]) == (1, 1, 8)
