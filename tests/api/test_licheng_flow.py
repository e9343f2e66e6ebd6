"""The Licheng 2024 campaign end to end through the HTTP API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from openpyxl import load_workbook

from tests import checks
from tests.api.conftest import Service, running_service, setup_licheng, signature_data_url

if TYPE_CHECKING:
    from devtools.seaweedfs import SeaweedFS


def sign_as(service: Service, username: str, kind: str | None = None) -> dict[str, object]:
    service.login(username)
    me = service.client.get("/api/auth/me").json()
    todo = [
        a for a in service.client.get("/api/assignments", params={"todo": True}).json() if a["unit_id"] == me["unit_id"]
    ]
    assert todo, f"{username} has nothing to sign"
    signed = None
    for a in todo:
        if kind and a["kind"] != kind:
            continue
        pdf = service.client.get(f"/api/documents/{a['document_id']}/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        r = service.client.post(
            f"/api/assignments/{a['id']}/sign", json={"signature_png": signature_data_url(), "confirm": True}
        )
        assert r.status_code == 200, r.text
        signed = r.json()
    assert signed is not None
    return signed


def test_licheng_campaign(tmp_path: Path, database_url: str) -> None:
    with running_service(tmp_path, database_url) as service:
        licheng_flow(service, tmp_path)


@pytest.mark.scaleout
def test_licheng_campaign_on_the_scale_out_profile(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    """The same flow with the web app on the scale-out profile: PostgreSQL, SeaweedFS, and the
    campaign issued by a real Celery worker over Redis (DB 6; rate limits in DB 7)."""
    import os
    import uuid

    import redis

    from devtools.scaleout import CeleryWorkers
    from service.jobs.celery_runner import CeleryRunner
    from tests.databases import postgres_database

    broker = os.environ.get("DOCSIGN_TEST_BROKER_URL", "redis://127.0.0.1:6379/6")
    limits = os.environ.get("DOCSIGN_TEST_RATE_LIMIT_URL", "redis://127.0.0.1:6379/7")
    redis.Redis.from_url(broker).flushdb()
    bucket = f"licheng-{uuid.uuid4().hex[:12]}"
    seaweedfs.create_bucket(bucket)
    with (
        postgres_database() as url,
        running_service(
            tmp_path, url, broker_url=broker, rate_limit_url=limits, **seaweedfs.settings_values(bucket)
        ) as service,
    ):
        assert isinstance(service.state.jobs, CeleryRunner)
        settings = service.settings
        env = {
            **os.environ,
            **seaweedfs.settings_env(bucket),
            "DOCSIGN_DATABASE_URL": url,
            "DOCSIGN_BROKER_URL": broker,
            "DOCSIGN_RATE_LIMIT_URL": limits,
            "DOCSIGN_DATA_DIR": str(tmp_path / "worker-var"),
            "DOCSIGN_CERTS_DIR": str(settings.certs_dir),
            # the sealed database fields open only with the service's keyring
            "DOCSIGN_KEYS_DIR": str(settings.keys_folder),
            "DOCSIGN_PKI_PASSPHRASE": settings.pki_passphrase.get_secret_value(),
            "DOCSIGN_PUBLIC_BASE_URL": settings.public_base_url,
        }
        workers = CeleryWorkers(env, tmp_path / "worker.log", concurrency=1, cwd=tmp_path)
        workers.start()
        try:
            licheng_flow(service, tmp_path)
        finally:
            workers.stop()


def licheng_flow(service: Service, tmp_path: Path) -> None:
    """The Licheng 2024 campaign through the API, on whatever profile ``service`` runs."""
    c = service.client
    setup_licheng(service)

    # The bureau creates the campaign: 9月29日 16:00 (Beijing time) is tomorrow here.
    service.login("bureau")
    deadline = (service.clock.now() + dt.timedelta(days=1)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    r = c.post(
        "/api/campaigns",
        json={
            "name": "2024年控辍保学目标责任书与承诺书",
            "year": 2024,
            "deadline": deadline.replace(tzinfo=None, hour=16, minute=0, second=0, microsecond=0).isoformat(),
            "issue_date": "2024-09-25",
        },
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    # 2 offices x 教办版 + 2 区直学校 x (区直版 + 承诺书) + 6 office schools x 承诺书
    assert campaign["planned"] == 12 and campaign["deadline_local"].endswith("16:00")
    cid = campaign["id"]
    job = service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])
    assert job["status"] == "done" and job["done"] == job["total"] == 12, job
    # Issuing again issues nothing new.
    assert service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])["total"] == 0

    # Principals and directors sign, except 辛甸小学 (late, below) and 洪家楼北路小学 (never).
    for user in (
        "wsr-head",
        "hjl-head",
        "wsr-sh-head",
        "wsr-zx-head",
        "hjl-xx-head",
        "hjl-zx-head",
        "syxx-head",
        "dezx-head",
    ):
        sign_as(service, user)

    # The offices forward their schools' pledges as one batch each.
    service.login("wsr-staff")
    r = c.post(f"/api/campaigns/{cid}/forward")
    assert r.status_code == 200 and r.json()["count"] == 2
    service.login("hjl-staff")
    assert c.post(f"/api/campaigns/{cid}/forward").json()["count"] == 2

    # The deadline passes; 辛甸小学 signs late; the office forwards it.
    service.clock.advance(dt.timedelta(days=2))
    late = sign_as(service, "wsr-xd-head")
    assert late["late"] is True
    service.login("wsr-staff")
    assert c.post(f"/api/campaigns/{cid}/forward").json()["count"] == 1

    service.login("bureau")
    assert c.post(f"/api/campaigns/{cid}/receive").json()["received"] == 11
    status = c.get(f"/api/campaigns/{cid}/status").json()
    assert (status["total"], status["done"], status["on_time"], status["late"], status["missing"]) == (
        12,
        11,
        10,
        1,
        1,
    )
    assert status["by_state"]["received"] == 11 and status["deadline_passed"] is True
    groups = {g["title"]: g for g in status["groups"]}
    assert [m["unit"] for m in groups["历城区洪家楼街道教育办公室"]["missing"]] == ["历城区洪家楼北路小学"]
    assert groups["历城区王舍人街道教育办公室"]["late"] == 1
    assert groups["区直学校"]["done"] == 4
    # The overdue school escalates to its office's list.
    (escalation,) = status["escalations"]
    assert (
        escalation["unit"] == "历城区洪家楼街道教育办公室"
        and escalation["overdue"][0]["unit"] == "历城区洪家楼北路小学"
    )
    service.login("hjl-staff")
    assert [e["unit"] for e in c.get("/api/escalations").json()] == ["历城区洪家楼北路小学"]

    # The ledger says the same.
    service.login("bureau")
    r = c.get(f"/api/campaigns/{cid}/ledger.xlsx")
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content)).active
    rows = {(row[1], row[4]): row for row in ws.iter_rows(min_row=3, values_only=True)}
    assert len(rows) == 12
    assert rows[("历城区王舍人街道辛甸小学", "控辍保学承诺书")][10] == "逾期"
    assert rows[("历城区洪家楼北路小学", "控辍保学承诺书")][10] == "未签（已逾期）"
    assert rows[("历城区洪家楼北路小学", "控辍保学承诺书")][6] == "缺签（已逾期）"  # not 已下发: as the page says
    assert rows[("济南市历城区实验小学", "控辍目标责任书（区直版）")][10] == "按时"
    assert rows[("历城区王舍人街道石河小学", "控辍保学承诺书")][6] == "已接收（按时）"  # as the page says it

    # The archive: every signed PDF passes pdfsig and matches the manifest.
    r = c.get(f"/api/campaigns/{cid}/archive.zip?purpose=存档")
    assert r.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("manifest.json"))
    assert len(manifest["files"]) == 12
    nss = _nss_for(service, tmp_path)
    for entry in manifest["files"]:
        data = zf.read(entry["path"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        report = checks.pdfsig(data, nss)
        signatures = 1 if entry["unit"] == "历城区洪家楼北路小学" else 2
        assert report.count("Signature is Valid.") == signatures, (entry, report)
        assert report.count("Certificate is Trusted.") == signatures, (entry, report)

    # A signed pledge verifies on the public page by the code printed on it.
    data = zf.read(next(e["path"] for e in manifest["files"] if e["unit"] == "历城区王舍人街道石河小学"))
    code = checks.docsign_code(data)
    page = c.get(f"/v/{code}")
    if "核验中" in page.text:  # signed a moment ago: the background check has not reached it yet
        assert "立即核验" in page.text
        page = c.post(f"/v/{code}/verdict")
    assert page.status_code == 200 and "真实有效" in page.text and "历城区王舍人街道石河小学" in page.text
    assert "真实有效" in c.get(f"/v/{code}").text  # stored: the next scan reads it

    from service.audit.service import verify_chain

    with service.state.db.session() as s:
        chain = verify_chain(s)
    assert chain.ok and chain.events > 30


def _nss_for(service: Service, tmp: Path) -> str:
    root = tmp / "root.crt"
    root.write_bytes(service.state.engine.pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    return checks.nss_db(tmp / "nss", root)
