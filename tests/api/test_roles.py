"""Roles on keys: every route that signs, issues or changes state, walked with every role.

The routes come from the application itself (the OpenAPI schema and the page routers), not from a
list kept by hand. Each is called by every kind of account with the ids of one school's objects
(石河小学, WSR-SH) and a body that would succeed for the school itself. After each call the
database must show that nobody signed with another unit's key, changed another unit's case, or
started work in another unit's name; and no call may answer 5xx.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.routing import Route

from service import web
from service.accounts.errors import Forbidden
from service.accounts.models import Delegation, User
from service.accounts.scope import Scope
from service.accounts.service import create_user
from service.archive.models import Document, DocumentVersion
from service.audit.models import AuditEvent
from service.audit.service import verify_chain
from service.campaigns.models import Assignment
from service.cases.models import Attempt, Case, CaseFile
from service.jobs.models import Job
from service.rosters.models import Roster
from service.units.models import Unit
from tests.api.conftest import PASSWORD, Service, running_service, setup_licheng, signature_data_url
from tests.rosters.roster_data import rows
from tests.rosters.roster_data import xlsx as roster_xlsx

#: A 学籍 export of one child of 石河小学 (四查三比对).
XUEJI = roster_xlsx([("李空挂", "370112201705100032", "历城区王舍人街道石河小学")], ("姓名", "身份证号", "学校名称"))
#: Routes nobody owns: signing in and out, the public verification pages, and the activation links
#: (their token is the authority; a browser signed in to any account is refused there).
PUBLIC = re.compile(r"^/(api/auth/(login|logout)|login|logout|v(/.*)?|api/activation/.*|activate/.*)$")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

#: Every account of the district but the school's own, the three administrators (三员) and a
#: disabled account of the school itself, then the school's own last (it may close the case).
ADMINS = ("sysadmin", "secadmin", "auditor")
DISABLED = "wsr-sh-former"
OTHERS = ("bureau", "wsr-staff", "wsr-head", "wsr-xd-head", "hjl-staff", "hjl-xx-head", *ADMINS, DISABLED)
OWNER = "wsr-sh-head"


@dataclass(frozen=True)
class Snapshot:
    documents: dict[int, int | None]
    versions: dict[int, int]
    cases: dict[int, tuple[Any, ...]]
    jobs: dict[int, int | None]
    rosters: dict[int, int]
    delegations: dict[int, tuple[int, Any]]


def snapshot(service: Service) -> Snapshot:
    with service.state.db.session() as s:
        attempts = dict(s.execute(select(Attempt.case_id, func.count()).group_by(Attempt.case_id)).all())
        files = dict(s.execute(select(CaseFile.case_id, func.count()).group_by(CaseFile.case_id)).all())
        return Snapshot(
            documents={d.id: d.issuer_unit_id for d in s.scalars(select(Document))},
            versions=dict(
                s.execute(select(DocumentVersion.document_id, func.count()).group_by(DocumentVersion.document_id)).all()
            ),
            cases={
                c.id: (c.status, c.updated_at, attempts.get(c.id, 0), files.get(c.id, 0))
                for c in s.scalars(select(Case))
            },
            # the jobs people start (the schedule's own, every minute or two, belong to no one)
            jobs={j.id: j.unit_id for j in s.scalars(select(Job).where(Job.created_by_id.is_not(None)))},
            rosters={r.id: r.issuer_id for r in s.scalars(select(Roster))},
            delegations={d.id: (d.unit_id, d.revoked_at) for d in s.scalars(select(Delegation))},
        )


def violations(service: Service, before: Snapshot, after: Snapshot, unit_id: int | None) -> list[str]:
    """What changed in another unit's name between two snapshots (with ``unit_id`` None: anything)."""
    found = []
    for doc_id, issuer in after.documents.items():
        if doc_id not in before.documents and issuer != unit_id:
            found.append(f"document {doc_id} issued with the key of unit {issuer}")
    with service.state.db.session() as s:
        for doc_id, n in after.versions.items():
            if doc_id in before.documents and n > before.versions.get(doc_id, 0):
                signer = s.scalar(select(Assignment.unit_id).where(Assignment.document_id == doc_id))
                if signer != unit_id:
                    found.append(f"document {doc_id} signed for unit {signer}")
        for case_id, state in after.cases.items():
            if before.cases.get(case_id) not in (None, state):
                school = s.get(Case, case_id).school_id  # type: ignore[union-attr]
                if school != unit_id:
                    found.append(f"case {case_id} of unit {school} changed")
            elif case_id not in before.cases:
                school = s.get(Case, case_id).school_id  # type: ignore[union-attr]
                if school != unit_id:
                    found.append(f"case {case_id} registered at unit {school}")
    found += [f"job {j} started for unit {u}" for j, u in after.jobs.items() if j not in before.jobs and u != unit_id]
    found += [
        f"roster {r} imported for unit {u}"
        for r, u in after.rosters.items()
        if r not in before.rosters and u != unit_id
    ]
    found += [
        f"delegation {d} of unit {u} recorded or revoked"
        for d, (u, revoked) in after.delegations.items()
        if before.delegations.get(d) != (u, revoked) and u != unit_id
    ]
    return found


