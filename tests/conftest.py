"""Shared fixtures: real LibreOffice, a real local PKI made at run time, a real archive folder.

The expensive pieces (a warm soffice, the PKI, the engine) are made once per test session; each
test that writes gets its own archive folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization

from service.clock import Clock
from service.container import Services
from service.documents.convert import Converter
from service.documents.pipeline import DocumentEngine
from service.pki.store import Pki
from service.pki.token import TokenSettings
from service.settings import PROJECT_ROOT, Settings
from service.storage.local import LocalArchive
from tests import checks, sheet_shapes
from tests.databases import migrated_sqlite, postgres_database

if TYPE_CHECKING:
    from devtools.seaweedfs import SeaweedFS

PASSPHRASE = "test-passphrase"
#: PBKDF2 rounds of the key files the tests' own PKIs write: production's 600,000 cost about 0.2 s
#: of CPU per key written and read again, some minutes over the suite; production refuses fewer
#: (``Settings.production_problems``), and the tests of key files at rest use the real figure.
TEST_KDF_ROUNDS = 10_000

# Production is the default environment and refuses development keys; the tests (and the servers
# they start, which inherit this environment) run as development, with the keys made for them.
os.environ["DOCSIGN_ENVIRONMENT"] = "development"
# One key for the audit chain and form tokens in every process a test starts (a Celery worker
# with a data folder of its own would otherwise make a key of its own and break the chain).
os.environ.setdefault("DOCSIGN_SECRET_KEY", "tests-only-audit-and-form-token-key-8c1f2e9a")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docsign")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Settings:
    return Settings(
        data_dir=session_dir / "var",
        certs_dir=session_dir / "certs",
        templates_dir=PROJECT_ROOT / "templates",
        schemas_dir=PROJECT_ROOT / "schemas",
        public_base_url="https://kcbx.example.edu.cn",
        pki_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        pki_kdf_rounds=TEST_KDF_ROUNDS,
        merge_chunk_size=20,
    )


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real object store (SeaweedFS's ``weed mini``), started once for the session on first use.
    Give each test a bucket of its own (``seaweedfs.create_bucket``)."""
    from devtools.seaweedfs import SeaweedFS  # boto3 only for the tests that need it

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pki(settings: Settings) -> Pki:
    p = Pki.from_settings(settings)
    p.init()
    return p


#: Debian's SoftHSM2 (``softhsm2``, installed by scripts/setup): the PKCS#11 token of the tests.
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM_PIN = "246810"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TokenSettings:
    """A SoftHSM2 token of this test's own, initialised in a configuration under ``tmp_path``
    (``SOFTHSM2_CONF`` in this process and the workers it spawns)."""
    import pkcs11

    folder = tmp_path / "softhsm"
    (folder / "tokens").mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "docsign-test",
            "--pin",
            SOFTHSM_PIN,
            "--so-pin",
            "1357",
        ],
        check=True,
        capture_output=True,
    )
    pkcs11.lib(SOFTHSM_MODULE).reinitialize()  # the module reads its configuration when initialised
    return TokenSettings(SOFTHSM_MODULE, "docsign-test", SOFTHSM_PIN)


@pytest.fixture(scope="session")
def converter() -> Converter:
    """The test process's one warm LibreOffice pool (closed as the process exits)."""
    from tests.api.conftest import shared_converter

    return shared_converter()


@pytest.fixture(scope="session")
def engine(settings: Settings, pki: Pki, converter: Converter) -> Iterator[DocumentEngine]:
    e = DocumentEngine(settings, pki=pki, converter=converter)
    yield e
    e.close()


@pytest.fixture()
def fresh_archive(tmp_path: Path) -> LocalArchive:
    return LocalArchive(tmp_path / "archive")


@pytest.fixture()
def isolated_engine(settings: Settings, pki: Pki, converter: Converter, fresh_archive: LocalArchive) -> DocumentEngine:
    """The session's warm resources with an archive of its own, to see exactly what a test stored."""
    return DocumentEngine(settings, pki=pki, converter=converter, archive=fresh_archive)


