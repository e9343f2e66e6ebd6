"""Benchmark: guardian notices end to end, from an Excel roster to archived signed PDFs.

Each run works in a fresh folder (its own SQLite database, archive and local PKI) and in its own
process, so its peak memory is its own:

  batch N       roster import + batch issuance (merged conversion, parallel signing), database rows,
                archive and the per-school print PDFs included, at 2,000 and 5,000 notices (peak
                memory compared between the two), with the bytes of a signed notice and the CPU
                time of every process of the run;
  one by one    the single-document path (what issuing from a form does), per notice;
  naive         what a clerk would otherwise script: docxtpl, a fresh soffice per document, pyHanko's
                default signer loaded from disk for each document (no QR code).

The batch and one-by-one runs are made with each signing engine (``DOCSIGN_SIGNING_ENGINE``): the
fast one the service runs by default, and pyHanko's own API, the reference it is tested against.

    .venv/bin/python bench/notices.py                   # N = 2,000 and 5,000
    .venv/bin/python bench/notices.py --count 300 --count 600 --single 20 --naive 10   # a quick run

``--fields REF`` runs the batch and one-by-one runs of this checkout (personal fields sealed in the
database) beside those of the commit REF, checked out for the run (e.g. the one before them)::

    .venv/bin/python bench/notices.py --fields 007c668 --count 1000 --single 30

``--profile scale-out`` compares, in one run and on the same PostgreSQL and SeaweedFS, the roster
issued by the embedded runner (signing in worker processes, and signing in the job's own process)
with the scale-out profile's Celery workers (1 and 2 pool processes, Redis broker); the difference
between one Celery worker and the embedded run that signs in its own process is the queue's
overhead per notice:

    .venv/bin/python bench/notices.py --profile scale-out --count 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # the roster generator lives with the tests


def _setup(
    home: Path, count: int, signing_engine: str = "fast", archive_encryption: bool = True
) -> tuple[Any, Any, bytes]:
    from service.db.session import Database
    from service.demo import load_demo
    from service.settings import Settings
    from tests.rosters.roster_data import rows, xlsx

    # a throwaway deployment: development (its own audit key in data_dir), not production
    settings = Settings(
        data_dir=home / "var",
        certs_dir=home / "certs",
        public_base_url="https://kcbx.example.edu.cn",
        environment="development",
        signing_engine=signing_engine,
        archive_encryption=archive_encryption,
    )
    db = Database(settings)
    db.migrate()
    with db.session() as s:
        load_demo(s)
        s.commit()
    schools = ["WSR-SH", "WSR-XD", "WSR-ZX", "HJL-XX", "HJL-BX", "HJL-ZX", "SYXX", "DEZX"]
    return settings, db, xlsx(rows(count, schools))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (soffice, signing workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _office_cpu_seconds(services: Any) -> float:
    """CPU time of the running soffice processes (grandchildren: not in this process's rusage)."""
    total = 0.0
    for pid in services.engine.converter.office_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _bytes_per_document(settings: Any, hashes: list[str] | None = None) -> float:
    """Average size of the signed documents in the archive folder (those of ``hashes`` when given:
    the print PDFs of a roster are kept there too)."""
    root = Path(settings.archive_dir)
    files = [root / h[:2] / h[2:4] / f"{h}.pdf" for h in hashes] if hashes else list(root.glob("??/??/*.pdf"))
    return sum(f.stat().st_size for f in files) / max(len(files), 1)


def run_batch(home: Path, count: int, signing_engine: str = "fast", archive_encryption: bool = True) -> dict[str, Any]:
    """The roster through the service's own use cases: import, then the roster.issue job."""
    import datetime as dt

    from sqlalchemy import func, select

    from service.accounts.scope import Scope
    from service.archive.models import Document
    from service.container import Services
    from service.rosters.models import RosterEntry
    from service.units.models import Unit

    settings, db, sheet = _setup(home, count, signing_engine, archive_encryption)
    db.dispose()
    cpu0 = _cpu_seconds()
    services = Services.build(settings)
    try:
        services.prepare()
        with services.db.session() as s:
            bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            assert bureau is not None
            scope = Scope.operator(s, bureau, "bench")
            t0 = time.perf_counter()
            roster, errors = services.rosters.import_roster(
                s, scope, sheet, "roster.xlsx", kind="enrollment_notice", report_by=dt.date(2099, 8, 31)
            )
            assert not errors, errors[:3]
            s.commit()
            t1 = time.perf_counter()
            services.engine.converter.warm_up()
            t2 = time.perf_counter()
            # the roster.issue job, run here as the server's job runner runs it
            job, _ = services.rosters.start_issue(s, scope, roster, services.jobs)
            s.commit()
            ended = services.jobs.run_here(job.id)
            assert ended.status == "done", ended.error_message
            issued = ended.done
            t3 = time.perf_counter()
            recorded = s.scalar(
                select(func.count()).select_from(RosterEntry).where(RosterEntry.document_id.is_not(None))
            )
            assert issued == count == recorded, (issued, count, recorded)
            notices = s.scalars(
                select(Document.current_sha256).join(RosterEntry, RosterEntry.document_id == Document.id)
            ).all()
            stages = services.engine.times.per_document_ms()
            office_cpu = _office_cpu_seconds(services)
            stage_sum = sum(stages.values())
    finally:
        services.close()
    cpu = _cpu_seconds() - cpu0 + office_cpu  # the signing workers have ended: their time is counted
    end_to_end = (t1 - t0) + (t3 - t2)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "count": count,
        "engine": signing_engine,
        "bytes": _bytes_per_document(settings, list(notices)),
        "cpu_ms": 1000 * cpu / count,
        "seconds": end_to_end,
        "import_s": t1 - t0,
        "issue_s": t3 - t2,
        "stages": stages,
        "stage_sum_ms": stage_sum,
        "peak_mb": _peak_mb(),
        "children_peak_mb": children,
    }


