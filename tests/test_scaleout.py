"""``scripts/scaleout``: the whole profile starts (SeaweedFS, Celery workers with beat, the web
server), answers, runs the schedules through beat, and stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, select

from devtools.scaleout import children_of
from service.jobs.models import Job
from tests.databases import postgres_database

pytestmark = pytest.mark.scaleout

BROKER = os.environ.get("DOCSIGN_TEST_BROKER_URL", "redis://127.0.0.1:6379/6")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> set[int]:
    found = {pid}
    for child in children_of(pid):
        found |= _tree(child)
    return found


def test_the_profile_starts_answers_runs_schedules_and_stops_everything(tmp_path: Path) -> None:
    redis.Redis.from_url(BROKER).flushdb()
    port = _free_port()
    with postgres_database() as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.scaleout",
                "--data",
                str(tmp_path / "scaleout"),
                "--port",
                str(port),
                "--s3-port",
                str(_free_port()),
                "--broker",
                BROKER,
                "--database",
                url,
                "--workers",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            started = proc.stdout.readline()
            assert "扩展部署已在本机启动" in started, started + proc.stdout.read()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v", timeout=10) as r:
                assert r.status == 200
            # beat's first tick enqueues every schedule and a worker runs them
            engine = create_engine(url)
            deadline = time.monotonic() + 90
            kinds: set[str] = set()
            wanted = {"archive.sweep", "campaigns.open_periods", "pki.maintain"}
            while time.monotonic() < deadline and not wanted <= kinds:
                with engine.connect() as conn:
                    kinds = set(conn.scalars(select(Job.kind).where(Job.status == "done")))
                time.sleep(1)
            engine.dispose()
            assert wanted <= kinds, kinds
            processes = _tree(proc.pid)
            assert len(processes) >= 4  # the script, weed, the worker and its pool, the web server
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            assert "已全部停止" in proc.stdout.read()
            time.sleep(0.5)
            alive = [p for p in processes if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
            assert not alive, alive
        finally:
            if proc.poll() is None:  # a failed check: the script still stops what it started
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
