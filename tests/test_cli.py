"""The docsign command as a user runs it: a real process, real files, exit statuses."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from sqlalchemy import select

from service.archive.models import Document, DocumentVersion
from service.audit.models import AuditEvent
from service.container import Services
from service.rosters.models import Roster, RosterEntry
from service.settings import Settings
from tests import checks
from tests.api.conftest import Service, running_service, setup_licheng, signature_data_url
from tests.conftest import TEST_KDF_ROUNDS
from tests.documents.test_sign import handwriting
from tests.rosters.roster_data import rows, xlsx
from tests.validators import bouncy_castle

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")

DOCSIGN = str(Path(sys.executable).with_name("docsign"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Each test's own folder: what one test initialises or issues is never another's start."""
    return tmp_path


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``docsign ARGS`` in ``home``, with the tests' environment and ``env`` on top of it."""
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        "COLUMNS": "120",
        **(env or {}),
    }
    return subprocess.run([DOCSIGN, *args], cwd=home, env=env, capture_output=True, text=True, timeout=300)


def test_init_issue_verify(home: Path) -> None:
    init = run(home, "init")
    assert init.returncode == 0 and "本地证书中心已创建" in init.stdout
    assert "已存在，未改动" in run(home, "init").stdout

    example = run(home, "templates", "--example", "enrollment_notice")
    assert example.returncode == 0
    fields = json.loads(example.stdout)
    assert fields["guardian_name"] == "张建国"
    (home / "fields.json").write_text(example.stdout, encoding="utf-8")

    issued = run(home, "issue", "enrollment_notice", "--data", "fields.json", "--out", "notice.pdf")
    assert issued.returncode == 0, issued.stderr
    assert "已签发《义务教育入学通知书》" in issued.stdout
    url = next(line.split("：", 1)[1] for line in issued.stdout.splitlines() if line.startswith("验证网址"))
    pdf = (home / "notice.pdf").read_bytes()
    assert checks.qr_codes(pdf) == [url]
    archived = list((home / "var" / "archive").rglob("*.pdf"))
    assert len(archived) == 1 and b"%PDF" not in archived[0].read_bytes()  # sealed at rest

    # the issued notice is recorded, so its QR code verifies on the service's page
    from service.archive.service import find_by_code
    from service.db.session import Database
    from service.settings import Settings
    from service.storage import open_store

    assert open_store(Settings(data_dir=home / "var"), "documents").get(archived[0].stem) == pdf
    db = Database(Settings(data_dir=home / "var"))
    with db.session() as s:
        doc = find_by_code(s, url.rsplit("/", 1)[1])
        assert doc is not None and doc.public["issuer"] == "济南市历城区教育和体育局"
    db.dispose()

    verified = run(home, "verify", "notice.pdf")
    assert verified.returncode == 0 and "真实有效" in verified.stdout
    assert len(bouncy_castle(pdf, home / "judged")) == 2  # the issuer's signature and its timestamp
    as_json = json.loads(run(home, "verify", "notice.pdf", "--json").stdout)
    assert as_json["genuine"] is True and as_json["signatures"][0]["signer"] == "济南市历城区教育和体育局"

    (home / "tampered.pdf").write_bytes(pdf + b"\nappended\n")
    tampered = run(home, "verify", "tampered.pdf")
    assert tampered.returncode == 1
    assert "不是真实有效的文书" in tampered.stdout and "TRAILING_DATA" in tampered.stdout