def run_one_by_one(
    home: Path, count: int, signing_engine: str = "fast", archive_encryption: bool = True
) -> dict[str, Any]:
    """Each notice through the single-document issue-and-record path, as a case's notice is issued."""
    import datetime as dt

    from sqlalchemy import select

    from service.archive.service import RecordAs
    from service.audit.service import Actor
    from service.container import Services
    from service.documents.pipeline import IssueRequest
    from service.units.models import Unit
    from tests.rosters.roster_data import rows

    settings, db, _ = _setup(home, 1, signing_engine, archive_encryption)
    db.dispose()
    data = rows(count, ["WSR-SH"])
    services = Services.build(settings)
    try:
        services.prepare()
        with services.db.session() as s:
            bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            assert bureau is not None
            services.engine.converter.warm_up()
            fields = {
                "report_by": "2099-08-31",
                "issuer_name": bureau.name,
                "issue_date": dt.date.today().isoformat(),
                "school_name": "历城区王舍人街道石河小学",
            }
            t0 = time.perf_counter()
            for r in data:
                services.archive.issue(
                    s,
                    IssueRequest(
                        "enrollment_notice",
                        {**fields, "student_name": r[1], "guardian_name": r[9], "student_id_number": r[2]},
                        issuer_key=bureau.cert_key,
                    ),
                    RecordAs(issuer=bureau),
                    Actor(None, "bench"),
                )
                s.commit()
            seconds = time.perf_counter() - t0
    finally:
        services.close()
    return {
        "count": count,
        "engine": signing_engine,
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "bytes": _bytes_per_document(settings),
    }


