"""The warm LibreOffice pool (crashes and timeouts are in test_bad_input.py)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from service.documents.convert import Converter, ConverterConfig
from service.documents.errors import ConverterUnavailable
from service.settings import Settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_close_kills_a_busy_process_but_leaves_its_pipes_to_its_thread(settings: Settings) -> None:
    """close() from one thread while another uses a process (a warm-up, a conversion): closing
    the pipes under the other thread let it read whatever file took the same descriptor next."""
    converter = Converter(ConverterConfig(settings.soffice_path, settings.uno_python))
    with converter._process() as busy:  # what a converting thread holds
        busy.start()
        worker = busy._proc
        assert worker is not None and worker.stdout is not None
        converter.close()
        assert worker.wait(timeout=30) is not None  # killed
        assert not worker.stdout.closed  # but its pipe is still the busy thread's
        assert busy._read_reply(5) is None  # which sees the end, not an error
        busy.stop()
    assert worker.stdout.closed
    assert converter.office_pids() == []
    with pytest.raises(ConverterUnavailable):
        converter.convert(b"PK")


def test_closing_while_another_thread_warms_up_leaves_nothing_running(settings: Settings) -> None:
    converter = Converter(ConverterConfig(settings.soffice_path, settings.uno_python))
    failures: list[BaseException] = []

    def warm() -> None:
        try:
            converter.warm_up()
        except ConverterUnavailable:
            pass  # what a warm-up cut short by close() may say
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=warm)
    thread.start()
    time.sleep(0.3)  # soffice is starting
    converter.close()
    thread.join(timeout=90)
    assert not thread.is_alive()
    assert failures == []
    worker = converter._all[0]._proc
    assert worker is None or worker.poll() is not None
    assert converter.office_pids() == []


def test_close_stops_soffice(settings: Settings) -> None:
    converter = Converter(ConverterConfig(settings.soffice_path, settings.uno_python))
    converter.warm_up()
    (pid,) = converter.office_pids()
    assert _alive(pid)
    converter.close()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def _small_docx() -> bytes:
    import io

    import docx

    document = docx.Document()
    document.add_paragraph("控辍保学")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_soffice_grown_past_its_limit_is_restarted_between_conversions(settings: Settings) -> None:
    config = ConverterConfig(settings.soffice_path, settings.uno_python, max_office_mb=1)  # any soffice is larger
    with Converter(config) as converter:
        docx = _small_docx()
        assert converter.convert(docx).startswith(b"%PDF")
        assert converter.office_pids() == []  # stopped after the conversion
        assert converter.convert(docx).startswith(b"%PDF")  # and started again by the next one


def test_soffice_within_its_limit_stays_warm(settings: Settings) -> None:
    with Converter(ConverterConfig(settings.soffice_path, settings.uno_python)) as converter:
        docx = _small_docx()
        converter.convert(docx)
        (pid,) = converter.office_pids()
        process = converter._all[0]
        size = process.office_mb()
        assert size is not None and 20 < size < converter.config.max_office_mb
        converter.convert(docx)
        assert converter.office_pids() == [pid]


_PARENT_DIES_WHILE_SOFFICE_STARTS = """
import os, sys, threading, time
from service.documents.convert import Converter, ConverterConfig

def soffice_running(profile):
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if b"soffice" in cmdline and profile.encode() in cmdline:
            return True
    return False

converter = Converter(ConverterConfig(sys.argv[1], sys.argv[2]))
threading.Thread(target=converter.warm_up, daemon=True).start()
process = converter._all[0]
deadline = time.monotonic() + 30
while not process._profile and time.monotonic() < deadline:
    time.sleep(0.01)
print(process._profile, flush=True)
while not soffice_running(process._profile) and time.monotonic() < deadline:
    time.sleep(0.01)
os._exit(1)  # gone, with soffice started but not yet answering
"""


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_soffice_does_not_outlive_a_parent_that_dies_while_it_starts(settings: Settings) -> None:
    """A server killed during start-up (its converter warming up) must not leave soffice running
    (each one holds about 200 MB)."""
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", _PARENT_DIES_WHILE_SOFFICE_STARTS, settings.soffice_path, settings.uno_python],
        capture_output=True,
        text=True,
        timeout=60,
    )
    profile = child.stdout.strip()
    assert profile.startswith("/"), child.stderr
    deadline = time.monotonic() + 30
    while _processes_with(profile) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_with(profile)
    for pid in left:
        os.kill(pid, 9)
    assert left == []