def _future(service: Service, days: int) -> str:
    return (
        service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date() + dt.timedelta(days=days)
    ).isoformat()


def json_bodies(service: Service, units: dict[str, int]) -> dict[str, dict[str, Any]]:
    """A body that would succeed, by the name of the route's body schema."""
    today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    return {
        "SignIn": {"signature_png": signature_data_url(), "confirm": True},
        "RevokeIn": {"reason": "发文有误"},
        "DisableIn": {"reason": "调离"},
        "RoleIn": {"role": "office_staff"},
        "ExpiryIn": {"expires_at": _future(service, 30) + "T17:00:00+08:00"},
        "CampaignIn": {"name": "新任务", "year": 2024, "deadline": _future(service, 3) + "T16:00"},
        "UserIn": {
            "username": "walker-new",
            "display_name": "新账号",
            "role": "unit_signer",
            "unit_id": units["WSR-SH"],
        },
        "TokenIn": {"name": "对接", "access": "read"},
        "DelegationIn": {"user_id": 0, "starts_on": today, "ends_on": _future(service, 7), "reason": "校长外出学习"},
        # one's own password and second factor: a wrong current password and code keep the walk signed in
        "PasswordIn": {"current_password": "not-my-password", "new_password": "another-long-secret-1"},
        "TotpConfirmIn": {"code": "000000"},
        "CaseBody": {
            "school_id": units["WSR-SH"],
            "student_name": "张三",
            "id_number": "370112201005060012",
            "sex": "男",
            "birth_date": "2010-05-06",
            "grade": "八年级",
            "guardians": [{"name": "张大", "phone": "13805310009"}],
        },
        "AttemptBody": {"date": today, "staff": "班主任", "method": "电话", "result": "未到校"},
        "ReasonBody": {"reason": "休学，批准文件 2024-1 号"},
        "ErasureBody": {"reason": "监护人书面申请删除"},
        "NoticeBody": {"kind": "return_notice", "report_by": _future(service, 7), "issuer": "school"},
        "ContactIn": {"email": "walker@school.example.cn", "channels": ["email"]},
        "UrgeIn": {"unit_ids": [units["WSR-SH"]]},
        "WebhookIn": {"url": "http://127.0.0.1:9/hook", "events": ["document.issued"]},
    }