def run_naive(home: Path, count: int) -> dict[str, Any]:
    """docxtpl + a fresh soffice + pyHanko's SimpleSigner.load per document, B-LT as ours."""
    import datetime as dt
    import hashlib
    import io

    from asn1crypto import crl as asn1_crl
    from docxtpl import DocxTemplate
    from jinja2 import Environment
    from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator import ValidationContext

    from service.documents.fields import FILTERS
    from tests.rosters.roster_data import rows

    settings, db, _ = _setup(home, 1)
    db.dispose()
    from service.pki.store import Pki

    pki = Pki(
        settings.certs_dir,
        settings.pki_passphrase.get_secret_value(),
        settings.pki_organization,
        settings.public_base_url,
    )
    pki.init()
    pki.ensure_unit("bureau", "济南市历城区教育和体育局")
    certs = settings.certs_dir
    passphrase = settings.pki_passphrase.get_secret_value().encode()
    env = Environment(autoescape=True)
    env.filters.update(FILTERS)
    out = home / "naive"
    out.mkdir()
    data = rows(count, ["WSR-SH"])
    template = settings.templates_dir / "enrollment_notice.docx"
    t0 = time.perf_counter()
    for n, r in enumerate(data):
        tpl = DocxTemplate(template)
        tpl.render(
            {
                "guardian_name": r[9],
                "student_name": r[1],
                "school_name": "历城区王舍人街道石河小学",
                "report_by": "2099-08-31",
                "issuer_name": "济南市历城区教育和体育局",
                "issue_date": dt.date.today().isoformat(),
                "regulation": "山东省义务教育条例",
                "school_address": None,
                "contact_phone": None,
            },
            jinja_env=env,
        )
        docx = out / f"{n}.docx"
        tpl.save(docx)
        subprocess.run(
            [
                "soffice",
                "--headless",
                f"-env:UserInstallation=file://{home}/naive-profile-{n}",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out),
                str(docx),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "FONTCONFIG_FILE": str(ROOT / "service/documents/fonts.conf")},
        )
        signer = signers.SimpleSigner.load(
            str(certs / "units/bureau/key.pem"),
            str(certs / "units/bureau/cert.crt"),
            ca_chain_files=(str(certs / "units/bureau/chain.pem"),),
            key_passphrase=passphrase,
        )
        tsa = DummyTimeStamper(
            load_cert_from_pemder(str(certs / "tsa/tsa.crt")),
            load_private_key_from_pemder(str(certs / "tsa/tsa.key"), passphrase),
        )
        vc = ValidationContext(
            trust_roots=[load_cert_from_pemder(str(certs / "root/ca.crt"))],
            crls=[asn1_crl.CertificateList.load((certs / f"crl/{w}.crl").read_bytes()) for w in ("root", "issuing")],
            allow_fetching=False,
        )
        writer = IncrementalPdfFileWriter(io.BytesIO((out / f"{n}.pdf").read_bytes()))
        signed = signers.sign_pdf(
            writer,
            signers.PdfSignatureMetadata(
                field_name="Issuer",
                certify=True,
                subfilter=fields.SigSeedSubFilter.PADES,
                embed_validation_info=True,
                validation_context=vc,
            ),
            signer=signer,
            timestamper=tsa,
        ).getvalue()
        (out / f"{hashlib.sha256(signed).hexdigest()}.pdf").write_bytes(signed)
    seconds = time.perf_counter() - t0
    signed_files = [f for f in out.glob("*.pdf") if len(f.stem) == 64]
    size = sum(f.stat().st_size for f in signed_files) / max(len(signed_files), 1)
    return {"count": count, "seconds": seconds, "peak_mb": _peak_mb(), "bytes": size}


BROKER = os.environ.get("DOCSIGN_BENCH_BROKER_URL", "redis://127.0.0.1:6379/6")


