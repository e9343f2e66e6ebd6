"""``scripts/scaleout``: the whole profile starts (SeaweedFS, Celery workers with beat, the web
server), answers, runs the schedules through beat, restarts a worker killed outright (its orphaned
pool processes gone), and stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            started = proc.stdout.readline()
            assert "扩展部署已在本机启动" in started, started + proc.stdout.read()
            stdout = proc.stdout
            threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
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
            # a worker killed outright (OOM, kill -9) leaves its pool behind; the script clears it and
            # starts a new worker
            (worker,) = [p for p in children_of(proc.pid) if b"worker" in _cmdline(p)]
            pool = children_of(worker)
            assert pool
            os.kill(worker, signal.SIGKILL)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not any("工作进程已重启" in line for line in lines):
                time.sleep(0.5)
            assert any("工作进程意外退出" in line for line in lines), lines
            assert any("工作进程已重启" in line for line in lines), lines
            assert not [p for p in pool if _alive(p)], "the dead worker's pool processes were left running"
            (again,) = [p for p in children_of(proc.pid) if b"worker" in _cmdline(p)]
            assert again != worker and children_of(again)
            processes = _tree(proc.pid) | set(pool)
            assert len(processes) >= 4  # the script, weed, the worker and its pool, the web server
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            time.sleep(0.5)
            assert any("已全部停止" in line for line in lines), lines
            alive = [p for p in processes if _alive(p)]
            assert not alive, alive
        finally:
            if proc.poll() is None:  # a failed check: the script still stops what it started
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
