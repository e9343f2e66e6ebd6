"""Settings are read once, and their paths made absolute where they are read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.settings import PASSPHRASE_BITS, PROJECT_ROOT, SECRET_KEY_BITS, Settings, strength_bits

DOCSIGN = str(Path(sys.executable).with_name("docsign"))


def test_relative_paths_are_made_absolute_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(environment="development", secret_key_file=Path("keys/secret"), archive_url="file:archive")
    assert settings.data_dir == tmp_path / "var"
    assert settings.certs_dir == tmp_path / "certs"
    assert settings.secret_key_file == tmp_path / "keys" / "secret"
    assert settings.archive_url == f"file://{tmp_path}/archive"
    assert settings.database == f"sqlite:///{tmp_path}/var/docsign.sqlite3"
    assert settings.templates_dir == PROJECT_ROOT / "templates"  # absolute ones are kept as they are
    monkeypatch.chdir(PROJECT_ROOT)
    assert settings.data_dir == tmp_path / "var"  # read once: moving on changes nothing


def test_the_command_line_issues_with_the_default_relative_folders(tmp_path: Path) -> None:
    """The default data folder is the relative ``var/``: soffice once aborted at start-up (status 134)
    on the relative profile path it made, so nothing could be issued from a fresh checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSIGN_")}
    env["DOCSIGN_ENVIRONMENT"] = "development"

    def docsign(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([DOCSIGN, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    docsign("init")
    fields = docsign("templates", "--example", "enrollment_notice").stdout
    (tmp_path / "fields.json").write_text(fields, encoding="utf-8")
    issued = docsign("issue", "enrollment_notice", "--data", "fields.json", "--out", "notice.pdf")
    assert "已签发" in issued.stdout
    assert "真实有效" in docsign("verify", "notice.pdf").stdout
    assert (tmp_path / "var" / "docsign.sqlite3").is_file() and (tmp_path / "certs").is_dir()


def test_production_refuses_to_run_without_a_second_factor_or_with_long_sessions(tmp_path: Path) -> None:
    """Every account signs in with a TOTP code in production: switching it off (by its name or its
    older, staff-only name) keeps the service from starting, as do sessions longer than a working day."""
    from service.errors import ConfigurationError

    ready = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        data_dir=tmp_path,
        pki_passphrase="a-real-passphrase-0f-the-bureau",  # type: ignore[arg-type]
        secret_key="k" * 8 + "9f2c4e1a7b3d5f6081a2c3d4e5f60718",  # type: ignore[arg-type]
        public_base_url="https://kcbx.lcjt.gov.cn",
    )
    assert ready.totp_required and ready.production_problems() == []
    assert not ready.model_copy(update={"environment": "development"}).totp_required  # the demo's accounts
    for update, name in (
        ({"require_totp": False}, "DOCSIGN_REQUIRE_TOTP"),
        ({"require_staff_totp": False}, "DOCSIGN_REQUIRE_STAFF_TOTP"),
        ({"session_hours": 24}, "DOCSIGN_SESSION_HOURS"),
        ({"session_idle_minutes": 120}, "DOCSIGN_SESSION_IDLE_MINUTES"),
    ):
        settings = ready.model_copy(update=update)
        with pytest.raises(ConfigurationError) as refused:
            settings.check_ready()
        assert name in refused.value.message and name in refused.value.details["settings"], refused.value.message
    off = ready.model_copy(update={"require_totp": False}).production_problems()
    assert off == ["DOCSIGN_REQUIRE_TOTP（所有账号登录须用动态口令）在生产环境不能关闭"]
    # the new name decides when both are given
    assert ready.model_copy(update={"require_totp": True, "require_staff_totp": False}).production_problems() == []


def test_secrets_are_judged_by_how_hard_they_are_to_guess_not_by_length(tmp_path: Path) -> None:
    """A long passphrase made of one repeated chunk or a run of digits is refused in production; a
    short random one passes; the messages name the setting and the estimate."""
    # length earns nothing by itself
    assert strength_bits("a" * 40) < 50 and strength_bits("1234567890" * 4) < 50
    assert strength_bits("bureau-bureau-bureau-bureau-bureau") < PASSPHRASE_BITS
    # random text earns the bits of its alphabet
    assert strength_bits("Xq7#vR2m!pL9wK4z") > PASSPHRASE_BITS
    assert strength_bits(os.urandom(32).hex()) > SECRET_KEY_BITS
    assert strength_bits("lcjt-控辍保学-档案钥匙") > PASSPHRASE_BITS  # Chinese characters count as such

    ready = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        data_dir=tmp_path,
        pki_passphrase="Xq7#vR2m!pL9wK4z",  # type: ignore[arg-type]
        secret_key=os.urandom(32).hex(),  # type: ignore[arg-type]
        public_base_url="https://kcbx.lcjt.gov.cn",
    )
    assert ready.production_problems() == []
    weak = ready.model_copy(
        update={"pki_passphrase": SecretStr("1234567890" * 3), "secret_key": SecretStr("ab" * 40)}
    ).production_problems()
    assert [p for p in weak if p.startswith("DOCSIGN_PKI_PASSPHRASE") and "太容易猜到" in p and "估计约" in p]
    assert [p for p in weak if p.startswith("DOCSIGN_SECRET_KEY") and "openssl rand -hex 32" in p]
