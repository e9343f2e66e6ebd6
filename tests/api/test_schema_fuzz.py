"""Schemathesis over the OpenAPI schema: generated requests to every operation, with a token of each
role, never get a 5xx; and stateful runs that chain calls through the links schemathesis infers
(an id from one answer used in the next request). Bounded: a few derandomized examples per operation
and role, a few short sequences per role, so it runs in CI."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Service, running_service, setup_licheng

#: Examples per operation and role (DOCSIGN_FUZZ_EXAMPLES raises it for a longer run by hand).
EXAMPLES = int(os.environ.get("DOCSIGN_FUZZ_EXAMPLES", "4"))
#: Operations that end the caller's own credentials run last, so they do not cut the walk short.
LAST = ("revoke", "reset-password", "/auth/password", "/auth/logout", "/auth/totp")


def role_tokens(service: Service) -> dict[str, str]:
    """The Licheng district, and an API token of the bureau, an office, a school and the audit
    administrator; the client is left signed out (the generated requests carry only the token)."""
    c = service.client
    setup_licheng(service)
    tokens = {}
    for user in ("bureau", "wsr-staff", "wsr-sh-head", "auditor"):  # the auditor: the audit log's reads
        service.login(user)
        tokens[user] = c.post("/api/auth/tokens", json={"name": "fuzz", "days": 30}).json()["token"]
    c.cookies.clear()
    c.headers.pop("X-CSRF-Token", None)
    return tokens


@pytest.mark.timeout(900)
def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        tokens = role_tokens(service)
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


#: Sequences per role in the stateful run, and calls per sequence.
SEQUENCES = int(os.environ.get("DOCSIGN_FUZZ_SEQUENCES", "12"))


@pytest.mark.timeout(900)
def test_chained_requests_never_get_a_server_error(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        tokens = role_tokens(service)
        schema = schemathesis.openapi.from_asgi("/openapi.json", c.app)
        Links = schema.as_state_machine()
        assert len(Links.bundles) > 5  # links were inferred: ids flow from answers into requests
        failures: list[str] = []
        called: set[str] = set()
        calls = [0]
        for user, token in tokens.items():

            class Machine(Links):  # type: ignore[misc, valid-type]
                def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
                    return {"headers": {"Authorization": f"Bearer {token}"}}  # noqa: B023

                def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
                    calls[0] += 1
                    called.add(f"{case.method} {case.path}")
                    if response.status_code >= 500:
                        failures.append(
                            f"{user} {case.method} {case.formatted_path}: {response.status_code}"  # noqa: B023
                        )

            Machine.run(
                settings=settings(
                    max_examples=SEQUENCES,
                    stateful_step_count=6,
                    derandomize=True,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        assert not failures, failures[:10]
        assert calls[0] >= SEQUENCES * len(tokens) and len(called) > 5, (calls, called)
        print(f"schemathesis (stateful): {calls[0]} requests, {len(called)} operations")