def run_profile(home: Path, count: int, runner: str) -> dict[str, Any]:
    """The roster on PostgreSQL and SeaweedFS: ``embedded`` (signing processes), ``embedded-0``
    (signing in the job's process, as a Celery worker does), ``celery-1`` / ``celery-2`` (the
    scale-out profile with that many worker processes). Timed from the start of the issue to the
    job's end, print files included, with LibreOffice already warm everywhere."""
    import datetime as dt

    import redis
    from sqlalchemy import func, select

    from devtools.scaleout import CeleryWorkers
    from devtools.seaweedfs import SeaweedFS
    from service.accounts.scope import Scope
    from service.container import Services
    from service.demo import load_demo
    from service.rosters.models import Roster, RosterEntry
    from service.settings import Settings
    from service.units.models import Unit
    from tests.databases import postgres_database
    from tests.rosters.roster_data import rows, xlsx

    schools = ["WSR-SH", "WSR-XD", "WSR-ZX", "HJL-XX", "HJL-BX", "HJL-ZX", "SYXX", "DEZX"]
    celery_workers = int(runner.split("-")[1]) if runner.startswith("celery") else 0
    with SeaweedFS(home / "seaweedfs") as store, postgres_database() as url:
        store.create_bucket("bench")
        env = {
            **os.environ,
            **store.settings_env("bench"),
            "DOCSIGN_DATABASE_URL": url,
            "DOCSIGN_DATA_DIR": str(home / "var"),
            "DOCSIGN_CERTS_DIR": str(home / "certs"),
            "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        }
        values: dict[str, Any] = {
            **store.settings_values("bench"),
            "database_url": url,
            "data_dir": home / "var",
            "certs_dir": home / "certs",
            "public_base_url": "https://kcbx.example.edu.cn",
        }
        if runner == "embedded-0":
            values["sign_workers"] = 0
        if celery_workers:
            redis.Redis.from_url(BROKER).flushdb()
            env["DOCSIGN_BROKER_URL"] = values["broker_url"] = BROKER
        services = Services.build(Settings(**values))
        workers = None
        try:
            services.prepare()
            with services.db.session() as s:
                load_demo(s)
                s.commit()
            if celery_workers:
                workers = CeleryWorkers(env, home / "worker.log", concurrency=celery_workers, cwd=home)
                workers.start()
            else:
                # Like the Celery runs (no beat): no maintenance (verifying new documents) meanwhile.
                services.jobs.schedules = []
                services.jobs.start()

            def issue(n: int, seed: int) -> float:
                with services.db.session() as s:
                    bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
                    assert bureau is not None
                    scope = Scope.operator(s, bureau, "bench")
                    roster, errors = services.rosters.import_roster(
                        s,
                        scope,
                        xlsx(rows(n, schools, seed=seed)),
                        "roster.xlsx",
                        kind="enrollment_notice",
                        report_by=dt.date(2099, 8, 31),
                    )
                    assert not errors, errors[:3]
                    s.commit()
                    t0 = time.perf_counter()
                    job, _ = services.rosters.start_issue(s, scope, roster, services.jobs)
                    s.commit()
                    job_id, roster_id = job.id, roster.id
                assert services.jobs.wait(job_id, 3600)
                seconds = time.perf_counter() - t0
                with services.db.session() as s:
                    issued = s.scalar(
                        select(func.count())
                        .select_from(RosterEntry)
                        .where(RosterEntry.roster_id == roster_id, RosterEntry.document_id.is_not(None))
                    )
                    assert issued == n and s.get(Roster, roster_id) is not None, (issued, n)
                return seconds

            # Warm up: LibreOffice started in every process that will convert.
            issue(services.settings.merge_chunk_size * max(1, celery_workers) * 2, seed=1)
            seconds = issue(count, seed=2)
        finally:
            if workers is not None:
                workers.stop()
            services.close()
    return {"count": count, "seconds": seconds, "runner": runner}


def run_embedded(home: Path, count: int) -> dict[str, Any]:
    return run_profile(home, count, "embedded")


def run_embedded_in_process(home: Path, count: int) -> dict[str, Any]:
    return run_profile(home, count, "embedded-0")


def run_celery_1(home: Path, count: int) -> dict[str, Any]:
    return run_profile(home, count, "celery-1")


def run_celery_2(home: Path, count: int) -> dict[str, Any]:
    return run_profile(home, count, "celery-2")


def run_batch_reference(home: Path, count: int) -> dict[str, Any]:
    return run_batch(home, count, "pyhanko")


def run_one_by_one_reference(home: Path, count: int) -> dict[str, Any]:
    return run_one_by_one(home, count, "pyhanko")


def run_batch_plain(home: Path, count: int) -> dict[str, Any]:
    return run_batch(home, count, archive_encryption=False)


def run_one_by_one_plain(home: Path, count: int) -> dict[str, Any]:
    return run_one_by_one(home, count, archive_encryption=False)


RUNS = {
    "batch": run_batch,
    "batch-plain": run_batch_plain,
    "one-plain": run_one_by_one_plain,
    "batch-pyhanko": run_batch_reference,
    "one": run_one_by_one,
    "one-pyhanko": run_one_by_one_reference,
    "naive": run_naive,
    "embedded": run_embedded,
    "embedded-0": run_embedded_in_process,
    "celery-1": run_celery_1,
    "celery-2": run_celery_2,
}


def scale_out(count: int) -> int:
    console = Console(width=150)
    console.print(
        f"[bold]docsign notices benchmark, scale-out profile[/] ({os.cpu_count()} CPU cores, {count:,} notices)"
    )
    results = {name: spawn(name, count, console) for name in ("embedded", "embedded-0", "celery-1", "celery-2")}

    def rate(name: str) -> float:
        return float(results[name]["count"] / results[name]["seconds"])

    table = Table(
        title="入学通知书名单签发：同一 PostgreSQL 与 SeaweedFS，单机部署对比扩展部署（Celery）", title_justify="left"
    )
    for col in ("runner", "processes", "seconds", "notices/s", "vs embedded", "vs 1 Celery worker"):
        table.add_column(col, justify="right" if col != "runner" else "left")
    labels = {
        "embedded": ("embedded (signing processes)", f"1 + {os.cpu_count()} signing"),
        "embedded-0": ("embedded (signing in the job's process)", "1"),
        "celery-1": ("scale-out: Celery", "1 worker"),
        "celery-2": ("scale-out: Celery", "2 workers"),
    }
    for name, r in results.items():
        label, procs = labels[name]
        table.add_row(
            label,
            procs,
            f"{r['seconds']:.1f}",
            f"{rate(name):.1f}",
            f"{rate(name) / rate('embedded'):.2f}x",
            f"{rate(name) / rate('celery-1'):.2f}x",
        )
    console.print(table)
    overhead = 1000 * (results["celery-1"]["seconds"] - results["embedded-0"]["seconds"]) / count
    console.print(
        f"Queue overhead per notice (1 Celery worker minus the embedded run signing in its own process, "
        f"the same work in one process): {overhead:.1f} ms."
    )
    return 0


def at_rest(counts: list[int], single: int) -> int:
    """The archive sealed at rest (``DOCSIGN_ARCHIVE_ENCRYPTION``, on by default) beside in the
    clear, each run in its own process, alternated so a slower minute of the machine hits both."""
    console = Console(width=150)
    console.print(f"[bold]docsign notices benchmark: archive at rest[/] ({os.cpu_count()} CPU cores)")
    pairs = [("one by one", spawn("one-plain", single, console), spawn("one", single, console))]
    pairs += [(f"batch {n}", spawn("batch-plain", n, console), spawn("batch", n, console)) for n in counts]
    table = Table(title="入学通知书：归档加密（开）与不加密（关）", title_justify="left")
    for col in (
        "run",
        "notices",
        "s off",
        "s on",
        "notices/s off",
        "notices/s on",
        "on / off (time)",
        "CPU ms on / off",
    ):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, off, on in pairs:
        table.add_row(
            name,
            str(on["count"]),
            f"{off['seconds']:.1f}",
            f"{on['seconds']:.1f}",
            f"{off['count'] / off['seconds']:.1f}",
            f"{on['count'] / on['seconds']:.1f}",
            f"{on['seconds'] / off['seconds']:.3f}",
            f"{on['cpu_ms']:.1f} / {off['cpu_ms']:.1f}" if "cpu_ms" in on and "cpu_ms" in off else "",
        )
    console.print(table)
    return 0


def child(kind: str, count: int) -> None:
    import logging

    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="docsign-bench-") as tmp:
        os.chdir(tmp)
        result = RUNS[kind](Path(tmp), count)
    print("RESULT " + json.dumps(result))


