"""The scale-out profile on one machine, for tests, the benchmark and trying it by hand
(``scripts/scaleout``): SeaweedFS, a Celery worker pool and the web server, against the local
PostgreSQL and Redis. Every process is started in its own process group and stopped with TERM,
then KILL. A real deployment runs the same commands (``docsign worker``, ``docsign serve``) on
many machines with the settings the README lists; this module is never imported by the service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from service.errors import DocsignError

#: The command line installed next to this interpreter.
DOCSIGN = str(Path(sys.executable).with_name("docsign"))


class ScaleOutFailed(DocsignError):
    code = "SCALEOUT_FAILED"
    http_status = 500
    default_message = "扩展部署的本机演示启动失败，请查看日志。"


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """TERM to the process group, then KILL if it has not exited within ``timeout`` seconds. A
    group whose leader already died (a killed Celery worker) may still hold its pool processes:
    they are killed at once."""
    if proc is None:
        return
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a Celery worker's pool processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


class CeleryWorkers:
    """``docsign worker`` with ``concurrency`` pool processes, its log in ``log_path``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        concurrency: int = 2,
        beat: bool = False,
        cwd: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.concurrency = concurrency
        self.beat = beat
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [DOCSIGN, "worker", f"--concurrency={self.concurrency}"]
        if self.beat:
            args.append("--beat")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScaleOutFailed(f"后台任务工作进程启动失败，请查看日志 {self.log_path}：\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes() and len(self.pool()) >= self.concurrency:
                return
            time.sleep(0.2)
        self.stop()
        raise ScaleOutFailed(f"后台任务工作进程 {timeout:.0f} 秒内未就绪，请查看日志 {self.log_path}。")

    def pool(self) -> list[int]:
        """The pool processes that run tasks (the main process only hands tasks out)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return children_of(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (TERM: running tasks stop at their next checkpoint and go back to the
        queue), then KILL."""
        _stop(self.proc, timeout)
        self.proc = None


class WebServer:
    """``docsign serve`` on ``port``."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, port: int = 8000, cwd: Path | None = None) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        import urllib.request

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [DOCSIGN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScaleOutFailed(f"Web 服务启动失败，请查看日志 {self.log_path}。")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v", timeout=2):
                return
            time.sleep(0.3)
        self.stop()
        raise ScaleOutFailed(f"Web 服务 {timeout:.0f} 秒内未就绪，请查看日志 {self.log_path}。")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        _stop(self.proc, timeout)
        self.proc = None


class Component(Protocol):
    @property
    def running(self) -> bool: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...


@dataclass
class Supervisor:
    """Keeps the profile's processes up: one that dies is cleaned up (what is left of its process
    group killed) and started again, after 1, 2, 4 … seconds (at most ``max_delay``) when it keeps
    dying; more than ``limit`` restarts of one component within ``window`` seconds is a fault that
    restarting will not fix, and ``check`` raises."""

    components: dict[str, Component]
    out: Callable[[str], None] = print
    limit: int = 5
    window: float = 300.0
    max_delay: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _restarts: dict[str, list[float]] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        now = self.clock()
        for name, component in self.components.items():
            if component.running:
                continue
            if name not in self._due:
                component.stop(1.0)  # whatever the dead process left in its group goes now
                recent = [t for t in self._restarts.get(name, []) if now - t < self.window]
                if len(recent) >= self.limit:
                    raise ScaleOutFailed(
                        f"{name}在 {self.window:.0f} 秒内重启 {len(recent)} 次仍然退出，请查看日志后再启动。"
                    )
                delay = min(self.max_delay, 2.0 ** len(recent) - 1) if recent else 0.0
                self._due[name] = now + delay
                self.out(f"{name}意外退出，{delay:.0f} 秒后重启。")
            if self._due[name] <= now:
                del self._due[name]
                self._restarts.setdefault(name, []).append(now)
                try:
                    component.start()
                except ScaleOutFailed as exc:
                    self.out(f"{name}重启失败：{exc.message}")
                    continue
                self.out(f"{name}已重启。")


def main(argv: list[str] | None = None) -> int:
    """``scripts/scaleout``: the whole profile in the foreground until Ctrl-C (or TERM)."""
    import argparse

    from devtools.seaweedfs import SeaweedFS

    parser = argparse.ArgumentParser(
        description="在本机启动扩展部署：SeaweedFS 对象存储、Celery 工作进程与 Web 服务（使用本机 PostgreSQL 与 Redis），Ctrl-C 全部停止。"
    )
    parser.add_argument("--data", type=Path, default=Path("var/scaleout"), help="数据目录（默认 var/scaleout）")
    parser.add_argument("--workers", type=int, default=2, help="工作进程数（默认 2）")
    parser.add_argument("--port", type=int, default=8000, help="Web 端口（默认 8000）")
    parser.add_argument("--s3-port", type=int, default=8333, help="SeaweedFS 的 S3 端口（默认 8333）")
    parser.add_argument("--bucket", default="docsign", help="存储桶（默认 docsign）")
    parser.add_argument(
        "--database",
        default=os.environ.get("DOCSIGN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/docsign"),
        help="PostgreSQL 地址（默认取 DOCSIGN_DATABASE_URL，否则本机 docsign 库）",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("DOCSIGN_BROKER_URL", "redis://127.0.0.1:6379/0"),
        help="Redis 地址（默认取 DOCSIGN_BROKER_URL，否则本机 0 号库）",
    )
    args = parser.parse_args(argv)

    data = args.data.resolve()
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    store = SeaweedFS(data / "seaweedfs", s3_port=args.s3_port)
    workers: CeleryWorkers | None = None
    web: WebServer | None = None
    try:
        _ensure_database(args.database)
        store.start()
        store.create_bucket(args.bucket)
        env = {
            **os.environ,
            **store.settings_env(args.bucket),
            "DOCSIGN_DATABASE_URL": args.database,
            "DOCSIGN_BROKER_URL": args.broker,
            "DOCSIGN_DATA_DIR": str(data / "var"),
            # a trial on one machine: development keys unless the caller configured production
            "DOCSIGN_ENVIRONMENT": os.environ.get("DOCSIGN_ENVIRONMENT", "development"),
        }
        workers = CeleryWorkers(env, data / "logs" / "worker.log", concurrency=args.workers, beat=True)
        workers.start()
        web = WebServer(env, data / "logs" / "web.log", port=args.port)
        web.start()
        print(f"扩展部署已在本机启动：http://127.0.0.1:{args.port}/（环境：{env['DOCSIGN_ENVIRONMENT']}）")
        print(
            f"  对象存储 {store.endpoint_url}（存储桶 {args.bucket}），数据库 {args.database}，消息队列 {args.broker}"
        )
        print(f"  {args.workers} 个工作进程（含定时任务），日志在 {data / 'logs'}")
        print("按 Ctrl-C 停止全部进程。", flush=True)
        supervisor = Supervisor(
            {"SeaweedFS": store, "工作进程": workers, "Web 服务": web}, out=lambda line: print(line, flush=True)
        )
        while not stop_requested:
            supervisor.check()
            time.sleep(0.5)
    except DocsignError as exc:
        print(f"错误 [{exc.code}] {exc.message}")
        return 2
    finally:
        if web is not None:
            web.stop()
        if workers is not None:
            workers.stop()
        store.stop()
    print("已全部停止。")
    return 0


def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    except SQLAlchemyError as exc:
        raise ScaleOutFailed(f"无法连接 PostgreSQL（{target.render_as_string(hide_password=True)}）：{exc}") from exc
    finally:
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
