"""Ids beyond the 64-bit range name nothing: 404 or 422 in Chinese on every route, never a 500."""

from __future__ import annotations

import re
from pathlib import Path

from service import web
from tests.api.conftest import bootstrap_bureau, running_service


def test_ids_outside_the_64_bit_range_answer_404_or_422(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        c = service.client
        service.login("bureau")
        paths = [(p, [m.upper() for m in ms]) for p, ms in c.get("/openapi.json").json()["paths"].items()]
        paths += [(r.path, sorted(r.methods - {"HEAD"})) for router in web.ROUTERS for r in router.routes]
        checked = 0
        for path, methods in paths:
            params = re.findall(r"{(\w+)}", path)
            if not any(p.endswith(("_id", "number")) for p in params):
                continue
            for big in (2**63, 2**64 + 7, -(2**63) - 1):
                url = path
                for p in params:
                    url = url.replace("{" + p + "}", str(big) if p.endswith(("_id", "number")) else "x")
                for method in methods:
                    r = c.request(method, url, json={}, headers={"accept": "application/json"})
                    assert r.status_code in (404, 422), (method, url, r.status_code, r.text[:200])
                    assert r.json()["code"] in ("NOT_FOUND", "INVALID_INPUT"), r.text
                    checked += 1
        assert checked > 60