def multipart(service: Service, path: str) -> tuple[dict[str, Any], list[tuple[str, tuple[str, bytes, str]]]]:
    """Form fields and files for the upload routes, by path."""
    sheet = roster_xlsx(rows(2, ["WSR-SH"], seed=5))
    known: dict[str, tuple[dict[str, Any], list[tuple[str, tuple[str, bytes, str]]]]] = {
        "/api/cases/{case_id}/write-off": (
            {"reason": "deceased"},
            [("files", ("证明.pdf", b"%PDF-1.7 scan", "application/pdf"))],
        ),
        "/api/rosters": (
            {"kind": "enrollment_notice", "report_by": _future(service, 20)},
            [("file", ("名单.xlsx", sheet, "application/octet-stream"))],
        ),
        "/api/units/import": ({}, [("file", ("单位.csv", "单位代码,单位名称\n".encode(), "text/csv"))]),
        "/api/assignments/{assignment_id}/report": (
            {},
            [("file", ("月报.pdf", b"%PDF-1.7 report", "application/pdf"))],
        ),
        "/rosters": (
            {"kind": "enrollment_notice", "report_by": _future(service, 20)},
            [("file", ("名单.xlsx", sheet, "application/octet-stream"))],
        ),
        "/api/compare/lists": ({"kind": "xueji"}, [("file", ("学籍.xlsx", XUEJI, "application/octet-stream"))]),
        "/compare/lists": ({"kind": "xueji"}, [("file", ("学籍.xlsx", XUEJI, "application/octet-stream"))]),
        "/api/compare/findings/{finding_id}/answer": (
            {"reason": "transfer", "note": "已转学"},
            [("evidence", ("转学证明.pdf", b"%PDF-1.7 proof", "application/pdf"))],
        ),
    }
    return known.get(path, ({}, []))


def page_forms(service: Service) -> dict[str, dict[str, str]]:
    today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    return {
        "/sign/{assignment_id}": {"signature_png": signature_data_url(), "confirm": "yes"},
        "/cases/{case_id}/attempts": {"date": today, "method": "电话", "staff": "班主任", "result": "未到校"},
        "/cases/{case_id}/notice": {"kind": "return_notice", "report_by": _future(service, 7)},
        "/cases/{case_id}/erasure": {"reason": "监护人书面申请删除"},
        "/compare/findings/{finding_id}/answer": {"reason": "at_school", "note": "已返校"},
        "/cases/new": {
            "school_id": "0",  # replaced below
            "student_name": "张三",
            "id_number": "370112201005060012",
            "sex": "男",
            "birth_date": "2010-05-06",
            "grade": "八年级",
            "guardian_name": "张大",
            "guardian_relation": "父亲",
            "guardian_phone": "13805310009",
        },
    }


