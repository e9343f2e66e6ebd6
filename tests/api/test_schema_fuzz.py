"""Schemathesis over the OpenAPI schema: generated requests to every operation, with a token of each
role, never get a 5xx. Bounded: a few derandomized examples per operation and role, so it runs in CI."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import running_service, setup_licheng

#: Examples per operation and role (DOCSIGN_FUZZ_EXAMPLES raises it for a longer run by hand).
EXAMPLES = int(os.environ.get("DOCSIGN_FUZZ_EXAMPLES", "4"))
#: Operations that end the caller's own credentials run last, so they do not cut the walk short.
LAST = ("revoke", "reset-password", "/auth/password", "/auth/logout", "/auth/totp")


@pytest.mark.timeout(900)
def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        tokens = {}
        for user in ("bureau", "wsr-staff", "wsr-sh-head"):
            service.login(user)
            tokens[user] = c.post("/api/auth/tokens", json={"name": "fuzz", "days": 30}).json()["token"]
        c.cookies.clear()
        c.headers.pop("X-CSRF-Token", None)
        schema = schemathesis.openapi.from_dict(c.get("/openapi.json").json())
        operations = sorted(
            (r.ok() for r in schema.get_all_operations()), key=lambda op: any(w in op.path for w in LAST)
        )
        assert len(operations) > 40
        failures: list[str] = []
        calls = [0]
        started = time.monotonic()

        def run(op: Any, user: str, token: str) -> None:
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy())
            def call(case: schemathesis.Case) -> None:
                kwargs = case.as_transport_kwargs(base_url="http://testserver")
                headers = {k: v for k, v in kwargs.pop("headers").items() if k.lower() != "authorization"}
                headers["Authorization"] = f"Bearer {token}"
                kwargs.pop("cookies", None)
                r = c.request(headers=headers, **kwargs)
                calls[0] += 1
                if r.status_code >= 500:
                    failures.append(f"{user} {case.method} {case.formatted_path}: {r.status_code} {r.text[:200]}")

            call()

        for op in operations:
            for user, token in tokens.items():
                run(op, user, token)
        elapsed = time.monotonic() - started
        assert not failures, failures[:10]
        assert calls[0] >= len(operations) * len(tokens), calls
        print(f"schemathesis: {calls[0]} requests over {len(operations)} operations in {elapsed:.0f} s")
