"""Temporary folders are named by process, and those of dead processes go at the next start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from service.workdir import clean_dead, make_temp_dir, temp_dir


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"{dead.pid}-print-abc123"
    (left / "nested").mkdir(parents=True)
    (left / "nested" / "school-1.pdf").write_bytes(b"%PDF-")
    mine = make_temp_dir(tmp_path, "convert")
    assert mine.name.startswith(f"{os.getpid()}-convert-")
    stranger = tmp_path / "not-ours"
    stranger.mkdir()
    assert clean_dead(tmp_path) == 1
    assert not left.exists() and mine.exists() and stranger.exists()
    with temp_dir(tmp_path, "print") as scratch:
        (scratch / "a.pdf").write_bytes(b"x")
    assert not scratch.exists()
