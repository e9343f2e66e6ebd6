"""Benchmark: the public verification page under a scan storm, and while someone uploads hostile PDFs.

One real server (``docsign serve``, the embedded profile) in a fresh folder; wrk, on this machine,
keeps 16 connections busy for a few seconds against each of:

  healthz        /healthz, the cheapest answer the server gives (the baseline)
  page           /v/{code}, the page a guardian's phone opens (stored verdict, masked fields)
  json           /v/{code}?format=json, what a program asks
  unknown        /v/{a code nobody was given}
  page+uploads   /v/{code} again while another client keeps uploading a PDF whose check costs
                 seconds of CPU (a genuine notice with 30 archive timestamps) to /v/check

and the table gives requests per second and p50/p95/p99 latency, with each row's throughput as a
share of /healthz's in the same run. Targets: the page at least 50 % of /healthz with p95 under
50 ms at 16 connections, and the same p95 while the uploads go on.

    .venv/bin/python bench/verify.py                 # 8 s per row
    .venv/bin/python bench/verify.py --seconds 20 --connections 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
DOCSIGN = str(Path(sys.executable).with_name("docsign"))

#: wrk reports its latency histogram through this script: p50, p95 and p99 in microseconds.
REPORT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, "p50": %d, "p95": %d, "p99": %d}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _issue_notices(home: Path, env: dict[str, str], count: int) -> tuple[list[str], bytes]:
    """Notices issued and recorded through the service's own use case, their verdicts stored as the
    background check stores them; returns their codes and one PDF."""
    from sqlalchemy import select

    from service.archive.service import RecordAs
    from service.audit.service import Actor
    from service.container import Services
    from service.documents.pipeline import IssueRequest
    from service.documents.registry import KINDS, example_fields
    from service.settings import Settings
    from service.units.models import Unit

    settings = Settings(
        environment="development",
        data_dir=home / "var",
        certs_dir=home / "certs",
        public_base_url=env["DOCSIGN_PUBLIC_BASE_URL"],
    )
    services = Services.build(settings)
    codes: list[str] = []
    pdf = b""
    try:
        services.prepare()
        fields = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
        with services.db.session() as s:
            bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            for _ in range(count):
                _, issued = services.archive.issue(
                    s,
                    IssueRequest("enrollment_notice", fields, issuer_key=bureau.cert_key if bureau else None),
                    RecordAs(issuer=bureau),
                    Actor(None, "bench"),
                )
                s.commit()
                codes.append(issued.code)
                pdf = issued.pdf
            while services.archive.check_pending(s):
                s.commit()
    finally:
        services.close()
    return codes, pdf


def _heavy(pdf: bytes, home: Path) -> bytes:
    """The notice with 30 archive timestamps: genuine structure, seconds of CPU to check."""
    from cryptography.hazmat.primitives import serialization

    from service.documents.ltv import add_archive_timestamp
    from service.documents.sign import LocalTimeStamper
    from service.pki.store import Pki
    from service.settings import Settings

    settings = Settings(certs_dir=home / "certs")
    pki = Pki(settings.certs_dir, settings.pki_passphrase.get_secret_value(), settings.pki_organization, "")
    crls = [c.public_bytes(serialization.Encoding.DER) for c in pki.crls()]
    for _ in range(30):
        pdf = add_archive_timestamp(pdf, timestamper=LocalTimeStamper(pki), crls=crls)
    return pdf


def _wrk(url: str, seconds: float, connections: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    result["rps"] = result["requests"] / result["seconds"]
    return result


def _uploader(url: str, pdf: bytes, stop: threading.Event, answers: list[tuple[float, str]]) -> None:
    """Uploads the hostile PDF again and again until told to stop; each answer is kept with its time
    and what it said (the verdict's first code, or the HTTP status of a refusal)."""
    boundary = "docsignbench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + f"\r\n--{boundary}--\r\n".encode()
    )
    while not stop.is_set():
        request = urllib.request.Request(
            url + "/v/check",
            data=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}", "accept": "application/json"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                answer = json.loads(r.read())
            codes = answer.get("codes") or [answer.get("code") or ("genuine" if answer.get("genuine") else "?")]
            said = str(codes[0])
        except urllib.error.HTTPError as exc:
            said = f"HTTP {exc.code}"
        except OSError as exc:
            said = type(exc).__name__
        answers.append((time.monotonic() - started, said))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="seconds of load per row (default 8)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--notices", type=int, default=20, help="notices issued before the run (default 20)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: run scripts/setup", file=sys.stderr)
        return 2
    console = Console(width=130)
    home = Path(tempfile.mkdtemp(prefix="docsign-bench-verify-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        # a benchmark's own throwaway installation, with development keys (production is the default)
        "DOCSIGN_ENVIRONMENT": "development",
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PUBLIC_BASE_URL": url,
        # the storm comes from one address here; in the field each guardian is a client of their own
        "DOCSIGN_VERIFY_RATE_PER_MINUTE": "100000000",
        "DOCSIGN_UPLOAD_RATE_PER_MINUTE": "100000000",
        # let the hostile file past the cheap counts, so that each upload burns its CPU limit
        "DOCSIGN_UPLOAD_MAX_SIGNATURES": "100",
        "DOCSIGN_UPLOAD_MAX_REVISIONS": "100",
    }
    script = home / "report.lua"
    script.write_text(REPORT)
    subprocess.run([DOCSIGN, "init"], cwd=home, env=env, check=True, capture_output=True)
    subprocess.run([DOCSIGN, "demo"], cwd=home, env=env, check=True, capture_output=True)
    console.print(
        f"[bold]docsign verification benchmark[/] ({os.cpu_count()} CPU cores, {args.connections} connections)"
    )
    codes, pdf = _issue_notices(home, env, args.notices)
    heavy = _heavy(pdf, home)
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server writes to it until the end
    server = subprocess.Popen(
        [DOCSIGN, "serve", "--no-demo", "--port", str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    rows: list[tuple[str, dict[str, Any]]] = []
    uploads: list[tuple[float, str]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.3)
        code = codes[0]
        urllib.request.urlopen(f"{url}/v/{code}", timeout=30).read()  # warm: templates, caches
        from service.documents.codes import new_code

        targets = [
            ("healthz", "/healthz"),
            ("page", f"/v/{code}"),
            ("json", f"/v/{code}?format=json"),
            ("unknown", f"/v/{new_code()}?format=json"),
        ]
        for label, path in targets:
            rows.append((label, _wrk(url + path, args.seconds, args.connections, script)))
        stop = threading.Event()
        uploader = threading.Thread(target=_uploader, args=(url, heavy, stop, uploads))
        uploader.start()
        time.sleep(1)  # the first hostile check is under way
        try:
            rows.append(("page+uploads", _wrk(f"{url}/v/{code}", args.seconds, args.connections - 1, script)))
        finally:
            stop.set()
            uploader.join()
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    base = rows[0][1]["rps"]
    table = Table("row", "requests/s", "vs /healthz", "p50 ms", "p95 ms", "p99 ms", "errors", "non-2xx")
    for label, r in rows:
        table.add_row(
            label,
            f"{r['rps']:.0f}",
            f"{100 * r['rps'] / base:.0f} %",
            f"{r['p50'] / 1000:.1f}",
            f"{r['p95'] / 1000:.1f}",
            f"{r['p99'] / 1000:.1f}",
            str(r["errors"]),
            str(r["non2xx"]),
        )
    console.print(table)
    if uploads:
        times = [t for t, _ in uploads]
        said = Counter(s for _, s in uploads)
        console.print(
            f"hostile uploads answered meanwhile: {len(uploads)} ("
            + ", ".join(f"{code} ×{n}" for code, n in said.most_common())
            + f"), each in {min(times):.1f}–{max(times):.1f} s "
            f"(CPU limit {os.environ.get('DOCSIGN_UPLOAD_CPU_SECONDS', '5')} s)"
        )
    else:
        console.print("hostile uploads answered meanwhile: none")
    page = dict(rows)["page"]
    console.print(
        f"page: {100 * page['rps'] / base:.0f} % of /healthz (target ≥ 50 %), p95 {page['p95'] / 1000:.1f} ms "
        f"(target < 50 ms); with uploads p95 {dict(rows)['page+uploads']['p95'] / 1000:.1f} ms"
    )
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
