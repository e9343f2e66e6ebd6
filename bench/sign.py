"""Benchmark: what a person waits for. A principal's tap on 确认签署 (online signing of an issued
document through the campaign use case, database and archive included), and one notice issued on
its own (what issuing from a form does).

Each is set beside a baseline measured in the same run: pyHanko's own ``sign_pdf`` with its
defaults, signing the same issued documents with the same keys and TSA (no appearance, no database,
no archive), and the draft of the same notice (``engine.preview``: render and convert, no stamp,
signature, archive or database).

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


def _pyhanko_baseline(services: Any, documents: list[tuple[str, bytes]]) -> list[float]:
    """Milliseconds for pyHanko's ``sign_pdf``, with its defaults, to sign each document in its
    first empty field with the unit's key (parsed once per unit) and the local TSA: the
    cryptography and the PDF update, nothing of ours around them."""
    from asn1crypto import keys
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from service.documents.sign import LocalTimeStamper, _asn1_cert

    pki = services.engine.pki
    timestamper = LocalTimeStamper(pki)
    signers_by_key: dict[str, Any] = {}
    out = []
    for unit_key, pdf in documents:
        signer = signers_by_key.get(unit_key)
        if signer is None:
            creds = pki.unit(unit_key)
            der = creds.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            signer = signers_by_key[unit_key] = signers.SimpleSigner(
                signing_cert=_asn1_cert(creds.certificate),
                signing_key=keys.PrivateKeyInfo.load(der),
                cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(c) for c in creds.chain]),
            )
        t0 = time.perf_counter()
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        field = next(name for name, value, _ in fields.enumerate_sig_fields(writer) if value is None)
        meta = signers.PdfSignatureMetadata(
            field_name=field, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256"
        )
        signers.sign_pdf(writer, meta, signer=signer, timestamper=timestamper)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(home: Path, signatures: int, notices: int) -> dict[str, Any]:
    from sqlalchemy import select

    from service.accounts.models import Role, User
    from service.accounts.scope import Scope
    from service.archive.models import Document
    from service.archive.service import RecordAs
    from service.audit.service import Actor
    from service.campaigns.models import Assignment
    from service.campaigns.service import CampaignSpec
    from service.container import Services
    from service.demo import load_demo
    from service.documents.pipeline import IssueRequest
    from service.settings import Settings
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
        to_sign: list[tuple[str, bytes]] = []
        with services.db.session() as s:
            assignments = s.scalars(
                select(Assignment)
                .where(Assignment.campaign_id.in_(campaigns), Assignment.document_id.is_not(None))
                .order_by(Assignment.id)
            ).all()
            for a in assignments[: signatures + 1]:
                unit_key = s.get(Unit, a.unit_id).cert_key  # type: ignore[union-attr]
                doc = s.get(Document, a.document_id)
                assert doc is not None
                to_sign.append((unit_key, services.archive.documents.get(doc.current_sha256)))
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
            draft_ms = []
            for n in range(notices + 1):
                t0 = time.perf_counter()
                services.engine.preview(
                    "enrollment_notice", {**fields, "student_name": f"学生{n}", "guardian_name": f"家长{n}"}
                )
                draft_ms.append((time.perf_counter() - t0) * 1000)
        pyhanko_ms = _pyhanko_baseline(services, to_sign)
    finally:
        services.close()
    sign_ms, issue_ms, draft_ms, pyhanko_ms = sign_ms[1:], issue_ms[1:], draft_ms[1:], pyhanko_ms[1:]
    return {
        "pyhanko_p50": statistics.median(pyhanko_ms),
        "pyhanko_p95": _quantile(pyhanko_ms, 0.95),
        "draft_p50": statistics.median(draft_ms),
        "draft_p95": _quantile(draft_ms, 0.95),
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
    for col in ("path", "n", "p50 ms", "p95 ms", "p50 vs baseline"):
        table.add_column(col, justify="right" if col != "path" else "left")
    rows = [
        ("online signing (campaign use case)", "signatures", "sign", "pyhanko"),
        ("  baseline: pyHanko sign_pdf, same documents", "signatures", "pyhanko", "pyhanko"),
        ("one notice issued alone", "notices", "issue", "draft"),
        ("  baseline: its draft (render + convert)", "notices", "draft", "draft"),
    ]
    for label, count, key, base in rows:
        ratio = r[f"{key}_p50"] / r[f"{base}_p50"]
        table.add_row(label, str(r[count]), f"{r[f'{key}_p50']:.0f}", f"{r[f'{key}_p95']:.0f}", f"{ratio:.2f}x")
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
