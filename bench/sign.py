"""Benchmark: what a person waits for. A principal's tap on 确认签署 (online signing of an issued
document through the campaign use case, database and archive included), and one notice issued on
its own (what issuing from a form does).

Each run works in a fresh folder (its own SQLite database, archive and local PKI). The first of
each kind is left out of the figures (it loads keys, fonts and templates).

    .venv/bin/python bench/sign.py                   # 50 signatures, 30 notices
    .venv/bin/python bench/sign.py --sign 20 --issue 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

#: Signatures per campaign: the demo district has 12 units that each sign one 责任书.
PER_CAMPAIGN = 12


def _handwriting() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (480, 180), "white")
    ImageDraw.Draw(img).line(
        [(30, 130), (90, 40), (140, 120), (200, 50), (260, 140), (330, 60), (450, 110)], fill=(10, 10, 10), width=8
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(home: Path, signatures: int, notices: int) -> dict[str, Any]:
    from sqlalchemy import select

    from service.accounts.models import Role, User
    from service.accounts.scope import Scope
    from service.archive.service import RecordAs
    from service.audit.service import Actor
    from service.campaigns.models import Assignment
    from service.campaigns.service import CampaignSpec
    from service.container import Services
    from service.documents.pipeline import IssueRequest
    from service.settings import Settings
    from service.units.demo import load_demo
    from service.units.models import Unit

    # a throwaway deployment: development (its own audit key in data_dir), not production
    settings = Settings(
        data_dir=home / "var",
        certs_dir=home / "certs",
        public_base_url="https://kcbx.example.edu.cn",
        environment="development",
    )
    services = Services.build(settings)
    try:
        services.prepare()
        services.db.migrate()
        with services.db.session() as s:
            load_demo(s)
            s.commit()
        services.engine.converter.warm_up()
        png = _handwriting()
        # Issued documents to sign: a campaign of the district per 12 signatures (+1 left out).
        campaigns = []
        with services.db.session() as s:
            bureau_user = s.scalar(select(User).join(Unit).where(Unit.code == "LCJT", User.role == Role.BUREAU))
            assert bureau_user is not None
            bureau = Scope.of_user(s, bureau_user, "127.0.0.1")
            deadline = (services.clock.now() + dt.timedelta(days=30)).replace(tzinfo=None)
            for i in range(-(-(signatures + 1) // PER_CAMPAIGN)):
                campaign = services.campaigns.create(
                    s,
                    bureau,
                    CampaignSpec(name=f"控辍保学责任书 第{i + 1}批", year=2024, deadline=deadline, issue_date=None),
                )
                job, _ = services.campaigns.start_issue(s, bureau, campaign, services.jobs)
                s.commit()
                ended = services.jobs.run_here(job.id)
                assert ended.status == "done", ended.error_message
                campaigns.append(campaign.id)
        sign_ms: list[float] = []
        with services.db.session() as s:
            assignments = s.scalars(
                select(Assignment)
                .where(Assignment.campaign_id.in_(campaigns), Assignment.document_id.is_not(None))
                .order_by(Assignment.id)
            ).all()
            for a in assignments[: signatures + 1]:
                user = s.scalar(select(User).where(User.unit_id == a.unit_id, User.role == Role.SIGNER))
                assert user is not None, a.unit_id
                scope = Scope.of_user(s, user, "127.0.0.1")
                t0 = time.perf_counter()
                services.campaigns.sign(s, scope, a, png)
                s.commit()
                sign_ms.append((time.perf_counter() - t0) * 1000)
        issue_ms: list[float] = []
        with services.db.session() as s:
            unit = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            assert unit is not None
            fields = {
                "report_by": "2099-08-31",
                "issuer_name": unit.name,
                "issue_date": dt.date.today().isoformat(),
                "school_name": "历城区王舍人街道石河小学",
            }
            for n in range(notices + 1):
                t0 = time.perf_counter()
                services.archive.issue(
                    s,
                    IssueRequest(
                        "enrollment_notice",
                        {**fields, "student_name": f"学生{n}", "guardian_name": f"家长{n}"},
                        issuer_key=unit.cert_key,
                    ),
                    RecordAs(issuer=unit),
                    Actor(None, "bench"),
                )
                s.commit()
                issue_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        services.close()
    sign_ms, issue_ms = sign_ms[1:], issue_ms[1:]
    return {
        "signatures": len(sign_ms),
        "sign_p50": statistics.median(sign_ms),
        "sign_p95": _quantile(sign_ms, 0.95),
        "sign_max": max(sign_ms),
        "notices": len(issue_ms),
        "issue_p50": statistics.median(issue_ms),
        "issue_p95": _quantile(issue_ms, 0.95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sign", type=int, default=50, help="online signatures measured (default 50)")
    parser.add_argument("--issue", type=int, default=30, help="notices issued alone measured (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="docsign-bench-sign-") as tmp:
        os.chdir(tmp)
        r = run(Path(tmp), args.sign, args.issue)
    if args.json:
        print("RESULT " + json.dumps(r))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"在线签署与单份签发（{os.cpu_count()} CPU cores）", title_justify="left")
    for col in ("path", "n", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right" if col != "path" else "left")
    table.add_row(
        "online signing (campaign use case)", str(r["signatures"]), f"{r['sign_p50']:.0f}", f"{r['sign_p95']:.0f}"
    )
    table.add_row("one notice issued alone", str(r["notices"]), f"{r['issue_p50']:.0f}", f"{r['issue_p95']:.0f}")
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
