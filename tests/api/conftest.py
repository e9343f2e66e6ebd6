"""A running service for API tests: real database (SQLite file or PostgreSQL), real LibreOffice,
a PKI made for the test, and a clock the test can move forward."""

from __future__ import annotations

import atexit
import base64
import io
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import Workbook
from PIL import Image, ImageDraw

from service.accounts.service import create_user
from service.app import create_app
from service.clock import Clock
from service.container import Services
from service.db.session import Database
from service.documents.convert import Converter, ConverterConfig
from service.pki.store import Pki
from service.settings import PROJECT_ROOT, Settings
from service.units.models import Unit
from tests.conftest import TEST_KDF_ROUNDS
from tests.databases import migrated_sqlite

PASSWORD = "test-password-1"
PKI_PASSPHRASE = "api-test-passphrase"


@dataclass
class Service:
    client: TestClient
    clock: Clock
    settings: Settings

    @property
    def state(self) -> Services:
        state: Services = self.client.app.state.service  # type: ignore[attr-defined]
        return state

    def login(self, username: str, password: str = PASSWORD) -> None:
        self.client.cookies.clear()
        r = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        # as the pages' script does: every write carries the session's CSRF token
        self.client.headers["X-CSRF-Token"] = csrf_cookie(self.client)

    def open_periods(self) -> None:
        """What the ``campaigns.open_periods`` schedule does (every minute, on the wall clock): open
        the recurring campaigns' periods due by the test's clock. Pages and GETs only read them."""
        with self.state.db.session() as s:
            self.state.campaigns.refresh_recurring(s)
            s.commit()

    def wait_job(self, job_id: int, timeout: float = 300) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("done", "failed"):
                return dict(job)
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish")


def csrf_cookie(client: TestClient) -> str:
    for name in ("docsign_csrf", "__Host-docsign_csrf"):
        if name in client.cookies:
            return str(client.cookies[name])
    raise AssertionError("the login set no CSRF cookie")


_template_lock = threading.Lock()
_template: list[Path] = []