def spawn(kind: str, count: int, console: Console, root: Path = ROOT) -> dict[str, Any]:
    """One run in a process of its own, of the code in ``root`` (a checkout of another commit for
    ``--fields``)."""
    console.print(f"  {kind} {count} {'' if root == ROOT else f'({root.name})'}…")
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / HERE.name), "--child", kind, "--count", str(count)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{kind} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][7:])
    return result


def sealed_fields(counts: list[int], single: int, baseline: str) -> int:
    """The database's personal fields sealed (this checkout) beside the code of ``baseline`` (a
    commit before they were), each run in its own process, alternated; the archive is sealed in
    both (the default)."""
    console = Console(width=150)
    console.print(f"[bold]docsign notices benchmark: sealed database fields[/] ({os.cpu_count()} CPU cores)")
    with tempfile.TemporaryDirectory(prefix="docsign-baseline-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), baseline], check=True)
        try:
            pairs = [("one by one", spawn("one", single, console, base), spawn("one", single, console))]
            pairs += [(f"batch {n}", spawn("batch", n, console, base), spawn("batch", n, console)) for n in counts]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)
    table = Table(title=f"入学通知书：数据库字段加密（开）与 {baseline}（未加密字段）", title_justify="left")
    for col in ("run", "notices", "s before", "s sealed", "notices/s before", "notices/s sealed", "sealed / before"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, off, on in pairs:
        table.add_row(
            name,
            str(on["count"]),
            f"{off['seconds']:.1f}",
            f"{on['seconds']:.1f}",
            f"{off['count'] / off['seconds']:.1f}",
            f"{on['count'] / on['seconds']:.1f}",
            f"{on['seconds'] / off['seconds']:.3f}",
        )
    console.print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--count", type=int, action="append", help="notices in a batch run, repeatable (default 2,000 and 5,000)"
    )
    parser.add_argument("--single", type=int, default=100, help="notices issued one by one (default 100)")
    parser.add_argument("--naive", type=int, default=100, help="notices through the naive pipeline (default 100)")
    parser.add_argument(
        "--profile", choices=("embedded", "scale-out"), default="embedded", help="scale-out: embedded vs Celery workers"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--at-rest",
        action="store_true",
        help="only the archive sealed at rest (the default) beside in the clear, batch and one by one",
    )
    parser.add_argument(
        "--fields",
        metavar="REF",
        help="only the database's sealed fields (this checkout) beside the commit REF, batch and one by one",
    )
    parser.add_argument("--child", choices=sorted(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = sorted(set(args.count or [2000, 5000]))
    if args.child:
        child(args.child, counts[0])
        return 0
    if args.profile == "scale-out":
        return scale_out(args.count[0] if args.count else 1000)
    if args.at_rest:
        return at_rest(counts, args.single)
    if args.fields:
        return sealed_fields(counts, args.single, args.fields)

    console = Console(width=150)
    console.print(f"[bold]docsign notices benchmark[/] ({os.cpu_count()} CPU cores, {ROOT})")
    naive = spawn("naive", args.naive, console)
    one = spawn("one", args.single, console)
    one_reference = spawn("one-pyhanko", args.single, console)
    batches = [spawn("batch", n, console) for n in counts]
    references = [spawn("batch-pyhanko", n, console) for n in counts]
    big, big_reference = batches[-1], references[-1]

    def rate(r: dict[str, Any]) -> float:
        return float(r["count"] / r["seconds"])

    table = Table(title="入学通知书：名单 -> 签章 PDF（含数据库与归档）", title_justify="left")
    columns = ("run", "notices", "seconds", "notices/s", "vs naive", "vs one by one", "KB/notice", "CPU ms/notice")
    for col in (*columns, "peak RSS MB (main / children)"):
        table.add_column(col, justify="right" if col != "run" else "left")
    rows = [("naive script", naive), ("one by one (single-document path)", one)]
    rows += [("batch", b) for b in batches]
    rows += [("one by one, pyHanko engine", one_reference)]
    rows += [("batch, pyHanko engine", b) for b in references]
    for name, r in rows:
        peak = f"{r['peak_mb']:.0f}" + (f" / {r['children_peak_mb']:.0f}" if "children_peak_mb" in r else "")
        table.add_row(
            name,
            str(r["count"]),
            f"{r['seconds']:.1f}",
            f"{rate(r):.1f}",
            f"{rate(r) / rate(naive):.1f}x",
            f"{rate(r) / rate(one):.1f}x",
            f"{r['bytes'] / 1024:.1f}",
            f"{r['cpu_ms']:.1f}" if "cpu_ms" in r else "",
            peak,
        )
    console.print(table)

    stages = Table(title=f"batch of {big['count']}: milliseconds per notice by stage", title_justify="left")
    stages.add_column("engine")
    for name in big["stages"]:
        stages.add_column(name, justify="right")
    stages.add_column("roster import", justify="right")
    stages.add_column("CPU, all processes", justify="right")
    for label, run in (("fast", big), ("pyHanko", big_reference)):
        stages.add_row(
            label,
            *(f"{v:.1f}" for v in run["stages"].values()),
            f"{1000 * run['import_s'] / run['count']:.1f}",
            f"{run['cpu_ms']:.1f}",
        )
    console.print(stages)
    console.print(
        f"Fast engine: {rate(big) / rate(naive):.0f}x the naive script (kept at 170x or more), "
        f"{big['bytes'] / 1024:.1f} KB a notice (kept at 60 KB or less); pyHanko engine: "
        f"{rate(big_reference) / rate(naive):.0f}x, {big_reference['bytes'] / 1024:.1f} KB; the fast engine "
        f"spends {big_reference['cpu_ms'] - big['cpu_ms']:.1f} CPU ms a notice less."
    )
    console.print(
        "Stages overlap: soffice converts the next chunk while worker processes stamp and sign this one, "
        "so the stage times add up to more than the wall time per notice "
        f"({1000 * big['seconds'] / big['count']:.1f} ms). Stage times are per process (split, stamp and "
        "sign in the workers); the CPU column counts every process of the run, soffice included."
    )
    if len(batches) > 1:
        small = batches[0]
        console.print(
            f"Peak memory of the main process: {small['peak_mb']:.0f} MB at {small['count']:,} notices, "
            f"{big['peak_mb']:.0f} MB at {big['count']:,} ({big['peak_mb'] / small['peak_mb']:.2f}x)."
        )
    if args.json:
        figures = {
            "naive": naive,
            "one": one,
            "batches": batches,
            "one_pyhanko": one_reference,
            "batches_pyhanko": references,
        }
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
