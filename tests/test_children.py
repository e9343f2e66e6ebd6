"""Spawned children leave Ctrl-C to their parent: no traceback from a child caught mid start-up."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from service.children import spawn_without_interrupts


def _wait_then_exit(seconds: float) -> None:
    time.sleep(seconds)


def _wait_until_ignoring_sigint(pid: int) -> None:
    """The kernel's record of the process's ignored signals (SigIgn, a hex mask) names SIGINT."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
        if ignored & (1 << (signal.SIGINT - 1)):
            return
        time.sleep(0.001)
    raise AssertionError("the child never came to ignore SIGINT")


def test_a_spawned_child_ignores_sigint_from_its_start(tmp_path: Path) -> None:
    wrapper = spawn_without_interrupts(tmp_path / "tmp")
    assert wrapper.stat().st_mode & 0o777 == 0o700
    assert wrapper.parent.name.startswith(f"{os.getpid()}-spawn-")  # removed with this process's folders
    child = multiprocessing.get_context("spawn").Process(target=_wait_then_exit, args=(2.0,))
    child.start()
    assert child.pid is not None
    _wait_until_ignoring_sigint(child.pid)  # the wrapper's shell has run its trap, Python has not begun
    os.kill(child.pid, signal.SIGINT)  # while it starts: importing, before any code of ours runs
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGINT)
    child.join(timeout=60)
    assert child.exitcode == 0  # it ran to its end; a KeyboardInterrupt would have made it 1
    assert spawn_without_interrupts(tmp_path / "other") == wrapper  # once per process
