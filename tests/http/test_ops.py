"""What an operator sees: /readyz names what is wrong (a store that cannot be written, no broker,
no worker) and /metrics counts requests and scans by route and outcome, and reads the work's
state, to this machine or a token's holder only, never holding a verification code."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis
from fastapi.testclient import TestClient

from service.jobs.celery_runner import TICK_KEY
from tests.api.conftest import bootstrap_bureau, running_service
from tests.web.test_verification import issue_notice

#: Its own Redis DB (the scale-out tests use 6 and 7, and 8 after this file, never at once).
BROKER = "redis://127.0.0.1:6379/8"


def test_readyz_names_a_store_that_cannot_be_written(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        r = service.client.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready"
        names = {c["name"] for c in body["checks"]}
        assert {"数据库", "归档存储（documents）", "文书转换（LibreOffice）"} <= names
        assert service.client.get("/healthz").json()["status"] == "ok"
        # the case files store's folder is a file now: not ready, and it says which and why
        root = service.state.stores["files"].root
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_bytes(b"not a folder")
        r = service.client.get("/readyz")
        assert r.status_code == 503 and r.json()["code"] == "NOT_READY"
        assert "归档存储（files）" in r.json()["message"] and "不是文件夹" in r.json()["message"]
        assert [c["name"] for c in r.json()["checks"] if not c["ok"]] == ["归档存储（files）"]


def test_readyz_in_the_scale_out_profile_needs_the_broker_and_a_worker(tmp_path: Path) -> None:
    broker = redis.Redis.from_url(BROKER)
    broker.flushdb()
    try:
        with running_service(tmp_path / "up", broker_url=BROKER) as service:
            r = service.client.get("/readyz")
            assert r.status_code == 503
            (bad,) = [c for c in r.json()["checks"] if not c["ok"]]
            assert bad["name"] == "后台工作进程" and "从未运行" in bad["message"]
            broker.set(TICK_KEY, str(time.time() - 600))  # a worker ran the tick ten minutes ago
            assert "600 秒前" in service.client.get("/readyz").json()["message"]
            broker.set(TICK_KEY, str(time.time()))  # and now
            assert service.client.get("/readyz").status_code == 200
        with running_service(tmp_path / "down", broker_url="redis://127.0.0.1:1/8") as service:
            r = service.client.get("/readyz")
            assert r.status_code == 503
            assert {c["name"] for c in r.json()["checks"] if not c["ok"]} == {
                "消息队列（Celery broker）",
                "后台工作进程",
            }
    finally:
        broker.flushdb()


def test_metrics_count_routes_and_scans_and_read_the_work_without_a_code(tmp_path: Path) -> None:
    with running_service(tmp_path, metrics_token="m" * 40) as service:  # type: ignore[arg-type]
        bootstrap_bureau(service)
        code, _pdf, _ = issue_notice(service)
        c = service.client
        assert c.get(f"/v/{code}", headers={"accept": "application/json"}).json()["found"]
        assert c.get("/v/ABCD-EFGH-JKMN", headers={"accept": "application/json"}).status_code == 404
        r = c.get("/metrics")
        assert r.status_code == 403 and r.json()["code"] == "METRICS_FORBIDDEN"
        r = c.get("/metrics", headers={"authorization": "Bearer " + "m" * 40})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert 'docsign_http_requests_total{method="GET",route="/v/{code}",status="200"}' in text
        assert 'docsign_http_requests_total{method="GET",route="/v/{code}",status="404"}' in text
        assert 'docsign_verify_lookups_total{outcome="not_found"}' in text
        assert 'docsign_http_request_seconds_bucket{le="0.5",route="/v/{code}"}' in text
        assert "docsign_verification_backlog" in text and "docsign_job_slices_stalled 0.0" in text
        assert "docsign_process_start_time_seconds" in text
        assert 'docsign_document_versions_total{event="issued"} 1.0' in text  # the one notice
        assert code not in text and code.replace("-", "") not in text  # codes never become labels
    with running_service(tmp_path / "open") as service:
        # without a token: this machine only
        assert service.client.get("/metrics").status_code == 200
        outside = TestClient(service.client.app, client=("203.0.113.5", 40000))
        assert outside.get("/metrics").status_code == 403
