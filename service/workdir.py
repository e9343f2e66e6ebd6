"""Temporary folders of this process under the work folder, named by the process id, so that the
folders a killed process left behind are found and removed at the next start."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from service.settings import private_dir


def make_temp_dir(root: Path | None, purpose: str) -> Path:
    """A new folder ``{root}/{pid}-{purpose}-XXXX`` (the system's temporary folder if ``root`` is None)."""
    if root is not None:
        private_dir(root)  # decrypted copies of archived files pass through here
    # absolute: tools started in other folders (soffice takes its profile as a file URL) must find it
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{purpose}-", dir=root)).absolute()


@contextlib.contextmanager
def temp_dir(root: Path | None, purpose: str) -> Iterator[Path]:
    path = make_temp_dir(root, purpose)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with this id runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user has that id
        return True
    return True


def clean_dead(root: Path) -> int:
    """Remove the folders of processes that no longer run; returns how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.iterdir():
        pid_text = path.name.split("-", 1)[0]
        if path.is_dir() and pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
