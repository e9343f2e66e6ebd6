"""Convert: DOCX -> PDF with LibreOffice kept warm.

Each :class:`OfficeProcess` is one ``soffice`` with a private user profile (several soffice
processes on one profile fail silently) driven over UNO by ``office_worker.py``, which runs under
Debian's Python because only that interpreter can import ``uno``. The worker is its own process
group: when a conversion runs past its timeout, or soffice dies, the whole group is killed and the
next conversion starts a fresh one. :class:`Converter` keeps a small pool of them.

Measured here: a fresh soffice per document costs about 1.1 s; a warm one about 0.1–0.2 s; one
conversion of a merged DOCX of many documents a few ms per document (see ``bench/pipeline.py``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from service.documents.errors import ConversionError, ConversionTimeout, ConverterCrashed, ConverterUnavailable
from service.workdir import make_temp_dir, temp_dir

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("office_worker.py")
FONTS_CONF = Path(__file__).with_name("fonts.conf")

#: PDF export options: Word bookmarks become named destinations (the signing stage finds its
#: seal positions and each document's first page through them); fonts are embedded as subsets.
PDF_FILTER_DATA: dict[str, Any] = {
    "ExportBookmarksToPDFDestination": True,
    "ExportBookmarks": False,
    "ExportFormFields": False,
    "EmbedStandardFonts": True,
    "UseTaggedPDF": False,
}


@dataclass(frozen=True)
class ConverterConfig:
    soffice_path: str
    uno_python: str
    timeout: float = 120.0
    startup_timeout: float = 60.0
    processes: int = 1
    #: soffice holds on to memory as it converts (about 6 MB more every 1,000 notices here); past
    #: this resident size it is restarted between two conversions. 0 never restarts it.
    max_office_mb: int = 1024
    #: Where soffice profiles and conversion files go (folders named by process id, so the next
    #: start removes what a killed process left); None for the system's temporary folder.
    temp_root: Path | None = None


class OfficeProcess:
    """One warm soffice and its UNO worker. Not thread-safe: the pool hands it to one caller at a time."""

    def __init__(self, config: ConverterConfig) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self.office_pid: int | None = None
        self.conversions = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        cfg = self.config
        if not shutil.which(cfg.soffice_path) and not os.path.exists(cfg.soffice_path):
            raise ConverterUnavailable(f"未找到 LibreOffice（{cfg.soffice_path}），请先运行 scripts/setup 安装。")
        if not os.path.exists(cfg.uno_python):
            raise ConverterUnavailable(
                f"未找到能加载 LibreOffice UNO 组件的 Python（{cfg.uno_python}），请先运行 scripts/setup 安装 python3-uno。"
            )
        self._profile = str(make_temp_dir(cfg.temp_root, "office"))
        env = dict(os.environ)
        env["FONTCONFIG_FILE"] = str(FONTS_CONF)
        env["HOME"] = self._profile  # soffice writes caches under HOME
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        pipe = "docsign_" + secrets.token_hex(8)
        self._proc = subprocess.Popen(
            [
                cfg.uno_python,
                str(WORKER),
                "--soffice",
                cfg.soffice_path,
                "--profile",
                os.path.join(self._profile, "user"),
                "--pipe",
                pipe,
                "--startup-timeout",
                str(cfg.startup_timeout),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        hello = self._read_reply(cfg.startup_timeout + 5)
        if hello is None or not hello.get("ready"):
            reason = "" if hello is None else str(hello.get("error", ""))
            self.stop()
            raise ConverterUnavailable(
                f"LibreOffice 启动失败，请确认已安装 libreoffice-writer 与 python3-uno。{reason}"
            )
        self.office_pid = int(hello["pid"])

    def _read_reply(self, timeout: float) -> dict[str, Any] | None:
        """The worker's next JSON line, or None on timeout or end of file."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout: IO[bytes] = self._proc.stdout
        deadline = time.monotonic() + timeout
        buf = b""
        fd = stdout.fileno()
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        return reply

    def convert_file(self, src: Path, dst: Path, timeout: float | None = None) -> None:
        if not self.alive:
            self.start()
        assert self._proc is not None and self._proc.stdin is not None
        request = {"id": self.conversions, "src": str(src), "dst": str(dst), "filter_data": PDF_FILTER_DATA}
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            raise ConverterCrashed() from None
        reply = self._read_reply(timeout or self.config.timeout)
        self.conversions += 1
        if reply is None:
            crashed = not self.alive
            self.stop()
            if crashed:
                raise ConverterCrashed()
            raise ConversionTimeout(
                f"文书转换为 PDF 超过 {timeout or self.config.timeout:g} 秒仍未完成，转换程序已重启，请稍后重试。"
            )
        if not reply.get("ok"):
            kind = reply.get("kind")
            if kind == "crashed":
                self.stop()
                raise ConverterCrashed()
            if kind == "load":
                raise ConversionError("LibreOffice 无法打开该文书，模板可能已损坏，请用 Word 或 WPS 重新保存后上传。")
            raise ConversionError(f"文书转换为 PDF 失败：{reply.get('error', '')}")

    def office_mb(self) -> int | None:
        """soffice's resident memory in MB, where the system tells (Linux), else None."""
        if self.office_pid is None:
            return None
        try:
            with open(f"/proc/{self.office_pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def kill(self) -> None:
        """Kill the worker and its soffice; the thread using this process sees it end."""
        proc = self._proc
        if proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
        self.office_pid = None


class Converter:
    """A pool of warm LibreOffice processes; thread-safe."""

    def __init__(self, config: ConverterConfig) -> None:
        self.config = config
        self._idle: queue.Queue[OfficeProcess] = queue.Queue()
        self._all = [OfficeProcess(config) for _ in range(config.processes)]
        for p in self._all:
            self._idle.put(p)
        self._closed = False

    @contextmanager
    def _process(self) -> Iterator[OfficeProcess]:
        if self._closed:
            raise ConverterUnavailable("转换程序已关闭。")
        proc = self._idle.get()
        try:
            yield proc
        finally:
            self._recycle_if_grown(proc)
            self._idle.put(proc)

    def _recycle_if_grown(self, proc: OfficeProcess) -> None:
        limit = self.config.max_office_mb
        if limit and proc.alive and (size := proc.office_mb()) is not None and size > limit:
            log.info("restarting soffice (pid %s): %d MB resident, above %d MB", proc.office_pid, size, limit)
            proc.stop()  # started again by its next conversion

    def convert(self, docx: bytes, timeout: float | None = None) -> bytes:
        """PDF bytes of a DOCX."""
        with self._process() as proc, temp_dir(self.config.temp_root, "convert") as tmp:
            src, dst = Path(tmp, "in.docx"), Path(tmp, "out.pdf")
            src.write_bytes(docx)
            proc.convert_file(src, dst, timeout)
            if not dst.exists():
                raise ConversionError("LibreOffice 没有生成 PDF，模板可能已损坏。")
            return dst.read_bytes()

    def warm_up(self) -> None:
        """Start every process now rather than on first use (taking each from the pool, so a
        conversion running meanwhile is never handed a process that is still starting)."""
        taken: list[OfficeProcess] = []
        try:
            for _ in self._all:
                proc = self._idle.get()
                taken.append(proc)
                if self._closed:
                    break
                if not proc.alive:
                    proc.start()
        finally:
            for proc in taken:
                if self._closed:  # closed while this was starting
                    proc.stop()
                self._idle.put(proc)

    def office_pids(self) -> list[int]:
        return [p.office_pid for p in self._all if p.office_pid is not None]

    def close(self) -> None:
        """Stop every process. One that another thread is using (a conversion, a warm-up) is
        killed but left to that thread to clean up: closing its pipes under it would let the
        thread read whatever file next takes the same descriptor number."""
        self._closed = True
        idle: list[OfficeProcess] = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for p in self._all:
            if any(p is q for q in idle):
                p.stop()
            else:
                p.kill()

    def __enter__(self) -> Converter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
