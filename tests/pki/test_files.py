"""``certs/`` changes on its own: a staged key and certificate replace the current ones whole or
not at all, the replaced certificate is kept in ``history/``, and the lock keeps out other
processes while this one changes files."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from service.pki.certificates import build, subject_name
from service.pki.files import READY, CertsFolder, history, load_cert, save_cert, write_atomic

FILES = ("key.pem", "cert.crt")


def certificate(name: str, days_ago: int = 0) -> x509.Certificate:
    key = rsa.generate_private_key(65537, 2048)
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return build(
        subject_name(name, "测试证书中心"), key.public_key(), None, key, dt.timedelta(days=30), at=at, ca=False
    )


def current_unit(folder: CertsFolder) -> tuple[Path, x509.Certificate]:
    d = folder.dir / "units" / "school"
    old = certificate("旧证书", days_ago=1)
    write_atomic(d / "key.pem", b"old key")
    save_cert(d / "cert.crt", old)
    return d, old


def test_a_complete_stage_replaces_the_files_and_keeps_the_old_certificate(tmp_path: Path) -> None:
    folder = CertsFolder(tmp_path / "certs")
    d, old = current_unit(folder)
    new = certificate("新证书")
    with folder.locked():
        stage = folder.stage(d)
        write_atomic(stage / "key.pem", b"new key")
        save_cert(stage / "cert.crt", new)
        write_atomic(stage / READY, b"")
        folder.commit(d, FILES, "cert.crt")
    assert (d / "key.pem").read_bytes() == b"new key"
    assert load_cert(d / "cert.crt") == new
    assert not (d / ".next").exists()
    assert history(d, d / "cert.crt") == [old, new]


def test_a_stage_a_crash_left_is_finished_if_complete_and_thrown_away_if_not(tmp_path: Path) -> None:
    folder = CertsFolder(tmp_path / "certs")
    d, old = current_unit(folder)
    with folder.locked():
        stage = folder.stage(d)
        write_atomic(stage / "key.pem", b"half-written key")  # the crash came before .ready
    folder.commit(d, FILES, "cert.crt")
    assert (d / "key.pem").read_bytes() == b"old key" and load_cert(d / "cert.crt") == old
    assert not (d / ".next").exists()

    new = certificate("新证书")
    with folder.locked():
        stage = folder.stage(d)
        write_atomic(stage / "key.pem", b"new key")
        save_cert(stage / "cert.crt", new)
        write_atomic(stage / READY, b"")  # the crash came after .ready, before the move
    CertsFolder(tmp_path / "certs").commit(d, FILES, "cert.crt")  # the next process finishes it
    assert (d / "key.pem").read_bytes() == b"new key" and load_cert(d / "cert.crt") == new
    assert [c.serial_number for c in history(d, d / "cert.crt")] == [old.serial_number, new.serial_number]


TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a+") as fh:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("held")
    else:
        print("free")
"""


def test_the_lock_keeps_other_processes_out_and_this_thread_may_take_it_again(tmp_path: Path) -> None:
    folder = CertsFolder(tmp_path / "certs")

    def other_process() -> str:
        args = [sys.executable, "-c", TRY_LOCK, str(folder.dir / ".lock")]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    with folder.locked():
        assert other_process() == "held"
        with folder.locked():  # re-entrant: a part that locks calls another that locks
            assert other_process() == "held"
        assert other_process() == "held"
    assert other_process() == "free"
