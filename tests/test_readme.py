"""The README's commands as a new user runs them.

Each test works in a fresh copy of the project (what git tracks and would track: no ``.venv``, no
``var/``, no ``certs/`` keys, no caches) in a temporary folder, with no ``DOCSIGN_`` setting but those
the README itself sets, and runs the commands of the sections "两条命令", "命令行" and "性能" as they
are written there; the long ones get their smallest options. A command added to those sections
without a way to run it here fails ``test_every_command_of_the_readme_is_run_here``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
SECTIONS = ("两条命令", "命令行", "性能")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
DEMO_PASSWORD = "kcbx-demo-2024"
#: What a person types at `docsign add-user`'s password prompt.
NEW_PASSWORD = "Lc-jiaotiju-2026-chushi"

pytestmark = pytest.mark.timeout(1200)


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    following = text.find("\n## ", start + 1)
    return text[start : following if following != -1 else len(text)]


def commands(title: str) -> list[str]:
    """The commands of one README section: the lines of its ```bash blocks, continuations joined,
    comments and blank lines left out."""
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", section(README.read_text(encoding="utf-8"), title), re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """This process's environment without any of the service's settings (the tests set some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DOCSIGN_", "PYTEST_", "COV_"))}


@dataclass
class Copy:
    """A fresh copy of the project and the environment its commands run in."""

    root: Path
    env: dict[str, str]

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.root,
            env=self.env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"`{command}` exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"`{command}`:\n{done.stderr}"
        return done

    def start(self, command: str) -> subprocess.Popen[str]:
        """A long-running command (a server), in its own process group, its output in a file."""
        log = (self.root / "command.log").open("w")
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.root / "command.log").read_text(errors="replace")


def fresh_copy(dest: Path) -> Path:
    """What a clone holds: the files git tracks, and the new ones it does not ignore."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = PROJECT_ROOT / os.fsdecode(name)
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


@pytest.fixture()
def copy(tmp_path: Path) -> Iterator[Copy]:
    root = fresh_copy(tmp_path / "docsign")
    yield Copy(root, clean_environment())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    """A fresh copy after `scripts/setup` (which `scripts/run` and `scripts/test` call first), made
    once for the command-line section and the benchmarks (which work in folders of their own):
    each test takes its own copy of the environment. This module's tests run in one process."""
    copy = Copy(fresh_copy(tmp_path_factory.mktemp("installed") / "docsign"), clean_environment())
    copy.run("scripts/setup")
    return copy


def wait_healthy(url: str, proc: subprocess.Popen[str], copy: Copy, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the server stopped (status {proc.returncode}):\n{copy.log()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).json()["status"] == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not answer:\n" + copy.log())


def stop(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a person stops it."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the server did not stop on Ctrl-C") from None


class Browserless:
    """The HTTP API as a program uses it with a cookie session (the CSRF token from its cookie)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def login(self, username: str) -> None:
        self.http.cookies.clear()
        r = self.http.post("/api/auth/login", json={"username": username, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["X-CSRF-Token"] = self.http.cookies["docsign_csrf"]

    def wait_job(self, job_id: int, timeout: float = 600) -> dict[str, object]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.http.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("done", "failed"):
                assert job["status"] == "done", job
                return dict(job)
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish: {job}")


def test_scripts_run_serves_the_demo_district_that_issues_a_campaign_and_a_rosters_notices(copy: Copy) -> None:
    """`scripts/run` from a fresh copy: the demo service, whose bureau issues a 承诺书 campaign and
    whose school issues a roster's notices (a relative data folder once broke both)."""
    assert commands("两条命令")[0] == "scripts/run"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = copy.start(f"scripts/run --port {port}")
    try:
        wait_healthy(url, proc, copy, timeout=900)
        assert "演示模式" in copy.log() and "wsr-sh-head" in copy.log()
        api = Browserless(url)
        api.login("bureau")
        today = dt.datetime.now(SHANGHAI).date()
        r = api.http.post(
            "/api/campaigns",
            json={
                "name": f"{today.year}年控辍保学承诺书",
                "year": today.year,
                "kinds": ["pledge"],
                "deadline": f"{today + dt.timedelta(days=20)}T16:00",
            },
        )
        assert r.status_code == 201, r.text
        campaign = r.json()["id"]
        r = api.http.post(f"/api/campaigns/{campaign}/issue")
        assert r.status_code == 202, r.text
        api.wait_job(r.json()["id"])
        status = api.http.get(f"/api/campaigns/{campaign}/status").json()
        assert status["pending"] == status["total"] > 0, status  # issued to every school, none signed yet
        assert status["by_state"]["issued"] == status["total"], status

        api.login("wsr-sh-head")
        sheet = (copy.root / "docs/examples/名单示例.csv").read_bytes()
        r = api.http.post(
            "/api/rosters",
            files={"file": ("名单示例.csv", sheet)},
            data={"kind": "enrollment_notice", "report_by": str(today + dt.timedelta(days=30))},
        )
        assert r.status_code == 201, r.text
        roster = r.json()["id"]
        r = api.http.post(f"/api/rosters/{roster}/issue")
        assert r.status_code == 202, r.text
        api.wait_job(r.json()["id"])
        school = api.http.get("/api/units").json()[0]["id"]
        pdf = api.http.get(f"/api/rosters/{roster}/print/{school}.pdf?purpose=存档")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF"), pdf.text[:200]
    finally:
        assert stop(proc) == 0 or proc.returncode in (-signal.SIGINT, 130), copy.log()
    assert "Traceback" not in copy.log(), copy.log()
    # everything it made is in the copy's own folders, as the README says
    assert (copy.root / "var" / "docsign.sqlite3").is_file() and (copy.root / "certs").is_dir()


def test_scripts_test_sets_up_checks_and_runs_tests(copy: Copy) -> None:
    """`scripts/test` from a fresh copy, with its smallest run (one small test file). The type
    checker starts from this checkout's cache when it has one (the same sources: only its time)."""
    assert commands("两条命令")[1] == "scripts/test"
    if (PROJECT_ROOT / ".mypy_cache").is_dir():
        shutil.copytree(PROJECT_ROOT / ".mypy_cache", copy.root / ".mypy_cache")
    done = copy.run("scripts/test tests/test_workdir.py -p no:randomly", timeout=1500)
    for step in ("== setup done", "== ruff", "== mypy", "== import contracts", "== pytest"):
        assert step in done.stdout, done.stdout
    assert re.search(r"\d+ passed", done.stdout), done.stdout


def test_the_command_line_section_runs_as_written_from_top_to_bottom(installed: Copy) -> None:
    """Every line of "命令行", in order, in a fresh copy after setup; the server started by
    `serve --demo` is stopped with Ctrl-C once it answers."""
    copy = Copy(installed.root, dict(installed.env))  # the section's exports stay in this test
    for line in commands("命令行"):
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            copy.env[name] = value
            continue
        if " serve " in f" {line} ":
            port = free_port()
            proc = copy.start(f"{line} --port {port}")
            try:
                wait_healthy(f"http://127.0.0.1:{port}", proc, copy)
            finally:
                stop(proc)
            assert "演示模式" in copy.log(), copy.log()
            continue
        done = copy.run(line, stdin=f"{NEW_PASSWORD}\n" if " add-user " in line else None)
        if " verify " in line and line.endswith(".pdf"):
            assert "真实有效" in done.stdout, done.stdout
    # what the commands said they made is where they said
    for made in ("notice.pdf", "pledge.pdf", "signed.pdf", "打印/WSR-SH-print.pdf", "var/docsign.sqlite3"):
        assert (copy.root / made).is_file(), made


#: The 性能 section's benchmarks with their smallest options (the README gives the defaults).
BENCH_OPTIONS = {
    "bench/pipeline.py": "--count 4 --chunk 2 --single-runs 1 --verify-sample 2",
    "bench/notices.py": "--count 12 --single 1 --naive 1",
    "bench/verify.py": "--seconds 1 --notices 2",
    "bench/compare.py": "--count 500",
}


@pytest.mark.parametrize("bench", sorted(BENCH_OPTIONS))
def test_the_performance_section_runs_each_benchmark_with_its_smallest_options(installed: Copy, bench: str) -> None:
    [line] = [c for c in commands("性能") if bench in c]
    done = installed.run(f"{line} {BENCH_OPTIONS[bench]}", timeout=900)
    assert "│" in done.stdout or "|" in done.stdout, done.stdout  # it printed its table


def test_every_command_of_the_readme_is_run_here() -> None:
    """The tests above know every command of the three sections (a new one needs a way to run)."""
    assert commands("两条命令") == ["scripts/run", "scripts/test"]
    assert {c.split()[1] for c in commands("性能")} == set(BENCH_OPTIONS)
    for line in commands("命令行"):
        assert line.startswith((".venv/bin/docsign ", "export DOCSIGN_")), line
