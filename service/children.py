"""Child processes the service spawns leave Ctrl-C to the process that started them.

A terminal's Ctrl-C reaches every process of its foreground group. The service's spawned children
(the signing workers, the upload checker) are stopped by their parent, in order, when it shuts down;
an interrupt in the middle of their start-up would only print a traceback at the person who pressed
Ctrl-C. So they start through a two-line wrapper that ignores SIGINT: an ignored signal stays
ignored across ``exec``, and Python then installs no KeyboardInterrupt handler.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import sys
import threading
from pathlib import Path

from service.workdir import make_temp_dir

_lock = threading.Lock()
_done: Path | None = None


def spawn_without_interrupts(temp_root: Path) -> Path:
    """Make every process spawned from now on (``multiprocessing``'s spawn start method) ignore
    SIGINT; returns the wrapper used. It lives in this process's own temporary folder under
    ``temp_root`` (removed with the folders of dead processes, ``workdir.clean_dead``)."""
    global _done
    with _lock:
        if _done is not None and _done.exists():
            return _done
        wrapper = make_temp_dir(temp_root, "spawn") / "python"
        fd = os.open(wrapper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(sys.executable)} \"$@\"\n")
        multiprocessing.get_context("spawn").set_executable(str(wrapper))
        _done = wrapper
        return wrapper
