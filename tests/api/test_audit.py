"""The audit administrator's reads of the audit and access logs over the API: filters by person,
unit, action and time, newest first in pages, refused to everyone else, and the Excel export
(itself audited)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from service.accounts.models import User
from service.audit import repository as audit_repository
from service.audit.models import AuditEvent
from service.audit.service import verify_chain
from tests.api.conftest import Service, running_service, setup_licheng


def _district(service: Service) -> dict[str, int]:
    """The district, a refusal, a login of an account whose name looks like a formula, and a school
    reading its case list (the access log written, as the flusher would)."""
    units = setup_licheng(service)
    c = service.client
    service.login("bureau")
    with service.state.db.session() as s:
        head_id = s.scalars(select(User.id).where(User.username == "wsr-sh-head")).one()
    assert c.post(f"/api/users/{head_id}/reset-password").status_code == 403  # an access.denied
    service.login("sysadmin")
    r = c.post(
        "/api/users",
        json={
            "username": "formula",
            "password": "a-long-password-17",
            "display_name": "=HYPERLINK(1)",
            "role": "office_staff",
            "unit_id": units["WSR"],
        },
    )
    assert r.status_code == 201, r.text
    service.login("formula", "a-long-password-17")
    service.login("wsr-sh-head")
    assert c.get("/api/cases").status_code == 200
    service.state.access.flush()
    return units


def _ids(service: Service, username: str) -> int:
    with service.state.db.session() as s:
        return s.scalars(select(User.id).where(User.username == username)).one()


def test_the_audit_administrator_filters_both_logs_by_person_unit_action_and_time(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = _district(service)
        for _ in range(20):  # enough events for two pages
            service.login("hjl-staff")
        service.login("auditor")
        everything = c.get("/api/audit/events").json()
        assert everything["total"] > 50 and everything["pages"] >= 2 and len(everything["items"]) == 50
        ids = [e["id"] for e in everything["items"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        second = c.get("/api/audit/events", params={"page": 2}).json()
        assert second["items"] and max(e["id"] for e in second["items"]) < min(ids)

        # by action (a prefix): refusals, logins, account administration
        denied = c.get("/api/audit/events", params={"action": "access.denied"}).json()["items"]
        assert [e["actor_user_id"] for e in denied] == [_ids(service, "bureau")]
        assert denied[0]["action_title"] == "拒绝访问" and "安全管理员" in denied[0]["detail"]["reason"]
        logins = c.get("/api/audit/events", params={"action": "auth."}).json()["items"]
        assert logins and all(e["action"].startswith("auth.") for e in logins)
        assert {e["action_title"] for e in logins if e["action"] == "auth.login"} == {"登录"}
        # by person: an id, a username, part of a name
        sysadmin = _ids(service, "sysadmin")
        for person in (str(sysadmin), "sysadmin", "高峰"):
            made = c.get("/api/audit/events", params={"person": person, "action": "user.create"}).json()
            assert made["total"] >= 1 and {e["actor_user_id"] for e in made["items"]} == {sysadmin}, person
        assert c.get("/api/audit/events", params={"person": "nobody-at-all"}).json()["total"] == 0
        # by unit: the office's clerk logged in for the office
        office = c.get("/api/audit/events", params={"unit_id": units["WSR"], "action": "auth.login"}).json()
        assert office["total"] >= 1 and {e["unit_id"] for e in office["items"]} == {units["WSR"]}
        # by time: today's (Beijing) has them all, tomorrow's none; a range that ends before it starts is refused
        today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        day = {"from": today.isoformat(), "to": today.isoformat()}
        assert c.get("/api/audit/events", params=day).json()["total"] == everything["total"]
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        assert c.get("/api/audit/events", params={"from": tomorrow}).json()["total"] == 0
        for bad in ({"from": "2026-13-01"}, {"to": "昨天"}, {"from": tomorrow, "to": today.isoformat()}):
            r = c.get("/api/audit/events", params=bad)
            assert r.status_code == 422 and r.json()["code"] == "AUDIT_FILTER_INVALID", r.text
            assert "时间" in r.json()["message"]
        assert c.get("/api/audit/events", params={"unit_id": "x"}).status_code == 422

        # the access log: the school's read of its case list, by person and by what was read
        reads = c.get("/api/audit/access", params={"person": "wsr-sh-head", "action": "case"}).json()
        assert reads["total"] >= 1 and {a["subject"] for a in reads["items"]} == {"case_list"}
        assert reads["items"][0]["subject_title"] == "个案列表" and reads["items"][0]["unit_id"] == units["WSR-SH"]
        assert c.get("/api/audit/access", params={"person": "sysadmin"}).json()["total"] == 0


def test_only_the_audit_administrator_reads_or_exports_the_logs(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        for username in ("bureau", "sysadmin", "secadmin", "wsr-staff", "wsr-sh-head"):
            service.login(username)
            for url in ("/api/audit/events", "/api/audit/access", "/api/audit/events/export.xlsx"):
                r = c.get(url, params={"from": "not-a-date"})  # refused before the filter is read
                assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (username, url, r.text)
                assert "只有审计管理员" in r.json()["message"]
        with service.state.db.session() as s:
            refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
            assert len(refused) == 15 and all("审计管理员" in e.detail["reason"] for e in refused)
            assert not s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.export")).all()


def test_the_export_holds_the_filtered_rows_as_text_and_is_itself_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        _district(service)
        service.login("auditor")
        shown = c.get("/api/audit/events", params={"action": "auth.login"}).json()
        r = c.get("/api/audit/events/export.xlsx", params={"action": "auth.login"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(r.content)).active
        assert sheet is not None
        rows = list(sheet.iter_rows(values_only=True))
        assert "审计日志" in str(rows[0][0]) and rows[1][:3] == ("编号", "时间（北京时间）", "人员")
        body = rows[2:]
        assert len(body) == shown["total"] and [row[0] for row in body][:50] == [e["id"] for e in shown["items"]]
        assert {row[6] for row in body} == {"auth.login"} and {row[5] for row in body} == {"登录"}
        # a name that looks like a formula stays text
        assert "'=HYPERLINK(1)" in {row[2] for row in body}
        assert not any(isinstance(v, str) and v.startswith("=") for row in body for v in row)

        access = c.get("/api/audit/access/export.xlsx", params={"person": "wsr-sh-head"})
        access_rows = list(load_workbook(io.BytesIO(access.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
        assert access_rows[1][:3] == ("编号", "时间（北京时间）", "用户名")
        assert access_rows[2:] and {row[2] for row in access_rows[2:]} == {"wsr-sh-head"}

        # each export is in the audit log (who, which log, the filter, how many rows), and the chain holds
        exports = c.get("/api/audit/events", params={"action": "audit.export"}).json()["items"]
        assert [(e["object_id"], e["detail"]["rows"]) for e in exports] == [
            ("access", len(access_rows) - 2),
            ("events", len(body)),
        ]
        assert exports[1]["detail"]["filter"] == {"action": "auth.login"}
        assert exports[0]["actor_user_id"] == _ids(service, "auditor")
        with service.state.db.session() as s:
            assert verify_chain(s).ok

        # an export at its row limit says that it holds the newest rows only
        monkeypatch.setattr(audit_repository, "EXPORT_ROWS", 3)
        capped = c.get("/api/audit/events/export.xlsx", params={"action": "auth.login"})
        capped_rows = list(load_workbook(io.BytesIO(capped.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
        assert "只含最新的 3 条" in str(capped_rows[0][0]) and len(capped_rows) == 2 + 3
        assert [row[0] for row in capped_rows[2:]] == [e["id"] for e in shown["items"][:3]]
