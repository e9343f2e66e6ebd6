"""Sandbox: verify an uploaded PDF under hard limits, in a worker process killed past them.

A PDF built to be expensive (thousands of revisions, hundreds of signatures: 150 incremental
signatures took 118 s of CPU to check) must not stall the service. An upload is refused at once,
from the raw bytes, when it is larger or has more revisions or signatures than :class:`UploadLimits`
allows (``structure.rough_counts``). What remains is checked in a spawned worker process whose CPU
time per file is capped with ``RLIMIT_CPU`` (the kernel ends it past the cap), whose address space
is capped with ``RLIMIT_AS``, and which the caller kills once the wall-clock limit passes. A killed
worker is replaced; the caller's thread only waits on a pipe, so the service stays responsive.

Each answer is a :class:`~service.documents.verify.VerificationReport`; over a limit, one problem
``UPLOAD_TOO_COMPLEX`` says which limit in Chinese.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import logging
import math
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from asn1crypto import x509 as asn1_x509

from service.documents.errors import VerifierBusy, VerifierFull
from service.documents.structure import rough_counts
from service.documents.verify import Problem, VerificationReport, too_complex, verify_pdf

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: A worker spawns and imports pyHanko in about a second; this long on a very busy machine.
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class UploadLimits:
    """Hard limits for checking an uploaded PDF (the settings will carry them)."""

    #: Largest file accepted. A notice is 100–300 KB; a 责任书 with seal images about 1 MB.
    max_bytes: int = 20 * MB
    #: Revisions (the original and each incremental update): a notice has 2, plus one per later
    #: signature and per archive timestamp.
    max_revisions: int = 32
    #: Signatures and document timestamps: 3 at most on our documents, plus one archive timestamp
    #: every several years. Checking costs grow with the square of this (12: about 1 s of CPU).
    max_signatures: int = 12
    #: CPU seconds one check may use before its worker is killed (a notice takes about 0.1 s).
    cpu_seconds: int = 5
    #: Seconds to wait for an answer, however busy the machine; the worker is killed after.
    wall_seconds: float = 20.0
    #: Address space of a worker process (one checking a notice peaks near 110 MB).
    memory_bytes: int = 1024 * MB


def precheck(pdf: bytes, limits: UploadLimits) -> Problem | None:
    """The answer for a file over a limit that the raw bytes show (milliseconds), or None."""
    if len(pdf) > limits.max_bytes:
        return too_complex(f"文件大小 {len(pdf) / MB:.1f} MB，超过了上限 {limits.max_bytes / MB:.0f} MB。")
    counts = rough_counts(pdf)
    if counts.revisions > limits.max_revisions:
        return too_complex(f"文件有约 {counts.revisions} 个版本，超过了上限 {limits.max_revisions}。")
    if counts.signatures > limits.max_signatures:
        return too_complex(f"文件有约 {counts.signatures} 个签名，超过了上限 {limits.max_signatures}。")
    return None


@dataclass(frozen=True)
class _Job:
    pdf: bytes
    roots: list[bytes]
    crls: list[bytes]
    now: dt.datetime
    limits: UploadLimits
    pinned: frozenset[str] | None = None


def _serve(conn: Connection, memory_bytes: int) -> None:
    """A worker: imports first, then caps its memory and checks jobs one by one, each under its
    own CPU cap (RLIMIT_CPU counts the process's whole life, so each job's cap is set from the CPU
    time used so far)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A stranger's file waits for the CPU behind everyone else's requests (scans, signatures).
    os.nice(10)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    conn.send("ready")
    while True:
        try:
            if not _serve_one(conn):
                return
        except MemoryError:
            with suppress(OSError, MemoryError):
                conn.send(("memory", None))
            return  # a worker that ran out of memory is not reused


def _serve_one(conn: Connection) -> bool:
    """Check one job; False when told to stop or the caller is gone."""
    try:
        job: _Job | None = conn.recv()
    except EOFError:
        return False
    if job is None:
        return False
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    cap = math.ceil(usage.ru_utime + usage.ru_stime) + job.limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cap, cpu_hard))
    report = verify_pdf(
        job.pdf,
        [asn1_x509.Certificate.load(r) for r in job.roots],
        job.crls,
        now=job.now,
        max_revisions=job.limits.max_revisions,
        max_signatures=job.limits.max_signatures,
        pinned=job.pinned,
    )
    conn.send(("ok", report))
    return True


class _Died(Exception):
    """The worker was killed or died: ``why`` is cpu, wall, memory, startup or crash."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Worker:
    def __init__(self, context: Any, memory_bytes: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, memory_bytes), name="docsign-verify", daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def run(self, job: _Job) -> VerificationReport:
        if not self.ready:
            if not self.conn.poll(STARTUP_SECONDS):
                raise _Died("startup")
            self._receive()
            self.ready = True
        try:
            self.conn.send(job)
        except OSError:  # it died since the last job: say how
            self._receive()
            raise _Died("crash") from None
        if not self.conn.poll(job.limits.wall_seconds):
            raise _Died("wall")
        kind, report = self._receive()
        if kind != "ok":
            raise _Died(str(kind))
        assert isinstance(report, VerificationReport)
        return report

    def _receive(self) -> Any:
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(2)
            raise _Died("cpu" if self.process.exitcode == -signal.SIGXCPU else "crash") from None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def ask_to_stop(self) -> None:
        with suppress(OSError):  # a closed pipe: it already died
            self.conn.send(None)

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not. One still starting (importing the
        checker, not yet reading its pipe) holds no job: it is killed at once."""
        self.ask_to_stop()
        if self.ready or self.conn.poll(0):
            self.process.join(2)
        self.kill()


