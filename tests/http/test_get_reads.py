"""A GET only reads: every GET route of the app (pages and API), walked as each role of the district
with ids of rows that exist, writes nothing to the database.

The app's engine reports every statement; those run while a request is being answered (marked by a
middleware around the app, so the background runner's own work is not counted) that change a table
are the failures. The one exception is the audit log (``audit_events`` and its ``audit_head``):
who was refused, and who downloaded a document or a sheet of children's data, is appended to it,
apart from the request's own transaction. Reads of children's data are only noted while answering;
the access log is written by the container's flusher thread, outside every request.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service import api, web
from service.archive.models import Document, DocumentVersion
from service.audit.models import AccessEntry
from service.campaigns.models import Assignment
from service.jobs.models import Job
from tests.api.conftest import running_service, setup_licheng
from tests.rosters.roster_data import rows
from tests.rosters.roster_data import xlsx as roster_xlsx
from tests.web.test_verification import issue_notice

#: The request being answered, in the context its handlers and dependencies run in.
ANSWERING: contextvars.ContextVar[str | None] = contextvars.ContextVar("answering", default=None)
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|UPSERT|MERGE)\b", re.IGNORECASE)
#: The audit log's append (the row and the chain's head), the documented exception.
AUDIT = re.compile(r"^\s*(INSERT INTO audit_events|UPDATE audit_head)\b", re.IGNORECASE)


class MarkRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = ANSWERING.set(f"{scope.get('method', '')} {scope.get('path', '')}")
        try:
            await self.app(scope, receive, send)
        finally:
            ANSWERING.reset(token)


def test_no_get_route_writes(tmp_path: Path) -> None:
    with running_service(tmp_path, middleware=[MarkRequests]) as service:
        c = service.client
        units = setup_licheng(service)
        service.login("bureau")
        deadline = (service.clock.now() + dt.timedelta(days=3)).isoformat()
        cid = c.post("/api/campaigns", json={"name": "责任书", "year": 2026, "deadline": deadline}).json()["id"]
        service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])
        monthly = c.post(
            "/api/campaigns",
            json={"name": "月报", "year": 2026, "recurrence": "monthly", "due_day": 20, "kinds": ["report"]},
        ).json()["id"]
        service.wait_job(c.post(f"/api/campaigns/{monthly}/issue").json()["id"])
        token = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()["token"]

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
        roster = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", roster_xlsx(rows(2, ["HJL-XX"])))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert roster.status_code == 201, roster.text

        with service.state.db.session() as s:
            assignment = s.scalar(
                select(Assignment).where(Assignment.unit_id == xx, Assignment.document_id.is_not(None))
            )
            assert assignment is not None and assignment.document_id is not None
            report = s.scalar(select(Assignment).where(Assignment.unit_id == xx, Assignment.document_id.is_(None)))
            assert report is not None
            doc = s.get(Document, assignment.document_id)
            assert doc is not None
            job_id = s.scalar(select(Job.id).where(Job.unit_id.is_not(None)).limit(1))
        code, _, notice_id = issue_notice(service)
        with service.state.db.session() as s:
            # a version not checked yet: its first scan must not be what checks it
            version = s.scalar(select(DocumentVersion).where(DocumentVersion.document_id == notice_id))
            assert version is not None
            version.verdict = None
            s.commit()

        # a month on: the recurring campaign's next period is due, and nobody has opened it yet
        service.clock.advance(dt.timedelta(days=31))
        # a signer's account waiting for activation: its link's page and answer are read by anyone
        service.login("sysadmin")
        made = c.post(
            "/api/users",
            json={"username": "xx-new-head", "display_name": "新负责人", "role": "unit_signer", "unit_id": xx},
        )
        assert made.status_code == 201, made.text
        activation = made.json()["activation"]["activation_url"].rsplit("/", 1)[-1]

        values: dict[str, Any] = {
            "token": activation,
            "unit_id": xx,
            "school_id": xx,
            "campaign_id": cid,
            "assignment_id": assignment.id,
            "document_id": doc.id,
            "job_id": job_id,
            "case_id": case_id,
            "roster_id": roster.json()["id"],
            "file_id": 1,
            "number": 1,
            "code": code,
            "key": "suspected",
            "kind": "pledge",
            "which": "root",
            "period": "2026-10",
            "log": "events",
        }
        report_values = {**values, "assignment_id": report.id, "kind": "monthly"}

        writes: list[str] = []
        audited: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            answering = ANSWERING.get()
            if answering is not None and answering.startswith("GET ") and WRITES.match(statement):
                if AUDIT.match(statement):
                    audited.append(answering)
                    return
                writes.append(f"{answering}: {statement.split(' (')[0][:80]}")

        own = [r for r in c.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
        included = [r for router in (*api.ROUTERS, *web.ROUTERS) for r in router.routes if isinstance(r, Route)]
        routes = [r for r in (*own, *included) if "GET" in (r.methods or ())]
        assert len(routes) > 60
        engine = service.state.db.engine
        event.listen(engine, "after_cursor_execute", record)
        walked = 0
        try:
            for user in (
                "bureau",
                "wsr-staff",
                "wsr-head",
                "hjl-xx-head",
                "sysadmin",
                "secadmin",
                "auditor",
                "token",
                None,
            ):
                c.cookies.clear()
                c.headers.pop("authorization", None)
                if user == "token":
                    c.headers["authorization"] = f"Bearer {token}"
                elif user is not None:
                    service.login(user)
                for route in routes:
                    fill = report_values if "reports" in route.path else values
                    url = re.sub(r"{(\w+)}", lambda m, fill=fill: str(fill[m.group(1)]), route.path)
                    for accept in ("text/html", "application/json"):
                        r = c.get(url, headers={"accept": accept}, follow_redirects=False)
                        assert r.status_code < 500, (user, url, r.status_code, r.text[:300])
                        walked += 1
        finally:
            event.remove(engine, "after_cursor_execute", record)
        assert walked > 600
        assert not writes, "\n".join(sorted(set(writes)))
        assert audited  # the listener sees the requests' statements (refusals are audited)
        service.state.access.flush()
        with service.state.db.session() as s:  # the reads were written, after the answers
            assert s.scalar(select(func.count()).select_from(AccessEntry))