def pki_template() -> Path:
    """A local PKI (root, issuing CA, TSA) made once per test process, whose certs folder each
    running service starts from a copy of: making one costs three RSA keys, about a second, in
    every test. A copy, so that a test whose clock rolls its TSA over changes only its own."""
    with _template_lock:
        if not _template:
            folder = Path(tempfile.mkdtemp(prefix="docsign-pki-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            Pki.from_settings(_settings(folder)).init()
            _template.append(folder / "certs")
        return _template[0]


def _settings(tmp: Path, database_url: str = "", **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp / "var",
        certs_dir=tmp / "certs",
        templates_dir=PROJECT_ROOT / "templates",
        schemas_dir=PROJECT_ROOT / "schemas",
        database_url=database_url,
        public_base_url="https://kcbx.example.edu.cn",
        pki_passphrase=PKI_PASSPHRASE,  # type: ignore[arg-type]
        pki_kdf_rounds=overrides.pop("pki_kdf_rounds", TEST_KDF_ROUNDS),
        verify_rate_per_minute=overrides.pop("verify_rate_per_minute", 10_000),
        login_rate_per_minute=overrides.pop("login_rate_per_minute", 10_000),
        **overrides,
    )


_converters: list[Converter] = []


def shared_converter() -> Converter:
    """One warm LibreOffice pool per test process, shared by every running service and the
    session's engine (as a server shares its pool between requests): starting soffice costs
    seconds, and most tests convert a few documents."""
    with _template_lock:
        if not _converters:
            settings = Settings()
            config = ConverterConfig(settings.soffice_path, settings.uno_python, timeout=120)
            _converters.append(Converter(config))
            atexit.register(_converters[0].close)
        return _converters[0]


@contextmanager
def running_service(
    tmp: Path, database_url: str = "", middleware: Sequence[type] = (), *, warm: bool = False, **overrides: Any
) -> Iterator[Service]:
    """The app over a test's own folder; LibreOffice and the upload checkers start when first
    needed (``warm`` starts them with the app, as a server does)."""
    settings = _settings(tmp, database_url, **overrides)
    if not database_url and not (settings.data_dir / "docsign.sqlite3").exists():
        migrated_sqlite(settings.data_dir / "docsign.sqlite3")  # the newest schema, as the app would make it
    if not any(key.startswith(("pki_", "certs_")) for key in overrides) and not settings.certs_dir.exists():
        shutil.copytree(pki_template(), settings.certs_dir)
    clock = Clock()
    own_office = any(key.startswith(("soffice", "uno_", "conver")) for key in overrides)
    app = create_app(settings, clock, warm=warm, converter=None if own_office else shared_converter())
    for m in middleware:  # outermost, around the app's own
        app.add_middleware(m)
    with TestClient(app) as client:
        yield Service(client, clock, settings)


def activate(service: Service, url: str, password: str = PASSWORD) -> dict[str, Any]:
    """The holder opens the activation link on their own device (no session of the staff who made
    it) and sets their password; where a second factor is required, the answer carries its address."""
    token = url.rsplit("/", 1)[-1]
    holder = TestClient(service.client.app)  # another browser: the app is already started
    r = holder.post(f"/api/activation/{token}", json={"password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def bootstrap_bureau(
    service: Service, code: str = "LCJT", name: str = "济南市历城区教育和体育局", username: str = "bureau"
) -> None:
    """The first bureau, its first staff account and its three administrators (三员: ``sysadmin``,
    ``secadmin``, ``auditor``), as `docsign add-user` makes them at installation."""
    db: Database = service.state.db
    with db.session() as s:
        unit = Unit(code=code, name=name, type="bureau", head_name="刘建华")
        s.add(unit)
        s.flush()
        create_user(s, username=username, password=PASSWORD, display_name="韩玮玮", role="bureau_staff", unit=unit)
        if username == "bureau":
            for admin, role, person in ADMINS:
                create_user(s, username=admin, password=PASSWORD, display_name=person, role=role, unit=unit)
        s.commit()


#: The three administrators every test district has (username, role, name).
ADMINS = (
    ("sysadmin", "system_admin", "高峰"),
    ("secadmin", "security_admin", "孟琳"),
    ("auditor", "audit_admin", "薛静"),
)


LICHENG = [
    ("单位代码", "单位名称", "单位类型", "上级单位代码", "负责人", "联系电话"),
    ("WSR", "历城区王舍人街道教育办公室", "街道教育办", "LCJT", "李志强", "0531-88120000"),
    ("WSR-SH", "历城区王舍人街道石河小学", "学校", "WSR", "赵明", "0531-88120001"),
    ("WSR-XD", "历城区王舍人街道辛甸小学", "学校", "WSR", "钱红", ""),
    ("WSR-ZX", "历城区王舍人街道中学", "学校", "WSR", "孙建国", ""),
    ("HJL", "历城区洪家楼街道教育办公室", "街道教育办", "LCJT", "周海燕", ""),
    ("HJL-XX", "历城区洪家楼小学", "学校", "HJL", "吴桂兰", ""),
    ("HJL-BX", "历城区洪家楼北路小学", "学校", "HJL", "郑伟", ""),
    ("HJL-ZX", "历城区洪家楼中学", "学校", "HJL", "王丽娟", ""),
    ("SYXX", "济南市历城区实验小学", "区直学校", "LCJT", "王秀兰", "13805310001"),
    ("DEZX", "济南市历城区第二中学", "学校", "LCJT", "陈国庆", ""),
]


def xlsx(rows: list[tuple[object, ...]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def signature_data_url() -> str:
    img = Image.new("RGB", (420, 160), "white")
    ImageDraw.Draw(img).line([(20, 120), (90, 30), (160, 120), (240, 40), (400, 110)], fill=(15, 15, 15), width=7)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def setup_licheng(service: Service) -> dict[str, int]:
    """The small district of the issue: a bureau, two offices with three schools each, two 区直学校,
    imported through the API from an Excel sheet, with an account for every unit. Returns unit ids by code."""
    bootstrap_bureau(service)
    c = service.client
    service.login("bureau")
    r = c.post("/api/units/import", files={"file": ("历城区单位.xlsx", xlsx(LICHENG))})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 10, "updated": 0}
    units = {u["code"]: u["id"] for u in c.get("/api/units").json()}
    service.login("sysadmin")  # the system administrator makes the accounts
    for code, *_ in LICHENG[1:]:
        # a signer's account has no password until its holder activates it with the link
        r = c.post(
            "/api/users",
            json={
                "username": f"{code.lower()}-head",
                "display_name": f"{code}负责人",
                "role": "unit_signer",
                "unit_id": units[code],
            },
        )
        assert r.status_code == 201, r.text
        activate(service, r.json()["activation"]["activation_url"])
        if code in ("WSR", "HJL"):
            r = c.post(
                "/api/users",
                json={
                    "username": f"{code.lower()}-staff",
                    "password": PASSWORD,
                    "display_name": f"{code}办事员",
                    "role": "office_staff",
                    "unit_id": units[code],
                },
            )
            assert r.status_code == 201, r.text
    service.login("bureau")
    return units
