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