def school_objects(service: Service, units: dict[str, int]) -> dict[str, int]:
    """A campaign issued to the district, and a case and a roster of 石河小学; their ids by parameter name."""
    c = service.client
    service.login("bureau")
    cid = c.post("/api/campaigns", json={"name": "责任书", "year": 2024, "deadline": _future(service, 3) + "T16:00"})
    assert cid.status_code == 201, cid.text
    campaign_id = cid.json()["id"]
    service.wait_job(c.post(f"/api/campaigns/{campaign_id}/issue").json()["id"])
    with service.state.db.session() as s:
        assignment = s.scalar(select(Assignment).where(Assignment.unit_id == units["WSR-SH"]))
        assert assignment is not None and assignment.document_id is not None
        assignment_id, document_id = assignment.id, assignment.document_id
    service.login(OWNER)
    case = c.post(
        "/api/cases",
        json={
            "school_id": units["WSR-SH"],
            "student_name": "王浩然",
            "id_number": "370112201203070013",
            "sex": "男",
            "birth_date": "2012-03-07",
            "grade": "六年级",
            "confirmed": True,
            "guardians": [{"name": "王德福", "relation": "父亲", "phone": "13805310001"}],
        },
    )
    assert case.status_code == 201, case.text
    roster = c.post(
        "/api/rosters",
        files={"file": ("名单.xlsx", roster_xlsx(rows(2, ["WSR-SH"])))},
        data={"kind": "enrollment_notice", "report_by": _future(service, 20)},
    )
    assert roster.status_code == 201, roster.text
    token_id = c.post("/api/auth/tokens", json={"name": "学籍系统"}).json()["id"]
    with service.state.db.session() as s:
        job_id = s.scalar(select(Job.id).order_by(Job.id.desc()).limit(1))
        school = s.get(Unit, units["WSR-SH"])
        clerk = create_user(
            s, username="wsr-sh-clerk", password=PASSWORD, display_name="石河小学教务", role="unit_signer", unit=school
        )
        s.commit()
        clerk_id = clerk.id
    today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    delegation = c.post(
        f"/api/units/{units['WSR-SH']}/delegations",
        json={"user_id": clerk_id, "starts_on": today, "ends_on": _future(service, 3), "reason": "校长外出"},
    )
    assert delegation.status_code == 201, delegation.text
    # notices: the school's robot (unreachable here) and a 催办 from the bureau; a webhook subscription
    service.login("bureau")
    contacts = c.put(f"/api/units/{units['WSR-SH']}/contacts", json={"wecom_webhook": "http://127.0.0.1:9/send?key=k"})
    assert contacts.status_code == 200, contacts.text
    urged = c.post(f"/api/campaigns/{campaign_id}/urge", json={"unit_ids": [units["WSR-SH"]]})
    assert urged.status_code == 202, urged.text
    subscription = c.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["document.signed"]})
    assert subscription.status_code == 201, subscription.text
    # 四查三比对: a child in 石河小学's 学籍 and not at school, a finding of the school's
    listed = c.post("/api/compare/lists", data={"kind": "xueji"}, files={"file": ("学籍.xlsx", XUEJI)})
    assert listed.status_code == 201, listed.text
    service.login(OWNER)
    finding_id = c.get("/api/compare/findings").json()["findings"][0]["id"]
    return {
        "delivery_id": urged.json()["deliveries"][0]["id"],
        "subscription_id": subscription.json()["id"],
        "delegation_id": delegation.json()["id"],
        "token_id": token_id,
        "user_id": clerk_id,
        "campaign_id": campaign_id,
        "assignment_id": assignment_id,
        "document_id": document_id,
        "case_id": case.json()["id"],
        "roster_id": roster.json()["id"],
        "unit_id": units["WSR-SH"],
        "school_id": units["WSR-SH"],
        "job_id": int(job_id or 1),
        "finding_id": finding_id,
    }


def writes(service: Service) -> list[tuple[str, str, str | None, bool]]:
    """(method, path, body schema name, is a page) for every state-changing route of the app."""
    found = []
    schema = service.client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if method.upper() not in WRITES or PUBLIC.match(path):
                continue
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            found.append((method.upper(), path, ref.rsplit("/", 1)[-1] if ref else None, False))
    api_paths = {p for _, p, _, _ in found}
    for route in [route for router in web.ROUTERS for route in router.routes]:
        if not isinstance(route, Route) or route.path in api_paths or PUBLIC.match(route.path):
            continue
        for method in sorted((route.methods or set()) & WRITES):
            found.append((method, route.path, None, True))
    return found


