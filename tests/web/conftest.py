"""A real server (``docsign serve``) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from service.settings import PROJECT_ROOT, Settings
from tests.conftest import TEST_KDF_ROUNDS

CHROMIUM = os.environ.get("DOCSIGN_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"viewport": {"width": 1280, "height": 860}}
PHONE = {"viewport": {"width": 375, "height": 812}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]

    def settings(self) -> Settings:
        return Settings(data_dir=self.home / "var", certs_dir=self.home / "certs", public_base_url=self.url)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("web")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PUBLIC_BASE_URL": url,
        # every page is visited at two widths by several users, all from 127.0.0.1: more logins a
        # minute than a person makes (the limit itself is tested through the API)
        "DOCSIGN_LOGIN_RATE_PER_MINUTE": "600",
    }
    docsign = str(Path(sys.executable).with_name("docsign"))
    subprocess.run([docsign, "init"], env=env, cwd=home, check=True, capture_output=True)
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server writes to it until the end of the session
    proc = subprocess.Popen(
        [docsign, "serve", "--demo", "--port", str(port)], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("server did not start:\n" + (home / "server.log").read_text())
        yield Server(url, home, env)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module: Playwright's sync API keeps an event loop running on the main thread while it is
    open, and pyHanko (signing, verifying in other tests) starts loops of its own there."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
    yield b
    b.close()


@dataclass
class Watch:
    """Console errors and failed requests seen by a page: both must stay empty."""

    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.console_errors.append(str(err)))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        return page

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def _failed(self, request: Request) -> None:
        if request.failure and "ERR_ABORTED" in request.failure and request.resource_type == "document":
            return  # a navigation replaced by a download
        self.failed.append(f"{request.failure} {request.url}")

    def clean(self) -> None:
        assert not self.console_errors, self.console_errors
        assert not self.failed, self.failed


def context(browser: Browser, device: dict[str, object]) -> BrowserContext:
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True, **device)  # type: ignore[arg-type]
    ctx.set_default_timeout(30_000)
    return ctx


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page scrolls sideways at {width[1]} px: content is {width[0]} px wide ({page.url})"


def csrf_headers(page: Page) -> dict[str, str]:
    """The header a script's own write needs (the page's forms get the token from app.js)."""
    for cookie in page.context.cookies():
        if cookie.get("name") in ("docsign_csrf", "__Host-docsign_csrf"):
            return {"X-CSRF-Token": str(cookie.get("value", ""))}
    return {}


def login(page: Page, server: Server, username: str, password: str = "kcbx-demo-2024") -> None:
    page.goto(server.url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/login" not in page.url, page.content()[:500]
