"""A 1,000-notice batch killed three times at random points and resumed: exactly 1,000 documents,
1,000 codes, every PDF valid, each school's print copy in class order. (It was 2,000: the kills and
the resumption are the same at half the size, and the suite's time is half this test's.)"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from service.archive.models import Document
from service.db.session import Database
from service.rosters.models import PrintBundle, RosterEntry
from service.settings import Settings
from service.storage import open_store
from tests import checks
from tests.conftest import TEST_KDF_ROUNDS
from tests.rosters.roster_data import rows, xlsx

DOCSIGN = str(Path(sys.executable).with_name("docsign"))
COUNT = 1000
SCHOOLS = ["WSR-SH", "WSR-XD", "WSR-ZX", "HJL-XX", "HJL-BX", "HJL-ZX", "SYXX", "DEZX"]


def test_killed_batch_resumes_without_duplicates(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(tmp_path / "var"),
        "DOCSIGN_CERTS_DIR": str(tmp_path / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        "COLUMNS": "160",
    }

    def docsign(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCSIGN, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)

    assert docsign("init").returncode == 0
    assert docsign("demo").returncode == 0
    (tmp_path / "一年级名单.xlsx").write_bytes(xlsx(rows(COUNT, SCHOOLS, seed=3)))
    imported = docsign("roster", "import", "一年级名单.xlsx", "--issuer", "LCJT", "--report-by", "2099-08-31")
    assert imported.returncode == 0, imported.stderr
    roster_id = re.search(r"已导入名单 (\d+)", imported.stdout).group(1)  # type: ignore[union-attr]

    settings = Settings(data_dir=tmp_path / "var", certs_dir=tmp_path / "certs")
    db = Database(settings)

    def issued() -> int:
        with db.session() as s:
            return int(
                s.scalar(select(func.count()).select_from(RosterEntry).where(RosterEntry.document_id.is_not(None))) or 0
            )

    rnd = random.Random(2024)
    progress = [0]
    for _ in range(3):
        proc = subprocess.Popen(
            [DOCSIGN, "notices", "issue", "--roster", roster_id],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # kill it at a random point once it has made some progress (and before it is done)
        target = progress[-1] + rnd.randint(60, 250)
        deadline = time.monotonic() + 300
        while issued() < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(rnd.random())
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        progress.append(issued())
        assert progress[-1] < COUNT, "the batch finished before it could be killed"
    assert progress == sorted(progress) and progress[-1] > progress[1] > 0, progress

    finished = docsign("notices", "issue", "--roster", roster_id)
    assert finished.returncode == 0, finished.stderr
    assert f"名单共 {COUNT} 份均已签发" in finished.stdout

    with db.session() as s:
        entries = list(s.scalars(select(RosterEntry).where(RosterEntry.roster_id == int(roster_id))))
        docs = {d.id: d for d in s.scalars(select(Document))}
        bundles = list(s.scalars(select(PrintBundle).where(PrintBundle.roster_id == int(roster_id))))
        assert len(entries) == COUNT and all(e.document_id for e in entries)
        assert len({e.document_id for e in entries}) == COUNT
        assert len(docs) == COUNT  # no stray document from the killed runs
        assert len({e.code for e in entries}) == COUNT
        assert len({d.code_hash for d in docs.values()}) == COUNT
        # issued entries keep only the hash of their code, the same the document keeps
        assert {e.code for e in entries} == {d.code_hash for d in docs.values()}
        archive = open_store(settings, "documents")  # sealed at rest: read through the store
        hashes = [docs[e.document_id].current_sha256 for e in entries]  # type: ignore[index]
        order = {}
        for e in sorted(entries, key=lambda e: (e.school_id, e.class_order)):
            order.setdefault(e.school_id, []).append(e.fields["student_name"])
        bundle_files = {b.school_id: (b.sha256, b.notices, b.pages) for b in bundles}
    db.dispose()

    nss = _nss(tmp_path)

    def valid(sha256: str) -> bool:
        with archive.local_path(sha256) as path:
            out = subprocess.run(
                ["pdfsig", "-nssdir", nss, str(path)], capture_output=True, text=True, timeout=60
            ).stdout
        return "Signature is Valid." in out and "Certificate is Trusted." in out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(valid, hashes))
    assert all(results), f"{results.count(False)} PDFs failed pdfsig"

    assert set(bundle_files) == set(order) and len(bundle_files) == len(SCHOOLS)
    for school_id, (sha256, notices, pages) in bundle_files.items():
        assert notices == pages == len(order[school_id])
        with archive.local_path(sha256) as path:
            text = subprocess.run(
                ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, timeout=300
            ).stdout
        pages_text = text.split("\f")
        names = order[school_id]
        for i in sorted(rnd.sample(range(len(names)), 25)):
            assert f"{names[i]}已经达到" in re.sub(r"\s+", "", pages_text[i]), (school_id, i, names[i])


def _nss(home: Path) -> str:
    return checks.nss_db(home / "nss", home / "certs" / "root" / "ca.crt")