_WHY = {
    "cpu": "检查超过了 {cpu} 秒的计算时间上限。",
    "wall": "检查超过了 {wall:.0f} 秒的时间上限。",
    "memory": "检查所需内存超过了 {memory} MB 的上限。",
    "crash": "检查程序在处理该文件时意外退出。",
}


class UploadVerifier:
    """Verifies untrusted uploads in a few warm worker processes, each killed past its limits."""

    def __init__(self, limits: UploadLimits | None = None, workers: int = 1, waiting: int | None = None) -> None:
        self.limits = limits or UploadLimits()
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(workers)
        #: Uploads admitted at once: one checked by each worker and ``waiting`` more in line (one per
        #: worker by default). The rest are answered at once (:class:`VerifierFull`): an upload never
        #: holds a server thread that a scan needs for longer than its own check and one before it.
        self.line = workers + (workers if waiting is None else waiting)
        self._admitted = threading.BoundedSemaphore(self.line)
        self._in_line = 0
        self._count = threading.Lock()
        self._closed = False
        #: Workers are started by :meth:`warm` (a server does at start, in the background) or by
        #: the first upload: a process that never checks an upload never imports the checker.
        self._workers = workers
        self._warmed = False
        self._warming = threading.Lock()

    def warm(self) -> None:
        """Start the workers now, so that the first upload finds them ready."""
        with self._warming:
            if self._warmed or self._closed:
                return
            self._warmed = True
            for _ in range(self._workers):
                self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        return _Worker(self._context, self.limits.memory_bytes)

    def verify(
        self,
        pdf: bytes,
        trust_roots: Sequence[asn1_x509.Certificate],
        crls: Sequence[bytes] = (),
        *,
        now: dt.datetime | None = None,
        pinned: frozenset[str] | None = None,
    ) -> VerificationReport:
        """Check an upload like :func:`~service.documents.verify.verify_pdf`, within the limits.

        Raises :class:`VerifierFull` at once when the line is full (the workers busy and as many
        waiting), :class:`VerifierBusy` when every worker stays busy for the wall-clock limit.
        """
        now = now or dt.datetime.now(dt.UTC)
        limits = self.limits
        refused = precheck(pdf, limits)
        if refused is not None:
            return _refused(pdf, refused, now)
        if self._closed:
            raise VerifierBusy("验证服务正在关闭，请稍后重试。")
        if not self._admitted.acquire(blocking=False):
            raise VerifierFull(retry_after=limits.wall_seconds)
        with self._count:
            self._in_line += 1
        try:
            if not self._slots.acquire(timeout=limits.wall_seconds):
                raise VerifierBusy()
            try:
                return self._run(pdf, _Job(pdf, [r.dump() for r in trust_roots], list(crls), now, limits, pinned))
            finally:
                self._slots.release()
        finally:
            with self._count:
                self._in_line -= 1
            self._admitted.release()

    @property
    def in_line(self) -> int:
        """Uploads being checked or waiting for a worker now."""
        return self._in_line

    def _run(self, pdf: bytes, job: _Job) -> VerificationReport:
        limits = job.limits
        if not self._warmed:
            with suppress(OSError):
                self.warm()
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:  # a replacement failed to start earlier: try again now
            worker = self._spawn_or_busy()
        started = time.monotonic()
        try:
            report = worker.run(job)
        except _Died as died:
            worker.kill()
            with suppress(VerifierBusy):
                self._idle.put(self._spawn_or_busy())  # the next upload finds a warm worker
            log.warning("upload check stopped (%s) after %.1f s", died.why, time.monotonic() - started)
            if died.why == "startup":
                raise VerifierBusy("在线验证暂时无法启动检查程序，请稍后再试。") from None
            reason = _WHY[died.why].format(
                cpu=limits.cpu_seconds, wall=limits.wall_seconds, memory=limits.memory_bytes // MB
            )
            return _refused(pdf, too_complex(reason), job.now)
        if self._closed:
            worker.stop()
        else:
            self._idle.put(worker)
        return report

    def _spawn_or_busy(self) -> _Worker:
        try:
            return self._spawn()
        except OSError as exc:  # no process or pipe left on this machine
            log.error("cannot start an upload check worker: %s", exc)
            raise VerifierBusy("在线验证暂时无法启动检查程序，请稍后再试。") from exc

    def close(self) -> None:
        """Stop the workers (idle ones at once; a busy one is stopped by its caller's limits)."""
        with self._warming:
            self._closed = True
        idle: list[_Worker] = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for worker in idle:  # all told first, then each waited for: they exit together
            worker.ask_to_stop()
        for worker in idle:
            worker.stop()


def _refused(pdf: bytes, problem: Problem, now: dt.datetime) -> VerificationReport:
    return VerificationReport(sha256=hashlib.sha256(pdf).hexdigest(), signatures=[], problems=[problem], checked_at=now)


_shared: dict[UploadLimits, UploadVerifier] = {}
_shared_lock = threading.Lock()


def verify_untrusted(
    pdf: bytes,
    trust_roots: Sequence[asn1_x509.Certificate],
    crls: Sequence[bytes] = (),
    limits: UploadLimits | None = None,
    *,
    now: dt.datetime | None = None,
) -> VerificationReport:
    """Check an uploaded file under ``limits`` with a shared :class:`UploadVerifier` (one per set
    of limits, one worker, stopped at exit). A service that wants its own pool owns an
    :class:`UploadVerifier` instead."""
    limits = limits or UploadLimits()
    with _shared_lock:
        verifier = _shared.get(limits)
        if verifier is None:
            verifier = _shared[limits] = UploadVerifier(limits)
            atexit.register(verifier.close)
    return verifier.verify(pdf, trust_roots, crls, now=now)