def test_every_state_changing_route_by_every_role_acts_only_for_the_users_own_unit(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        ids = school_objects(service, units)
        bodies = json_bodies(service, units)
        bodies["DelegationIn"]["user_id"] = ids["user_id"]
        forms = page_forms(service)
        forms["/cases/new"]["school_id"] = str(units["WSR-SH"])
        routes = writes(service)
        with service.state.db.session() as s:
            create_user(
                s,
                username=DISABLED,
                password=PASSWORD,
                display_name="石河小学前任校长",
                role="unit_signer",
                unit=s.get(Unit, units["WSR-SH"]),  # type: ignore[arg-type]
            )
            s.commit()
            # an administrator and a disabled account may change nothing in anyone's name, their
            # own unit's included (None is no unit)
            user_units: dict[str, int | None] = {
                u.username: None if u.role.endswith("_admin") or u.username == DISABLED else u.unit_id
                for u in s.scalars(select(User))
            }

        calls = refused = 0
        for username in (*OTHERS, OWNER):
            service.login(username)
            if username == DISABLED:
                # its browser was signed in when the system administrator disabled it
                with service.state.db.session() as s:
                    former = s.scalars(select(User).where(User.username == DISABLED)).one()
                    service.state.accounts.disable(s, Scope.operator(s, former.unit), former, "离任")
                    s.commit()
            for method, path, body_schema, page in routes:
                url = path
                for p in re.findall(r"{(\w+)}", path):
                    assert p in ids, f"the walk has no object for {{{p}}} in {path}: add one to school_objects"
                    url = url.replace("{" + p + "}", str(ids[p]))
                before = snapshot(service)
                if page:
                    fields, files = multipart(service, path)
                    r = c.request(
                        method,
                        url,
                        headers={"accept": "text/html"},
                        data=fields or forms.get(path, {}),
                        files=files or None,
                    )
                elif body_schema is not None:
                    assert body_schema in bodies, f"no sample body for {body_schema} ({method} {path}): add one"
                    r = c.request(method, url, json=bodies[body_schema])
                else:
                    fields, files = multipart(service, path)
                    r = c.request(method, url, data=fields, files=files or None)
                calls += 1
                assert r.status_code < 500, (username, method, url, r.status_code, r.text[:300])
                found = violations(service, before, snapshot(service), user_units[username])
                assert not found, (username, method, url, r.status_code, found)
                if username == DISABLED:
                    # signed out at once: refused, or sent to the login page
                    assert r.status_code == 401 or (page and r.url.path == "/login"), (method, url, r.status_code)
                if username != OWNER and r.status_code in (403, 404):
                    refused += 1
        assert len(routes) >= 30, routes
        assert calls == len(routes) * (len(OTHERS) + 1)
        assert refused >= 120  # the walk reached the role checks, not only the body checks


def test_a_school_signer_cannot_sign_or_issue_for_another_unit(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        ids = school_objects(service, units)
        # office staff and the bureau cannot issue the school's notice nor regenerate its 一生一表
        for user in ("wsr-staff", "bureau"):
            service.login(user)
            notice = c.post(
                f"/api/cases/{ids['case_id']}/notices",
                json={"kind": "return_notice", "report_by": _future(service, 7), "issuer": "school"},
            )
            assert notice.status_code == 403 and notice.json()["code"] == "FORBIDDEN", notice.text
            assert c.post(f"/api/cases/{ids['case_id']}/register").status_code == 403
            assert c.post(f"/api/cases/{ids['case_id']}/returned").status_code == 403
            assert c.post(f"/api/rosters/{ids['roster_id']}/issue").status_code == 403
        # every refusal is in the audit log: who, which request, why (the chain stays whole)
        with service.state.db.session() as s:
            denied = s.scalars(
                select(AuditEvent).where(AuditEvent.action == "access.denied").order_by(AuditEvent.id)
            ).all()
            names = {u.id: u.username for u in s.scalars(select(User))}
            assert [(names.get(e.actor_user_id or 0), e.object_id) for e in denied] == [
                (name, path)
                for name in ("wsr-staff", "bureau")
                for path in (
                    f"POST /api/cases/{ids['case_id']}/notices",
                    f"POST /api/cases/{ids['case_id']}/register",
                    f"POST /api/cases/{ids['case_id']}/returned",
                    f"POST /api/rosters/{ids['roster_id']}/issue",
                )
            ], [(e.actor, e.object_id) for e in denied]
            assert all(e.detail["reason"] for e in denied)
            assert verify_chain(s).ok
        # the bureau may issue a notice for the case in its own name, signed with its own key
        service.login("bureau")
        r = c.post(
            f"/api/cases/{ids['case_id']}/notices",
            json={"kind": "return_notice", "report_by": _future(service, 7), "issuer": "bureau"},
        )
        assert r.status_code == 201, r.text
        with service.state.db.session() as s:
            doc = s.get(Document, r.json()["id"])
            assert doc is not None and doc.issuer is not None and doc.issuer.code == "LCJT"

        # a school signer of one school cannot sign another school's document, even handed the object
        with service.state.db.session() as s:
            xd = s.scalar(select(User).where(User.username == "wsr-xd-head"))
            assignment = s.get(Assignment, ids["assignment_id"])
            assert xd is not None and assignment is not None
            scope = Scope.of_user(s, xd)
            try:
                service.state.campaigns.sign(s, scope, assignment, b"png")
            except Forbidden:
                pass
            else:
                raise AssertionError("a school signed another school's document")
        # the school itself signs
        service.login(OWNER)
        r = c.post(
            f"/api/assignments/{ids['assignment_id']}/sign",
            json={"signature_png": signature_data_url(), "confirm": True},
        )
        assert r.status_code == 200, r.text


def test_a_delegation_recorded_by_the_school_lets_another_account_sign_between_its_dates(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        ids = school_objects(service, units)
        sig = {"signature_png": signature_data_url(), "confirm": True}
        with service.state.db.session() as s:
            office_head = s.scalar(select(User).where(User.username == "wsr-head"))
            assert office_head is not None
            office_head_id = office_head.id

        def delegation(starts: int, ends: int) -> Any:
            return c.post(
                f"/api/units/{units['WSR-SH']}/delegations",
                json={
                    "user_id": office_head_id,
                    "starts_on": _future(service, starts),
                    "ends_on": _future(service, ends),
                    "reason": "校长外出学习",
                },
            )

        # the bureau and the office cannot record a delegation for the school
        for user in ("bureau", "wsr-staff", "wsr-head"):
            service.login(user)
            assert delegation(0, 3).status_code == 403
        # the school's signer records one starting tomorrow: not yet in force today
        service.login(OWNER)
        assert delegation(-1, 3).status_code == 422  # not in the past
        later = delegation(1, 3)
        assert later.status_code == 201, later.text
        service.login("wsr-head")
        r = c.post(f"/api/assignments/{ids['assignment_id']}/sign", json=sig)
        assert r.status_code == 403 and r.json()["message"] == "只能签署本单位的文书。"
        # one in force today: the office head signs the school's pledge with the school's key
        service.login(OWNER)
        now = delegation(0, 2).json()
        c.post(f"/api/delegations/{later.json()['id']}/revoke")
        service.login("wsr-head")
        r = c.post(f"/api/assignments/{ids['assignment_id']}/sign", json=sig)
        assert r.status_code == 200, r.text
        with service.state.db.session() as s:
            from service.audit.models import AuditEvent

            signed = s.scalar(
                select(AuditEvent).where(AuditEvent.action == "document.sign").order_by(AuditEvent.id.desc())
            )
            assert signed is not None and "WSR负责人" in signed.actor, signed and signed.actor
        # revoked by the school, it ends at once
        service.login(OWNER)
        assert c.post(f"/api/delegations/{now['id']}/revoke").json()["revoked_at"]
        listed = c.get(f"/api/units/{units['WSR-SH']}/delegations").json()
        assert {d["id"] for d in listed} >= {now["id"], later.json()["id"]}
        with service.state.db.session() as s:
            head = s.scalar(select(User).where(User.username == "wsr-head"))
            assert head is not None
            today = service.clock.now().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
            assert Scope.of_user(s, head, today=today).delegated == frozenset()
            assert Scope.of_user(s, head, today=today + dt.timedelta(days=2)).delegated == frozenset()
