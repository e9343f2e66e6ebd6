"""Jobs by lease: two processes on one database never steal each other's work, and a job whose
process was killed is resumed by another once its lease has expired."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text, update

from service.archive.models import Document, DocumentVersion
from service.clock import wall_now
from service.container import Services
from service.db.session import Database
from service.documents.convert import Converter
from service.jobs.models import Job
from service.jobs.runner import EmbeddedRunner
from service.rosters.models import PrintBundle, RosterEntry
from service.settings import Settings
from service.storage.local import LocalArchive
from tests.conftest import TEST_KDF_ROUNDS, built_services
from tests.databases import postgres_database
from tests.rosters.roster_data import rows, xlsx

DOCSIGN = str(Path(sys.executable).with_name("docsign"))


@pytest.fixture()
def services(tmp_path: Path, settings: Settings, converter: Converter) -> Iterator[Services]:
    """Two runners share one PostgreSQL database here (the server's profile for several processes)."""
    with postgres_database() as url, built_services(tmp_path, settings, converter, url) as built:
        yield built


def test_a_live_lease_is_not_taken_and_an_expired_one_is(services: Services) -> None:
    other = EmbeddedRunner(services.db, workers=1, lease=dt.timedelta(seconds=30), poll=dt.timedelta(seconds=1))
    with services.db.session() as s:
        job = Job(
            kind="campaigns.release_claims",
            params={},
            status="running",
            lease_owner="another-host:1:ab",
            lease_expires_at=wall_now() + dt.timedelta(seconds=30),
            attempts=1,
        )
        s.add(job)
        s.commit()
        assert other.claim() == []  # alive elsewhere: left alone
        s.execute(update(Job).where(Job.id == job.id).values(lease_expires_at=wall_now() - dt.timedelta(seconds=1)))
        s.commit()
    other.bind(services.job_context)
    assert other.claim() == [job.id]  # its process died: taken over and run to the end
    assert other.wait(job.id, timeout=60)
    other.shutdown()
    with services.db.session() as s:
        ended = s.get(Job, job.id)
        assert ended is not None and (ended.status, ended.attempts, ended.lease_owner) == ("done", 2, None)


@contextmanager
def _server(home: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(home / f"server-{port}.log", "w")  # noqa: SIM115 - the server writes to it until it stops
    proc = subprocess.Popen(
        [DOCSIGN, "serve", "--no-demo", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("server did not start:\n" + (home / f"server-{port}.log").read_text())
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a loaded machine: the test's checks are done by now
                proc.kill()
                proc.wait(timeout=30)
        log.close()


def _job(db: Database, job_id: int) -> Job:
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_servers_share_jobs_by_lease(tmp_path: Path) -> None:
    """Two servers on one database: the job runs in one (the lease holds the other off while it is
    alive), and when that one is killed mid-roster the other takes it over and ends it, issuing
    nothing twice. Both are up before the job exists, so the roster needs only to outlast the kill."""
    notices = 250
    with postgres_database() as url:
        env = {
            **os.environ,
            "DOCSIGN_DATA_DIR": str(tmp_path / "var"),
            "DOCSIGN_CERTS_DIR": str(tmp_path / "certs"),
            "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
            "DOCSIGN_DATABASE_URL": url,
            "DOCSIGN_JOB_LEASE_SECONDS": "4",
            "DOCSIGN_JOB_POLL_SECONDS": "0.5",
            "DOCSIGN_MERGE_CHUNK_SIZE": "20",
            "DOCSIGN_LOGIN_RATE_PER_MINUTE": "1000",
        }
        subprocess.run([DOCSIGN, "init"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([DOCSIGN, "demo"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
        db = Database(Settings(data_dir=tmp_path / "var", database_url=url))
        try:
            with _server(tmp_path, env) as (first, first_url), _server(tmp_path, env) as (second, _):
                client = httpx.Client(base_url=first_url, timeout=60)
                assert client.post(
                    "/api/auth/login", json={"username": "bureau", "password": "kcbx-demo-2024"}
                ).is_success
                client.headers["X-CSRF-Token"] = client.cookies["docsign_csrf"]
                report_by = (dt.date.today() + dt.timedelta(days=60)).isoformat()
                r = client.post(
                    "/api/rosters",
                    files={"file": ("名单.xlsx", xlsx(rows(notices, ["WSR-SH", "WSR-XD", "SYXX"])))},
                    data={"kind": "enrollment_notice", "report_by": report_by},
                )
                assert r.status_code == 201, r.text
                roster_id = r.json()["id"]
                job_id = client.post(f"/api/rosters/{roster_id}/issue").json()["id"]
                _until(lambda: _job(db, job_id).done >= 20, 180, "the first notices")
                owner = _job(db, job_id).lease_owner or ""
                holder, other = (first, second) if f":{first.pid}:" in owner else (second, first)
                assert f":{holder.pid}:" in owner, owner
                time.sleep(1)  # the other server polls twice meanwhile, and keeps off
                job = _job(db, job_id)
                assert job.status == "running" and job.lease_owner == owner and job.attempts == 1
                assert job.done < notices, "the roster ended before its server could be killed"
                print(f"\nthe holding server killed at {job.done}/{notices} notices")

                holder.send_signal(signal.SIGKILL)  # the holding server dies mid-roster
                holder.wait(timeout=30)
                _until(lambda: f":{other.pid}:" in (_job(db, job_id).lease_owner or ""), 60, "the takeover")
                _until(lambda: _job(db, job_id).status in ("done", "failed"), 600, "the job to end")
                job = _job(db, job_id)
                assert (job.status, job.attempts) == ("done", 2), job.error_message
        finally:
            with db.session() as s:
                entries = s.scalars(select(RosterEntry)).all()
                docs = s.scalars(select(Document)).all()
                versions = set(s.scalars(select(DocumentVersion.sha256)))
                bundles = set(s.scalars(select(PrintBundle.sha256)))
                pending = s.scalar(text("SELECT count(*) FROM archive_pending"))
            db.dispose()
        assert len(entries) == notices and all(e.document_id for e in entries)
        assert len(docs) == notices and len({d.code_hash for d in docs}) == notices
        assert len({e.document_id for e in entries}) == notices
        # nothing in the archive that no row points to, and nothing in flight
        archived = set(LocalArchive(tmp_path / "var" / "archive").keys())
        assert archived == versions | bundles and pending == 0
        assert len(bundles) == 3
