"""Every page, API route and export that shows a child leaves exactly one access-log entry per
request, for each role that may open it (bureau, office staff, school head): who, which record or
which list with its filter and row count, through which route, from where. The verify page
leaves none."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import func, select

from service.audit.access import verify_access_chain
from service.audit.models import AccessEntry
from tests.api.conftest import Service, running_service, setup_licheng
from tests.rosters.roster_data import rows
from tests.rosters.roster_data import xlsx as roster_xlsx
from tests.web.test_verification import issue_notice

#: A list or an export whose row count depends on the role (the ledger of their own unit).
ANY = -1
ROLES = {"bureau": "bureau_staff", "hjl-staff": "office_staff", "hjl-xx-head": "unit_signer"}


def _last_id(service: Service) -> int:
    service.state.access.flush()
    with service.state.db.session() as s:
        return s.scalar(select(func.coalesce(func.max(AccessEntry.id), 0))) or 0


def _entries_after(service: Service, last: int) -> list[AccessEntry]:
    service.state.access.flush()
    with service.state.db.session() as s:
        return list(s.scalars(select(AccessEntry).where(AccessEntry.id > last).order_by(AccessEntry.id)))


def test_each_read_of_a_child_is_one_entry_for_each_role(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        xx = units["HJL-XX"]
        service.login("hjl-xx-head")
        case_id = c.post(
            "/api/cases",
            json={
                "school_id": xx,
                "student_name": "李四",
                "id_number": "370112201203070013",
                "sex": "男",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "guardians": [{"name": "李大", "phone": "13805310002"}],
            },
        ).json()["id"]
        today = service.clock.now().date().isoformat()
        r = c.post(
            f"/cases/{case_id}/attempts",
            data={"date": today, "method": "家访", "staff": "钱红", "result": "家长答应下周送返"},
            files=[("attachments", ("家访照片.jpg", b"\xff\xd8\xff\xe0 a photo", "image/jpeg"))],
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:300]
        file_id = int(re.findall(rf"/cases/{case_id}/files/(\d+)", c.get(f"/cases/{case_id}").text)[0])
        register = c.post(f"/api/cases/{case_id}/register")
        assert register.status_code == 201, register.text
        register_id = register.json()["id"]
        roster = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", roster_xlsx(rows(2, ["HJL-XX"])))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert roster.status_code == 201, roster.text
        roster_id = roster.json()["id"]
        assert service.wait_job(c.post(f"/api/rosters/{roster_id}/issue").json()["id"])["status"] == "done"

        # (url, subject, subject id, filter it must carry, rows it must carry)
        reads: list[tuple[str, str, str, dict[str, object], int | None]] = [
            ("/cases", "case_list", "", {"status": "open"}, 1),
            ("/cases?status=all", "case_list", "", {"status": "all"}, 1),
            ("/api/cases", "case_list", "", {}, 1),
            ("/api/cases?status=open", "case_list", "", {"status": "open"}, 1),
            (f"/cases/{case_id}", "case", str(case_id), {"school_id": xx}, None),
            (f"/api/cases/{case_id}", "case", str(case_id), {"school_id": xx}, None),
            (f"/cases/{case_id}/files/{file_id}", "case", str(case_id), {"file_id": file_id}, None),
            ("/deadlines", "due_list", "", {}, None),
            ("/deadlines/export.xlsx?purpose=存档", "due_list", "", {"export": "xlsx"}, ANY),
            ("/api/due", "due_list", "", {}, ANY),
            ("/api/district/overdue", "due_list", "", {"overdue": True}, ANY),
            ("/ledgers/suspected", "ledger", "suspected", {}, ANY),
            ("/ledgers/suspected/export.xlsx?purpose=存档", "ledger", "suspected", {"export": "xlsx"}, ANY),
            ("/ledgers/suspected/provincial.xlsx?purpose=存档", "ledger", "suspected", {"export": "provincial"}, ANY),
            ("/api/ledgers/suspected", "ledger", "suspected", {}, ANY),
            ("/ledgers/children", "ledger", "children", {}, ANY),
            (f"/rosters/{roster_id}", "roster", str(roster_id), {}, 2),
            (f"/api/rosters/{roster_id}", "roster", str(roster_id), {}, 2),
            (
                f"/api/rosters/{roster_id}/receipts.xlsx?purpose=存档",
                "roster",
                str(roster_id),
                {"export": "receipts"},
                2,
            ),
            (
                f"/api/rosters/{roster_id}/print/{xx}.pdf?purpose=存档",
                "print_bundle",
                str(roster_id),
                {"school_id": xx},
                2,
            ),
            (f"/api/documents/{register_id}", "document", str(register_id), {"kind": "dropout_register"}, None),
            (f"/api/documents/{register_id}/pdf", "document", str(register_id), {"case_id": case_id}, None),
            (f"/api/documents/{register_id}/versions/1/pdf", "document", str(register_id), {"version": 1}, None),
            (f"/documents/{register_id}/pdf", "document", str(register_id), {}, None),
            (f"/documents/{register_id}/download", "document", str(register_id), {}, None),
            (f"/documents/{register_id}/pages/1.png", "document", str(register_id), {"page": 1}, None),
        ]
        for username, role in ROLES.items():
            service.login(username)
            for url, subject, subject_id, filter, count in reads:
                last = _last_id(service)
                got = c.get(url, headers={"user-agent": "test-browser/1.0"})
                assert got.status_code == 200, (username, url, got.text[:200])
                entries = _entries_after(service, last)
                assert len(entries) == 1, (username, url, [(e.via, e.subject) for e in entries])
                (e,) = entries
                assert (e.subject, e.subject_id, e.username, e.role) == (subject, subject_id, username, role), url
                assert filter.items() <= e.filter.items(), (url, e.filter)
                if count == ANY:
                    assert isinstance(e.rows, int), (username, url)
                elif count is not None:
                    assert e.rows == count, (username, url, e.rows)
                if url.startswith("/api/") and "json" in got.headers["content-type"]:
                    body = got.json()  # a list's entry counts what the answer listed
                    if isinstance(body, list):
                        assert e.rows == len(body), (username, url, e.rows)
                    elif "closed" in body:  # a ledger: its open rows and those closed this year
                        assert e.rows == len(body["rows"]) + len(body["closed"]), (username, url, e.rows)
                # the route's template, not its address: the ids are in the entry
                assert e.via.startswith("GET /") and not re.search(r"\d", e.via), e.via
                assert (e.purpose == "存档") is ("purpose=" in url), (url, e.purpose)
                assert e.client == "testclient" and e.user_agent == "test-browser/1.0" and e.user_id is not None
        # nothing in an entry is the child's personal data
        with service.state.db.session() as s:
            text = " ".join(str((e.username, e.via, e.subject_id, e.filter)) for e in s.scalars(select(AccessEntry)))
            assert "370112201203070013" not in text and "李四" not in text and "13805310002" not in text
            assert verify_access_chain(s).ok


def test_the_verify_page_records_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        code, _, _ = issue_notice(service)
        service.client.cookies.clear()
        last = _last_id(service)
        assert service.client.get(f"/v/{code}").status_code == 200
        assert service.client.get(f"/v/{code}?format=json").status_code == 200
        assert service.client.post(f"/v/{code}/verdict", follow_redirects=False).status_code == 303
        service.clock.advance(dt.timedelta(minutes=1))
        assert _entries_after(service, last) == []