def test_batch_and_later_signature(home: Path) -> None:
    run(home, "init")
    fields = json.loads(run(home, "templates", "--example", "pledge").stdout)
    rows = [
        {**fields, "school_name": name, "principal_name": p}
        for name, p in (("历城区王舍人街道石河小学", "赵明"), ("历城区王舍人街道辛甸小学", "钱红"))
    ]
    (home / "pledges.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    batch = run(home, "issue", "pledge", "--data", "pledges.json", "--out", "pledges", "--issuer", "bureau")
    assert batch.returncode == 0, batch.stderr
    files = sorted((home / "pledges").glob("*.pdf"))
    assert len(files) == 2
    (home / "sig.png").write_bytes(handwriting())
    signed = run(
        home,
        "sign",
        str(files[0]),
        "--unit",
        "school-shihe",
        "--name",
        "历城区王舍人街道石河小学",
        "--signature",
        "sig.png",
        "--out",
        "signed.pdf",
    )
    assert signed.returncode == 0, signed.stderr
    verified = run(home, "verify", "signed.pdf")
    assert verified.returncode == 0 and verified.stdout.count("✓") == 2
    # the issuer's and the principal's signatures and their timestamps, in Bouncy Castle
    assert len(bouncy_castle((home / "signed.pdf").read_bytes(), home / "judged")) == 4


def test_bad_input_is_explained_without_a_traceback(home: Path) -> None:
    (home / "bad.json").write_text('{"guardian_name": "张三"', encoding="utf-8")
    broken = run(home, "issue", "enrollment_notice", "--data", "bad.json", "--out", "x.pdf")
    assert broken.returncode == 2
    assert "[FIELDS_INVALID]" in broken.stderr and "不是有效的 UTF-8 JSON" in broken.stderr
    assert "Traceback" not in broken.stderr + broken.stdout
    no_signature = run(home, "sign", "notice.pdf", "--unit", "x", "--signature", "no-such.png", "--out", "y.pdf")
    assert no_signature.returncode == 2 and "Traceback" not in no_signature.stderr
    missing = run(home, "verify", "no-such.pdf")
    assert missing.returncode == 2 and "找不到文件" in missing.stderr
    unknown = run(home, "issue", "admission", "--data", "bad.json", "--out", "x.pdf")
    assert unknown.returncode == 2 and "[UNKNOWN_TEMPLATE]" in unknown.stderr
    assert not (home / "x.pdf").exists()
    queues = run(home, "worker", "--queues", "batch,reports", env={"DOCSIGN_BROKER_URL": "redis://127.0.0.1:6379/6"})
    assert queues.returncode == 2 and "应为 batch、upkeep 或 batch,upkeep" in queues.stderr, queues.stderr


def test_templates_lists_every_document(home: Path) -> None:
    listing = run(home, "templates")
    assert listing.returncode == 0
    for key in (
        "responsibility_office",
        "responsibility_direct",
        "pledge",
        "enrollment_notice",
        "return_notice",
        "deadline_return_notice",
        "dropout_register",
    ):
        assert key in listing.stdout
    assert "身份证号" in listing.stdout


def test_serve_starts_with_the_demo_district_and_audit_verify(home: Path) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "serve-var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "COLUMNS": "160",
    }
    proc = subprocess.Popen(
        [DOCSIGN, "serve", "--demo", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("server did not start")
        body = json.dumps({"username": "bureau", "password": "kcbx-demo-2024"}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["unit_name"] == "济南市历城区教育和体育局"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v", timeout=10) as r:
            assert "文书验真" in r.read().decode()
        # a scan of a code, a request id from the proxy: the log has the id and not the code
        scan = urllib.request.Request(
            f"http://127.0.0.1:{port}/v/QWER-TYUP-ASDF?phone=13805310001", headers={"x-request-id": "proxy-req-0001"}
        )
        try:
            urllib.request.urlopen(scan, timeout=10)
        except urllib.error.HTTPError as missing:  # not found, and still logged
            assert missing.code == 404 and missing.headers["x-request-id"] == "proxy-req-0001"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert "已载入演示区县" in output and "bureau" in output and "wsr-sh-head" in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [e for e in lines if e["logger"] == "uvicorn.access"]
    assert access and all({"time", "level", "message"} <= e.keys() for e in lines)
    (scanned,) = [e for e in access if e.get("request_id") == "proxy-req-0001"]
    assert "/v/{code}" in scanned["message"] and "[手机号]" in scanned["message"]
    assert "QWER-TYUP-ASDF" not in output and "13805310001" not in output
    env_audit = {"DOCSIGN_DATA_DIR": str(home / "serve-var")}
    audit = subprocess.run(
        [DOCSIGN, "audit", "verify"],
        cwd=home,
        env={**os.environ, **env_audit},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0 and "审计日志完整" in audit.stdout
    assert "最近的检查点" in audit.stdout  # the server wrote one as it stopped


# --- the command line and the API do the same thing the same way --------------------------------


def _cli(service_settings: Settings, *args: str, faketime: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(service_settings.data_dir),
        "DOCSIGN_CERTS_DIR": str(service_settings.certs_dir),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PUBLIC_BASE_URL": service_settings.public_base_url,
        "DOCSIGN_PKI_PASSPHRASE": service_settings.pki_passphrase.get_secret_value(),
        "COLUMNS": "160",
    }
    command = [DOCSIGN, *args]
    if faketime is not None:
        env["TZ"] = "UTC"
        command = ["faketime", faketime, *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _record_of(service: Service, document_id: int) -> dict[str, Any]:
    """What the service wrote about a document: its versions, its audit entries, its dates."""
    with service.state.db.session() as s:
        doc = s.get(Document, document_id)
        assert doc is not None
        versions = s.scalars(
            select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.number)
        ).all()
        audit = s.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "document", AuditEvent.object_id == str(doc.id))
        ).all()
        return {
            "versions": [(v.number, v.event, v.signer_unit_id) for v in versions],
            "audit": [
                (e.action, e.unit_id, sorted(k for k in e.detail if k in ("kind", "sha256", "unit"))) for e in audit
            ],
            "issued_day": doc.issued_at.astimezone(SHANGHAI).date(),
            "issue_date": doc.fields.get("issue_date"),
            "sha256": doc.current_sha256,
        }


def test_cli_issue_records_what_the_api_records(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
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
        ).json()
        today = service.clock.now().astimezone(SHANGHAI).date()
        report_by = (today + dt.timedelta(days=7)).isoformat()
        r = c.post(f"/api/cases/{case['id']}/notices", json={"kind": "return_notice", "report_by": report_by})
        assert r.status_code == 201, r.text
        by_api = _record_of(service, r.json()["id"])

        fields = dict(json.loads(_cli(service.settings, "templates", "--example", "return_notice").stdout))
        fields.update(issuer_name="历城区王舍人街道石河小学", issue_date=today.isoformat(), report_by=report_by)
        (tmp_path / "fields.json").write_text(json.dumps(fields, ensure_ascii=False), encoding="utf-8")
        out = _cli(
            service.settings,
            "issue",
            "return_notice",
            "--data",
            str(tmp_path / "fields.json"),
            "--out",
            str(tmp_path / "n.pdf"),
        )
        assert out.returncode == 0, out.stderr
        with service.state.db.session() as s:
            cli_doc = s.scalar(select(Document.id).where(Document.case_id.is_(None)).order_by(Document.id.desc()))
        assert cli_doc is not None
        by_cli = _record_of(service, cli_doc)

        for record in (by_api, by_cli):
            assert record["versions"] == [(1, "issued", units["WSR-SH"])]
            assert record["audit"] == [("document.issue", units["WSR-SH"], ["kind", "sha256"])]
            assert record["issued_day"] == today and record["issue_date"] == today.isoformat()
        assert (tmp_path / "n.pdf").read_bytes() == service.state.archive.documents.get(by_cli["sha256"])


def test_cli_sign_records_what_the_api_records(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("bureau")
        deadline = (service.clock.now() + dt.timedelta(days=2)).astimezone(SHANGHAI).replace(tzinfo=None)
        cid = c.post(
            "/api/campaigns",
            json={"name": "2024年责任书", "year": 2024, "deadline": deadline.isoformat(timespec="minutes")},
        ).json()["id"]
        assert service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])["status"] == "done"
        pledges = {
            a["unit_name"]: a for a in c.get(f"/api/campaigns/{cid}/assignments").json() if a["kind"] == "pledge"
        }
        shihe, xindian = pledges["历城区王舍人街道石河小学"], pledges["历城区王舍人街道辛甸小学"]

        service.login("wsr-sh-head")
        r = c.post(
            f"/api/assignments/{shihe['id']}/sign", json={"signature_png": signature_data_url(), "confirm": True}
        )
        assert r.status_code == 200, r.text
        by_api = _record_of(service, shihe["document_id"])

        service.login("wsr-xd-head")
        (tmp_path / "pledge.pdf").write_bytes(c.get(f"/api/documents/{xindian['document_id']}/pdf").content)
        (tmp_path / "sig.png").write_bytes(handwriting())
        out = _cli(
            service.settings,
            "sign",
            str(tmp_path / "pledge.pdf"),
            "--unit",
            "unit-wsr-xd",
            "--signature",
            str(tmp_path / "sig.png"),
            "--out",
            str(tmp_path / "signed.pdf"),
        )
        assert out.returncode == 0, out.stderr
        by_cli = _record_of(service, xindian["document_id"])

        bureau = by_api["versions"][0][2]
        assert by_api["versions"] == [(1, "issued", bureau), (2, "signed", units["WSR-SH"])]
        assert by_cli["versions"] == [(1, "issued", bureau), (2, "signed", units["WSR-XD"])]
        for record, school in ((by_api, units["WSR-SH"]), (by_cli, units["WSR-XD"])):
            assert record["audit"][0][0] == "document.issue"
            assert record["audit"][-1] == ("document.sign", school, ["sha256", "unit"])
        assert (tmp_path / "signed.pdf").read_bytes() == service.state.archive.documents.get(by_cli["sha256"])


def test_cli_roster_import_at_one_in_the_morning_is_dated_that_day(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        sheet = xlsx(rows(6, ["WSR-SH"]))
        (tmp_path / "名单.xlsx").write_bytes(sheet)
        real_today = service.clock.now().astimezone(SHANGHAI).date()
        report_by = (real_today + dt.timedelta(days=30)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", sheet)},
            data={"kind": "enrollment_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        # The same sheet through the command line, at 01:00 Beijing time two days on (17:00 UTC the day before).
        day = real_today + dt.timedelta(days=2)
        at = f"{day - dt.timedelta(days=1)} 17:00:00"
        imported = _cli(
            service.settings,
            "roster",
            "import",
            str(tmp_path / "名单.xlsx"),
            "--issuer",
            "WSR-SH",
            "--report-by",
            report_by,
            faketime=at,
        )
        assert imported.returncode == 0, imported.stderr
        past = _cli(
            service.settings,
            "roster",
            "import",
            str(tmp_path / "名单.xlsx"),
            "--issuer",
            "WSR-SH",
            "--report-by",
            real_today.isoformat(),
        )
        assert past.returncode == 2 and "报到截止日期应晚于今天" in past.stderr
        roster_id = imported.stdout.split("已导入名单 ", 1)[1].split("：", 1)[0]
        issued = _cli(service.settings, "notices", "issue", "--roster", roster_id, faketime=at)
        assert issued.returncode == 0, issued.stderr
        with service.state.db.session() as s:
            api_roster, cli_roster = s.scalars(select(Roster).order_by(Roster.id)).all()
            assert (api_roster.issue_date, cli_roster.issue_date) == (real_today, day)
            assert (api_roster.rows, api_roster.report_by) == (cli_roster.rows, cli_roster.report_by)
            imports = s.scalars(
                select(AuditEvent).where(AuditEvent.action == "roster.import").order_by(AuditEvent.id)
            ).all()
            assert [(e.object_id, sorted(e.detail)) for e in imports] == [
                (str(api_roster.id), ["file", "kind", "rows", "skipped"]),
                (str(cli_roster.id), ["file", "kind", "rows", "skipped"]),
            ]
            assert [e.unit_id for e in imports] == [api_roster.issuer_id, cli_roster.issuer_id]
            issued = s.scalars(
                select(Document)
                .join(RosterEntry, RosterEntry.document_id == Document.id)
                .where(RosterEntry.roster_id == cli_roster.id)
            ).all()  # fields are sealed in the row: read through the model
            assert len(issued) == 6 and {d.fields["issue_date"] for d in issued} == {day.isoformat()}


def test_a_notice_issued_now_is_genuine_in_twelve_years_with_the_scheduled_upkeep_run_by_hand(tmp_path: Path) -> None:
    """The command line under ``faketime``: the PKI's upkeep and the archive timestamp, run years on,
    keep a notice issued today genuine at +12 years; without them it needs an archive timestamp and
    is not called a forgery."""
    # the command line alone: no server runs its own schedule meanwhile
    settings = Settings(
        data_dir=tmp_path / "var",
        certs_dir=tmp_path / "certs",
        public_base_url="https://kcbx.example.edu.cn",
        pki_passphrase="cli-test-passphrase",  # type: ignore[arg-type]
    )
    fields = dict(json.loads(_cli(settings, "templates", "--example", "return_notice").stdout))
    today = dt.datetime.now(SHANGHAI).date()
    fields.update(issue_date=today.isoformat(), report_by=(today + dt.timedelta(days=10)).isoformat())
    (tmp_path / "fields.json").write_text(json.dumps(fields, ensure_ascii=False), encoding="utf-8")
    issued = _cli(
        settings,
        "issue",
        "return_notice",
        "--data",
        str(tmp_path / "fields.json"),
        "--out",
        str(tmp_path / "n.pdf"),
    )
    assert issued.returncode == 0, issued.stderr
    now = dt.datetime.now(dt.UTC)

    def years_on(n: float) -> str:
        return f"{now + dt.timedelta(days=round(365.25 * n)):%Y-%m-%d %H:%M:%S}"

    untouched = _cli(settings, "verify", "--json", str(tmp_path / "n.pdf"), faketime=years_on(12))
    assert untouched.returncode == 1
    assert {p["code"] for p in json.loads(untouched.stdout)["problems"]} == {"NEEDS_ARCHIVE_TIMESTAMP"}

    upkeep = _cli(settings, "pki", "refresh", faketime=years_on(8))
    assert upkeep.returncode == 0, upkeep.stderr
    assert "已启用新的签发中心证书" in upkeep.stdout and "已更换时间戳证书" in upkeep.stdout, upkeep.stdout
    stamped = _cli(settings, "archive", "timestamp", faketime=years_on(9.5))
    assert stamped.returncode == 0, stamped.stderr
    assert "新加盖存档时间戳 1 份" in stamped.stdout, stamped.stdout
    services = Services.build(settings)
    with services.db.session() as s:
        document = s.scalars(select(Document)).one()
        versions = s.scalars(select(DocumentVersion).where(DocumentVersion.document_id == document.id)).all()
        assert [v.event for v in versions] == ["issued", "timestamped"]
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "pki.maintain")).first() is not None
        (tmp_path / "kept.pdf").write_bytes(services.archive.documents.get(document.current_sha256))
    again = _cli(settings, "archive", "timestamp", faketime=years_on(9.6))
    assert "新加盖存档时间戳 0 份" in again.stdout, again.stdout

    kept = _cli(settings, "verify", "--json", str(tmp_path / "kept.pdf"), faketime=years_on(12))
    assert kept.returncode == 0, kept.stdout
    report = json.loads(kept.stdout)
    assert report["genuine"] and [s["kind"] for s in report["signatures"]][-1] == "document_timestamp"
    pki = services.pki
    services.close()
    root = tmp_path / "root.crt"
    root.write_bytes(pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    sig = checks.pdfsig((tmp_path / "kept.pdf").read_bytes(), checks.nss_db(tmp_path / "nss", root))
    assert "Signature is Valid." in sig and "Certificate is Trusted." in sig, sig
    assert checks.qpdf_check((tmp_path / "kept.pdf").read_bytes()).returncode == 0


def test_serve_in_production_refuses_development_keys_and_names_the_settings(tmp_path: Path) -> None:
    """Production is the default: with nothing configured `docsign serve` does not start, and says in
    Chinese which settings are missing; `--demo` is refused when production is asked for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSIGN_")}
    env |= {"DOCSIGN_DATA_DIR": str(tmp_path / "var"), "DOCSIGN_CERTS_DIR": str(tmp_path / "certs"), "COLUMNS": "200"}
    serve = subprocess.run(
        [DOCSIGN, "serve", "--port", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert serve.returncode == 2, serve.stdout + serve.stderr
    said = serve.stderr.replace("\n", "")
    assert "生产环境" in said and "不能以当前配置启动" in said
    for name in ("DOCSIGN_PKI_PASSPHRASE", "DOCSIGN_SECRET_KEY", "DOCSIGN_PUBLIC_BASE_URL"):
        assert name in said, said
    assert "Traceback" not in serve.stderr and not (tmp_path / "var" / "docsign.sqlite3").exists()

    # a placeholder is no better than nothing
    placeholders = env | {
        "DOCSIGN_PKI_PASSPHRASE": "change-me-please",
        "DOCSIGN_SECRET_KEY": "change-me-change-me-change-me-change-me",
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
    }
    serve = subprocess.run(
        [DOCSIGN, "serve", "--port", "1"], cwd=tmp_path, env=placeholders, capture_output=True, text=True, timeout=120
    )
    said = serve.stderr.replace("\n", "")
    assert serve.returncode == 2 and "DOCSIGN_PKI_PASSPHRASE" in said and "DOCSIGN_SECRET_KEY" in said
    assert "DOCSIGN_PUBLIC_BASE_URL" in said  # example.edu.cn is an example

    demo = subprocess.run(
        [DOCSIGN, "serve", "--demo", "--port", "1"],
        cwd=tmp_path,
        env=env | {"DOCSIGN_ENVIRONMENT": "production"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 2 and "演示区县" in demo.stderr


def test_production_settings_that_are_ready(tmp_path: Path) -> None:
    from service.app import create_app
    from service.errors import ConfigurationError

    ready = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        data_dir=tmp_path,
        pki_passphrase="a-real-passphrase-0f-the-bureau",  # type: ignore[arg-type]
        secret_key="k" * 8 + "9f2c4e1a7b3d5f6081a2c3d4e5f60718",  # type: ignore[arg-type]
        public_base_url="https://kcbx.lcjt.gov.cn",
    )
    assert ready.production_problems() == [] and ready.cookies_secure
    ready.check_ready()
    with pytest.raises(ConfigurationError) as refused:
        create_app(ready.model_copy(update={"secure_cookies": False}))
    assert "DOCSIGN_SECURE_COOKIES" in refused.value.message
    # key files wrapped with fewer PBKDF2 rounds than production's 600,000 (a test's setting) are refused
    weak = ready.model_copy(update={"pki_kdf_rounds": 2048})
    assert [p for p in weak.production_problems() if "DOCSIGN_PKI_KDF_ROUNDS" in p]
    with pytest.raises(ConfigurationError):
        weak.check_ready()
    # the secret may come from a file (a mounted secret) instead
    key = tmp_path / "secret"
    key.write_text("7c3e9a1f4b8d2e6a0c5f9b3d7e1a4c8f2b6d0e9a3c7f1b5d")
    from_file = ready.model_copy(update={"secret_key": SecretStr(""), "secret_key_file": key})
    assert from_file.production_problems() == [] and from_file.secret() == key.read_bytes()


def test_error_lines_say_where_with_what_is_known_and_never_none() -> None:
    from service.cli import error_line

    assert error_line(
        {"row": 7, "column": "身份证号", "value": "1234", "message": "位数不对", "student": "王小明"}
    ) == ("第7行 王小明 身份证号：位数不对")
    assert error_line({"row": 3, "column": "学校代码", "message": "没有这所学校"}) == "第3行 学校代码：没有这所学校"
    assert error_line({"index": 1, "title": "监护人姓名", "field": "guardian_name", "message": "必须填写"}) == (
        "第2份 监护人姓名（guardian_name）：必须填写"
    )
    assert error_line({"field": "证明材料", "message": "请上传死亡证明"}) == "证明材料：请上传死亡证明"
    assert error_line({"message": "名单中没有学生。"}) == "名单中没有学生。"


def test_the_root_key_exported_at_init_is_asked_for_by_a_rollover_only(home: Path) -> None:
    # production's key-file rounds here (the tests' environment lowers them): `pki status` shows them
    production = {"DOCSIGN_ROOT_KEY_PASSPHRASE": "root-key-kept-in-the-safe", "DOCSIGN_PKI_KDF_ROUNDS": "600000"}
    init = run(home, "init", "--export-root-key", "root-offline.key", env=production)
    assert init.returncode == 0, init.stderr
    assert "根证书私钥已导出到 root-offline.key" in init.stdout
    assert not (home / "certs" / "root" / "ca.key").exists()
    assert b"ENCRYPTED PRIVATE KEY" in (home / "root-offline.key").read_bytes()

    # issuing and signing go on without it, and what they make verifies
    (home / "fields.json").write_text(run(home, "templates", "--example", "enrollment_notice").stdout, encoding="utf-8")
    issued = run(home, "issue", "enrollment_notice", "--data", "fields.json", "--out", "notice.pdf")
    assert issued.returncode == 0, issued.stderr
    assert run(home, "verify", "notice.pdf").returncode == 0

    status = run(home, "pki", "status")
    assert status.returncode == 0, status.stderr
    where = status.stdout.split("私钥位置：", 1)[1]
    assert "根证书「" in where and "」：离线" in where
    assert "签发中心证书「签章证书签发中心」：文件（PBKDF2-HMAC-SHA-256 600,000 次）" in where

    refused = run(home, "pki", "rollover")
    assert refused.returncode == 2 and "ROOT_KEY_OFFLINE" in refused.stderr and "--root-key" in refused.stderr
    wrong = run(
        home, "pki", "rollover", "--root-key", "root-offline.key", "--root-key-passphrase", "not-the-one-at-all"
    )
    assert wrong.returncode == 2 and "ROOT_KEY_INVALID" in wrong.stderr

    rolled = run(
        home, "pki", "rollover", "--root-key", "root-offline.key", "--root-key-passphrase", "root-key-kept-in-the-safe"
    )
    assert rolled.returncode == 0, rolled.stderr
    assert "已启用新的签发中心证书（issuing-2" in rolled.stdout and "已更换时间戳证书" in rolled.stdout
    assert not (home / "certs" / "root" / "ca.key").exists()  # handed in for the rollover only
    again = run(home, "issue", "enrollment_notice", "--data", "fields.json", "--out", "after.pdf")
    assert again.returncode == 0, again.stderr
    assert run(home, "verify", "after.pdf").returncode == 0 and run(home, "verify", "notice.pdf").returncode == 0


def test_a_unit_key_made_in_a_token_from_the_command_line_signs_a_notice(home: Path, softhsm: Any) -> None:
    assert run(home, "init").returncode == 0
    refused = run(home, "pki", "issue-unit", "bureau-token", "济南市历城区教育和体育局", "--token")
    assert refused.returncode == 2 and "PKCS11_NOT_CONFIGURED" in refused.stderr
    token_env = {
        "DOCSIGN_PKCS11_MODULE": softhsm.module,
        "DOCSIGN_PKCS11_TOKEN": softhsm.label,
        "DOCSIGN_PKCS11_PIN_FILE": str(home / "pin"),
    }
    (home / "pin").write_text(softhsm.pin + "\n")
    os.environ.update(token_env)
    try:
        made = run(home, "pki", "issue-unit", "bureau-token", "济南市历城区教育和体育局", "--token")
        assert made.returncode == 0, made.stderr
        assert "私钥位置：PKCS#11 令牌「docsign-test」（私钥不出令牌）" in made.stdout
        assert not (home / "certs" / "units" / "bureau-token" / "key.pem").exists()
        (home / "fields.json").write_text(
            run(home, "templates", "--example", "enrollment_notice").stdout, encoding="utf-8"
        )
        issued = run(
            home, "issue", "enrollment_notice", "--data", "fields.json", "--out", "n.pdf", "--issuer", "bureau-token"
        )
        assert issued.returncode == 0, issued.stderr
        assert "令牌「docsign-test」" in run(home, "pki", "status").stdout
    finally:
        for name in token_env:
            os.environ.pop(name)
    assert run(home, "verify", "n.pdf").returncode == 0


def test_data_retention_dry_run_lists_what_the_run_then_removes(tmp_path: Path) -> None:
    """``docsign data retention --dry-run`` years on (faketime) lists the closed case that is due and
    changes nothing; the same command without it removes exactly that, logged."""
    from service.cases.models import Case
    from service.cases.service import CaseIn, GuardianIn
    from service.retention.models import RetentionRecord
    from tests.district import load_district, scope_of, unit

    settings = Settings(
        data_dir=tmp_path / "var",
        certs_dir=tmp_path / "certs",
        public_base_url="https://kcbx.example.edu.cn",
        pki_passphrase="cli-test-passphrase",  # type: ignore[arg-type]
    )
    services = Services.build(settings)
    try:
        services.prepare()
        load_district(services)
        with services.db.session() as s:
            school = scope_of(s, "wsr-sh-head")
            made = []
            for name, id_number in (("李明远", "370112200805010013"), ("张小军", "370112201001010012")):
                case = services.cases.create(
                    s,
                    school,
                    unit(s, "WSR-SH").id,
                    CaseIn(
                        student_name=name,
                        id_number=id_number,
                        sex="男",
                        birth_date=dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])),
                        grade="八年级",
                        confirmed=True,
                        guardians=[GuardianIn("李德福", "父亲", "13805310001")],
                    ),
                )
                made.append(case.id)
            services.cases.returned(s, school, s.get_one(Case, made[0]), services.cases.today())
            s.commit()
    finally:
        services.close()
    later = f"{dt.datetime.now(dt.UTC) + dt.timedelta(days=round(365.25 * 3) + 2):%Y-%m-%d %H:%M:%S}"
    listed = _cli(settings, "data", "retention", "--dry-run", faketime=later)
    assert listed.returncode == 0, listed.stderr
    assert f"个案 #{made[0]}" in listed.stdout and f"个案 #{made[1]}" not in listed.stdout
    assert "未删除" in listed.stdout and "李明远" not in listed.stdout
    now = _cli(settings, "data", "retention")  # not yet due today
    assert now.returncode == 0 and "没有到期" in now.stdout, now.stdout + now.stderr
    done = _cli(settings, "data", "retention", faketime=later)
    assert done.returncode == 0, done.stderr
    assert f"个案 #{made[0]}" in done.stdout and "结案个案保存期满 1 项" in done.stdout
    services = Services.build(settings)
    try:
        with services.db.session() as s:
            assert s.get_one(Case, made[0]).erased_at is not None
            assert s.get_one(Case, made[1]).student_name == "张小军"
            assert [(r.rule, r.subject_id, r.actor) for r in s.scalars(select(RetentionRecord))] == [
                ("case", made[0], "命令行")
            ]
    finally:
        services.close()


def test_init_makes_the_data_folder_and_every_key_owner_only(home: Path) -> None:
    """Minors' data and the keys to it: folders 0700, key files 0600, after ``docsign init`` and
    after the service has written (the database, its journal, the archive)."""
    init = run(home, "init")
    assert init.returncode == 0, init.stderr
    assert "加密密钥已创建" in init.stdout
    var = home / "var"

    def mode(path: Path) -> int:
        return path.stat().st_mode & 0o777

    assert all(mode(p) == 0o700 for p in (var, var / "archive", var / "work", var / "keys"))
    key_files = [*(var / "keys").glob("*.key"), var / "keys" / "keyring.json", *(home / "certs").rglob("*.key")]
    assert len(key_files) >= 4 and all(mode(p) == 0o600 for p in key_files), {str(p): oct(mode(p)) for p in key_files}
    status = run(home, "keys", "status")
    assert status.returncode == 0 and "在用" in status.stdout and "盲索引" in status.stdout

    issued = run(home, "issue", "enrollment_notice", "--data", str(_example(home)), "--out", "notice.pdf")
    assert issued.returncode == 0, issued.stderr
    written = [p for p in var.rglob("*") if p.is_file() and p.name != ".lock"]
    assert any(p.suffix == ".sqlite3" for p in written) and any(p.suffix == ".pdf" for p in written)
    assert all(mode(p) & 0o077 == 0 for p in written), {str(p): oct(mode(p)) for p in written}
    assert all(mode(p) == 0o700 for p in var.rglob("*") if p.is_dir())
    rotated = run(home, "keys", "rotate")
    assert rotated.returncode == 0 and "重新封装了 2 个数据密钥" in rotated.stdout
    assert "已停用并删除旧主密钥" in run(home, "keys", "retire").stdout
    verified = run(home, "verify", "notice.pdf")
    assert verified.returncode == 0 and "真实有效" in verified.stdout


def _example(home: Path) -> Path:
    path = home / "fields.json"
    path.write_text(run(home, "templates", "--example", "enrollment_notice").stdout, encoding="utf-8")
    return path


def test_add_user_gives_a_signer_an_activation_link_and_no_password(home: Path) -> None:
    """`docsign add-user --role unit_signer` asks for no password and prints a one-time link for the
    principal; the operator cannot enrol a signer's second factor; a staff account gets its password."""
    assert run(home, "init").returncode == 0
    demo = run(home, "demo")
    assert demo.returncode == 0 and all(name in demo.stdout for name in ("sysadmin", "secadmin", "auditor"))
    made = run(home, "add-user", "wsr-sh-vice", "WSR-SH", "--role", "unit_signer", "--name", "副校长")
    assert made.returncode == 0, made.stderr
    link = re.search(r"https://kcbx\.example\.edu\.cn/activate/[\w-]+", made.stdout)
    assert link is not None and "激活链接" in made.stdout and "请勿自己打开" in made.stdout
    refused = run(home, "add-user", "wsr-sh-other", "WSR-SH", "--role", "unit_signer", "--password", "chosen-pw-17")
    assert refused.returncode == 2 and "激活链接" in refused.stderr
    totp = run(home, "user", "totp", "wsr-sh-vice")
    assert totp.returncode == 2 and "本人" in totp.stderr and "otpauth://" not in totp.stdout
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
    }
    staff = subprocess.run(
        [DOCSIGN, "add-user", "clerk-2", "LCJT", "--role", "bureau_staff"],
        cwd=home,
        env=env,
        input="clerk-own-secret-5\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert staff.returncode == 0 and "已创建账号 clerk-2" in staff.stdout and "/activate/" not in staff.stdout

    # the three administrators are made here at installation (the bureau's, nowhere else), and an
    # administrator's account is reset here too: a link for its holder, never a password
    for username, role in (("xtgly", "system_admin"), ("aqgly", "security_admin"), ("sjgly", "audit_admin")):
        admin = subprocess.run(
            [DOCSIGN, "add-user", username, "LCJT", "--role", role, "--name", "管理员"],
            cwd=home,
            env=env,
            input="admin-own-secret-5\n",
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert admin.returncode == 0 and f"已创建账号 {username}" in admin.stdout, admin.stderr
    elsewhere = run(home, "add-user", "sjgly-2", "WSR-SH", "--role", "audit_admin", "--password", "admin-own-secret-6")
    assert elsewhere.returncode == 2 and "不能设置这种角色的账号" in elsewhere.stderr
    reset = run(home, "user", "reset", "sjgly")
    assert reset.returncode == 0 and "已重置账号 sjgly" in reset.stdout and "/activate/" in reset.stdout
    # an administrator disabled (unused for too long) is enabled here too
    assert run(home, "user", "enable", "sjgly").returncode == 2  # not disabled
    with sqlite3.connect(home / "var" / "docsign.sqlite3") as db:
        db.execute("UPDATE users SET active = 0, disabled_reason = '90 天未登录' WHERE username = 'sjgly'")
    enabled = run(home, "user", "enable", "sjgly")
    assert enabled.returncode == 0 and "已启用账号 sjgly" in enabled.stdout, enabled.stderr
    with sqlite3.connect(home / "var" / "docsign.sqlite3") as db:
        assert db.execute("SELECT active FROM users WHERE username = 'sjgly'").fetchone() == (1,)