@pytest.fixture(scope="session")
def nss_db(session_dir: Path, pki: Pki) -> str:
    """An NSS database trusting our root CA, for poppler's pdfsig."""
    root = session_dir / "root.crt"
    root.write_bytes(pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    return checks.nss_db(session_dir / "nss", root)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test that takes it runs twice: on a SQLite file and on its own PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Like ``database_url``, with the newest schema already in place (a copy of a database
    migrated once per test process): the SQLite file in the test's ``var/``, or its own
    PostgreSQL database."""
    if request.param == "sqlite":
        migrated_sqlite(tmp_path / "var" / "docsign.sqlite3")
        yield ""
    else:
        with postgres_database(migrated=True) as url:
            yield url


@contextmanager
def built_services(tmp_path: Path, settings: Settings, converter: Converter, database_url: str) -> Iterator[Services]:
    """The service's use cases over a real database, a fresh archive, the session's PKI and
    LibreOffice, and a clock of their own; no HTTP."""
    built = Services.build(
        settings.model_copy(update={"data_dir": tmp_path / "var", "database_url": database_url}),
        Clock(),
        converter=converter,
    )
    built.prepare()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture()
def services(
    tmp_path: Path, settings: Settings, pki: Pki, converter: Converter, migrated_database_url: str
) -> Iterator[Services]:
    """Services on SQLite and on PostgreSQL (each test that takes it runs twice), over a copy of the
    session's PKI: a test that moves its clock on may have its scheduled upkeep roll the TSA over on
    that day, which must never leave the next test a TSA whose certificate starts in the future."""
    own = settings.model_copy(update={"certs_dir": tmp_path / "certs"})
    shutil.copytree(pki.dir, own.certs_dir)
    with built_services(tmp_path, own, converter, migrated_database_url) as built:
        yield built


@pytest.fixture(scope="session")
def roster_corpus() -> dict[tuple[str, str], tuple[str, bytes]]:
    """Rosters in every real-world shape and format (``tests/sheet_shapes.py``), converted once."""
    return sheet_shapes.corpus()


#: Test files that use the local Redis's DB 6 and 7 (the scale-out profile's broker and rate
#: limits): under pytest-xdist they all run in one worker, one after another. Paths, not names:
#: ``tests/sheets/test_limits.py`` (the sheet reader's limits) uses no Redis.
REDIS_FILES = (
    "tests/jobs/test_celery_runner.py",
    "tests/api/test_licheng_flow.py",
    "tests/test_scaleout.py",
    "tests/test_limits.py",
    "tests/http/test_ops.py",
)


#: Test files whose tests share a module-scoped fixture (a signed document, 50 archive timestamps,
#: an installed copy of the project): each goes to one worker whole, so that the fixture is made
#: once rather than again for every test that worker runs between two of another file's.
SHARED_FIXTURE_FILES = frozenset(
    path.relative_to(PROJECT_ROOT).as_posix()
    for path in (PROJECT_ROOT / "tests").rglob("test_*.py")
    if 'scope="module"' in path.read_text(encoding="utf-8")
)


def work_unit(nodeid: str) -> str:
    """What pytest-xdist sends to one worker as a whole: the Redis files together, each browser
    module on its own (its tests walk one story on one demo server, in order), each file with a
    module-scoped fixture on its own, any other test alone."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if path in REDIS_FILES:
        return "redis"
    if "browser" in name or path in SHARED_FIXTURE_FILES:
        return path
    return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # pytest 9.2 no longer lets pytest-xdist's own ``loadgroup`` rename items, so the grouping is ours
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # The Redis unit (the scale-out profile's real workers, which mostly wait on them) goes
            # out first, so it runs beside the rest rather than after it; the other units keep
            # pytest-xdist's order (most tests first). Only the queue of units is reordered: a
            # worker is sent indices into its own collection, which must stay as collected.
            if not getattr(self, "_redis_first", False):
                self._redis_first = True
                if "redis" in self.workqueue:
                    self.workqueue.move_to_end("redis", last=False)
            super()._assign_work_unit(node)

    return Grouped(config, log)
