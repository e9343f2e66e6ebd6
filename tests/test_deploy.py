"""What deploy/ holds is checked by the tools that will read it: the alert rules by promtool
(syntax, and their own unit tests: each alert fires when it should and not before), and every
metric they name is one the service exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.api.conftest import running_service

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "docsign-alerts.yml"
#: Exported only by the scale-out profile (a broker and workers apart from the web process).
SCALE_OUT_ONLY = {"docsign_queue_depth", "docsign_worker_tick_age_seconds"}


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = subprocess.run(
        ["promtool", "test", "rules", RULES.with_name("docsign-alerts.test.yml").name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_metric_the_alerts_name_is_exported(tmp_path: Path) -> None:
    def family(name: str) -> str:
        return re.sub(r"_(bucket|count|sum|total)$", "", name)

    named = {family(m) for m in re.findall(r"\b(docsign_[a-z_]+)", RULES.read_text(encoding="utf-8"))}
    with running_service(tmp_path) as service:
        service.client.get("/v/ABCD-EFGH-JKMN")  # a scan, so the route's histogram has a series
        text = service.client.get("/metrics").text
    exported = {family(m) for m in re.findall(r"^(docsign_[a-z_]+)", text, re.M)}
    assert named - SCALE_OUT_ONLY <= exported, named - SCALE_OUT_ONLY - exported
