"""``docsign notify test`` and ``docsign notify run`` as an operator types them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from service.pki.store import Pki
from service.settings import Settings
from tests.notify.servers import Mailbox, Provider

DOCSIGN = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "docsign")


def _docsign(tmp_path: Path, settings: Settings, pki: Pki, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    certs = tmp_path / "certs"
    if not certs.exists():
        shutil.copytree(pki.dir, certs)
    full = {
        **os.environ,
        "DOCSIGN_ENVIRONMENT": "development",
        "DOCSIGN_DATA_DIR": str(tmp_path / "var"),
        "DOCSIGN_CERTS_DIR": str(certs),
        "DOCSIGN_PUBLIC_BASE_URL": settings.public_base_url,
        "DOCSIGN_PKI_PASSPHRASE": settings.pki_passphrase.get_secret_value(),
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run([DOCSIGN, *args], env=full, capture_output=True, text=True, timeout=300)


def test_notify_test_sends_a_mail_and_refuses_bad_input(
    tmp_path: Path, settings: Settings, pki: Pki, smtp: Mailbox, provider: Provider
) -> None:
    mail = {"DOCSIGN_SMTP_URL": smtp.url, "DOCSIGN_MAIL_FROM": "kcbx@lcjt.example.cn"}
    done = _docsign(tmp_path, settings, pki, "notify", "test", "email", "shihe@school.example.cn", **mail)
    assert done.returncode == 0, done.stderr
    assert "测试消息已发送到 s***@school.example.cn" in done.stdout
    [received] = smtp.mails
    assert received["Subject"] == "【测试】控辍保学文书签署平台通知" and received["To"] == "shihe@school.example.cn"

    bad = _docsign(tmp_path, settings, pki, "notify", "test", "fax", "123", **mail)
    assert bad.returncode != 0 and "没有这种通知渠道" in bad.stderr and "NOTIFY_UNKNOWN_CHANNEL" in bad.stderr
    bad = _docsign(tmp_path, settings, pki, "notify", "test", "sms", "13805310001", **mail)
    assert bad.returncode != 0 and "短信渠道尚未配置" in bad.stderr
    bad = _docsign(tmp_path, settings, pki, "notify", "test", "email", "not-an-address", **mail)
    assert bad.returncode != 0 and "不是有效的电子邮箱" in bad.stderr

    robot = provider.url("/robot/send?access_token=t")
    done = _docsign(tmp_path, settings, pki, "notify", "test", "dingtalk", robot, "--secret", "SECabc")
    assert done.returncode == 0, done.stderr
    [request] = provider.at("/robot/send")
    assert request.query["sign"] and request.query["access_token"] == "t"

    ran = _docsign(tmp_path, settings, pki, "notify", "run", **mail)
    assert ran.returncode == 0, ran.stderr
    assert "没有需要发送的通知" in ran.stdout
