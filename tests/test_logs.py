"""Log lines: JSON with the request and job they belong to, and never a verification code, a token,
an ID number or a phone number, whatever a message or a traceback holds."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from pathlib import Path

from sqlalchemy import select

from service import logs
from service.accounts.models import User
from service.http.deps import UserDep
from tests.api.conftest import bootstrap_bureau, running_service


def test_redact_takes_out_codes_tokens_id_and_phone_numbers() -> None:
    assert logs.redact('GET /v/ABCD-EFGH-JKMN/opened HTTP/1.1" 204') == 'GET /v/{code}/opened HTTP/1.1" 204'
    assert logs.redact("POST /v/check") == "POST /v/check"  # the upload route is not a code
    code = "7K3M-9QXZ-2B4C-6D8E-0F1G-H5J7-K9M2"
    assert logs.redact(f"notice {code} issued") == "notice [验证码] issued"
    assert logs.redact(f"code={code.replace('-', '')}.") == "code=[验证码]."
    assert logs.redact("Authorization: Bearer dsk_4f9a8b7c6d5e4f3a") == "Authorization: Bearer [已隐去]"
    assert logs.redact("/api?token=abc123&x=1") == "/api?token=[已隐去]&x=1"
    assert logs.redact("学生 370112201203070013 的个案") == "学生 [身份证号] 的个案"
    assert logs.redact("id 37011220120307001X") == "id [身份证号]"
    assert logs.redact("监护人 13805310001，座机 0531-88120000") == "监护人 [手机号]，座机 0531-88120000"
    # numbers that are neither stay: a job id, a size, a 19-digit serial
    assert logs.redact("job 1234 wrote 13805310001234 bytes") == "job 1234 wrote 13805310001234 bytes"


def test_json_lines_carry_the_request_and_the_job_and_no_personal_data() -> None:
    out = io.StringIO()
    logs.configure(json_lines=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    try:
        log = logging.getLogger("service.test")
        request = logs.request_id.set("req-123456")
        job = logs.job_id.set(42)
        try:
            log.warning("could not send to %s about %s", "13805310001", "370112201203070013")
            try:
                raise ValueError("bad code 7K3M-9QXZ-2B4C-6D8E-0F1G-H5J7-K9M2 in /v/ABCD-EFGH-JKMN")
            except ValueError:
                log.exception("failed")
        finally:
            logs.job_id.reset(job)
            logs.request_id.reset(request)
        contextvars.Context().run(log.warning, "outside a request")  # no request, no job: nothing of theirs
    finally:
        logs.configure(json_lines=False, level=logging.WARNING)
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "could not send to [手机号] about [身份证号]"
    assert (first["level"], first["logger"], first["request_id"], first["job_id"]) == (
        "warning",
        "service.test",
        "req-123456",
        42,
    )
    assert "Traceback" in second["error"] and "/v/{code}" in second["error"] and "/v/ABCD" not in second["error"]
    assert "[验证码]" in second["error"] and "7K3M" not in second["error"]
    assert "request_id" not in third and "job_id" not in third and third["time"].endswith("+00:00")


def test_the_lines_of_a_signed_in_request_name_its_user_and_its_request(tmp_path: Path) -> None:
    """The user is found by a dependency that runs in a thread of its own; the lines the route then
    writes (in another thread) carry the user's id and the request's id as answered in the header,
    and nothing of them stays for a line written after the request."""
    log = logging.getLogger("service.test")

    def route(user: UserDep) -> dict[str, int]:
        log.warning("inside the route")
        return {"id": user.id}

    out = io.StringIO()
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        service.client.app.router.add_api_route("/api/test-log-line", route)  # type: ignore[attr-defined]
        service.login("bureau")
        logs.configure(json_lines=True)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(out)
        try:
            r = service.client.get("/api/test-log-line")
            log.warning("after the request")
        finally:
            logs.configure(json_lines=False, level=logging.WARNING)
        with service.state.db.session() as s:
            uid = s.scalars(select(User.id).where(User.username == "bureau")).one()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    inside, after = (next(x for x in lines if x["message"] == m) for m in ("inside the route", "after the request"))
    assert r.json() == {"id": uid}
    assert inside["user_id"] == uid and inside["request_id"] == r.headers["x-request-id"]
    assert "user_id" not in after and "request_id" not in after
