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
