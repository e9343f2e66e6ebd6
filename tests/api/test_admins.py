"""三员分立: the three administrators see none of the district's business (cases, rosters, ledgers,
documents, campaigns) although they belong to the bureau, and each administers only what its role
owns (the system administrator accounts and the unit tree, the security administrator resets and
roles); bureau staff administer no account."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from service.accounts.models import User
from tests.api.conftest import LICHENG, running_service, setup_licheng, xlsx
from tests.api.test_roles import school_objects


def test_the_administrators_read_no_childs_data_and_no_business_of_the_district(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        ids = school_objects(service, units)
        reads = [
            f"/api/cases/{ids['case_id']}",
            f"/api/rosters/{ids['roster_id']}",
            f"/api/documents/{ids['document_id']}",
            f"/api/campaigns/{ids['campaign_id']}",
            f"/api/assignments/{ids['assignment_id']}",
            f"/api/jobs/{ids['job_id']}",
            f"/api/units/{units['WSR-SH']}",
            "/api/ledgers/suspected",
            f"/api/ledgers/suspected?unit_id={units['WSR-SH']}",
        ]
        lists = ["/api/cases", "/api/rosters", "/api/campaigns", "/api/assignments"]
        # the bureau sees them all (the walk below is not refused for want of data)
        service.login("bureau")
        assert [c.get(url).status_code for url in reads] == [200] * len(reads)
        assert all(c.get(url).json() for url in [*lists, "/api/units"])
        for admin in ("sysadmin", "secadmin", "auditor"):
            service.login(admin)
            answers = {url: c.get(url).status_code for url in reads}
            assert set(answers.values()) <= {403, 404}, (admin, answers)
            assert {url: c.get(url).json() for url in lists} == {url: [] for url in lists}, admin
            # the units by name only (for their forms and filters), none of them to open
            assert {u["code"] for u in c.get("/api/units").json()} == set(units)
            # the pages show nothing either: the case page is refused, the case list empty
            page = c.get(f"/cases/{ids['case_id']}", headers={"accept": "text/html"})
            assert page.status_code in (403, 404), (admin, page.status_code)
            assert "王浩然" not in c.get("/cases", headers={"accept": "text/html"}).text
        # a school's signer cannot delegate signing to an administrator
        service.login("wsr-sh-head")
        with service.state.db.session() as s:
            auditor_id = s.scalars(select(User.id).where(User.username == "auditor")).one()
        r = c.post(
            f"/api/units/{units['WSR-SH']}/delegations",
            json={"user_id": auditor_id, "starts_on": "2099-01-01", "ends_on": "2099-01-02", "reason": "外出"},
        )
        assert r.status_code in (404, 422), r.text


def test_each_administrator_does_only_what_its_role_owns(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        with service.state.db.session() as s:
            staff_id = s.scalars(select(User.id).where(User.username == "wsr-staff")).one()
            secadmin_id = s.scalars(select(User.id).where(User.username == "secadmin")).one()
        new = {"username": "wsr-clerk", "display_name": "教务", "role": "office_staff", "unit_id": units["WSR"]}
        actions = {
            "create": lambda: c.post("/api/users", json=new),
            "disable": lambda: c.post(f"/api/users/{staff_id}/disable", json={"reason": "调离"}),
            "enable": lambda: c.post(f"/api/users/{staff_id}/enable"),
            "expiry": lambda: c.put(f"/api/users/{staff_id}/expiry", json={"expires_at": None}),
            "reset": lambda: c.post(f"/api/users/{staff_id}/reset-password"),
            "role": lambda: c.post(f"/api/users/{staff_id}/role", json={"role": "unit_signer"}),
        }
        owned = {
            "sysadmin": {"create", "disable", "enable", "expiry"},
            "secadmin": {"reset", "role"},
            "auditor": set(),
            "bureau": set(),
            "wsr-head": set(),
        }
        for username, mine in owned.items():
            service.login(username)
            for name, act in actions.items():
                r = act()
                if name in mine:
                    # its own: done, or refused for the account's state (a role never turns into 签署人)
                    assert r.status_code in (200, 201, 422) or (name == "role" and "激活链接" in r.text), (
                        username,
                        name,
                        r.text,
                    )
                else:
                    assert r.status_code in (403, 404), (username, name, r.status_code, r.text)
        # the system administrator can neither reset nor disable another administrator from the web
        service.login("sysadmin")
        r = c.post(f"/api/users/{secadmin_id}/disable", json={"reason": "x"})
        assert r.status_code == 403 and "docsign" in r.json()["message"]
        # the accounts list is the administrators' and the staff's, not the auditor's to change
        assert c.get("/api/users").status_code == 200


def test_the_system_administrator_keeps_the_unit_tree(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        sheet = xlsx([LICHENG[0], ("WSR-NEW", "历城区王舍人街道新建小学", "学校", "WSR", "张新", "")])
        service.login("sysadmin")
        r = c.post("/api/units/import", files={"file": ("新学校.xlsx", sheet)})
        assert r.status_code == 200 and r.json() == {"created": 1, "updated": 0}, r.text
        assert "WSR-NEW" in {u["code"] for u in c.get("/api/units").json()}
        page = c.get("/units", headers={"accept": "text/html"})
        assert page.status_code == 200 and "历城区王舍人街道新建小学" in page.text and "/contacts" not in page.text
        # the other two administrators do not
        for admin in ("secadmin", "auditor"):
            service.login(admin)
            r = c.post("/api/units/import", files={"file": ("新学校.xlsx", sheet)})
            assert r.status_code == 403 and "系统管理员" in r.json()["message"], (admin, r.text)
            assert c.get("/units", headers={"accept": "text/html"}).status_code == 403
