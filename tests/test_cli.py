"""The docsign command as a user runs it: a real process, real files, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import checks
from tests.documents.test_sign import handwriting

DOCSIGN = str(Path(sys.executable).with_name("docsign"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        "COLUMNS": "120",
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
    assert len(archived) == 1 and archived[0].read_bytes() == pdf

    # the issued notice is recorded, so its QR code verifies on the service's page
    from service.archive.service import find_by_code
    from service.db.session import Database
    from service.settings import Settings

    db = Database(Settings(data_dir=home / "var"))
    with db.session() as s:
        doc = find_by_code(s, url.rsplit("/", 1)[1])
        assert doc is not None and doc.public["issuer"] == "济南市历城区教育和体育局"
    db.dispose()

    verified = run(home, "verify", "notice.pdf")
    assert verified.returncode == 0 and "真实有效" in verified.stdout
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
        "COLUMNS": "160",
    }
    proc = subprocess.Popen(
        [DOCSIGN, "serve", "--port", str(port)],
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
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert "已载入演示区县" in output and "bureau" in output and "wsr-sh-head" in output
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
