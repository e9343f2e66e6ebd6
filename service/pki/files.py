"""The files under ``certs/``: written atomically, changed under one lock that every process sharing
the folder takes, and replaced by a staged commit, so that a reader never pairs a new key with an
old certificate.

A part of the PKI that replaces a key and its certificate writes the new files into ``.next/``
beside them (:meth:`CertsFolder.stage`), marks the stage complete with ``.ready`` and moves it into
place (:meth:`CertsFolder.commit`); the certificate it replaces moves to ``history/``. The next
process to take the lock finishes a complete stage that a crash left behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service.pki.errors import PkiNotInitialized

STAGE, READY = ".next", ".ready"

#: Files changed by atomic replacement get a new inode: (inode, mtime, size) tells a process that
#: another one has renewed what it keeps in memory.
Stamp = tuple[int, int, int]


def stamp(path: Path) -> Stamp | None:
    """What the file at ``path`` is now (see :data:`Stamp`), or None when there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, synced, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_cert(path: Path, cert: x509.Certificate) -> None:
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM))


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise PkiNotInitialized() from None


def history(d: Path, current: Path) -> list[x509.Certificate]:
    """Certificates kept in ``d/history/`` and the current one, oldest first."""
    certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (d / "history").glob("*.crt")]
    if current.exists():
        certs.append(x509.load_pem_x509_certificate(current.read_bytes()))
    return sorted(certs, key=lambda c: (c.not_valid_before_utc, c.serial_number))


class CertsFolder:
    """``certs/`` and its lock. :attr:`lock` alone keeps other threads of this process out (the
    parts hold it to read and fill their caches); :meth:`locked` keeps out other processes too."""

    def __init__(self, path: Path) -> None:
        self.dir = Path(path)
        self.lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def locked(self) -> Iterator[None]:
        """This thread alone, and this process alone among those sharing ``certs/``; re-entrant."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / ".lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def name(self, path: Path) -> str:
        """A file's name under ``certs/`` (``units/bureau/key.pem``): how a key store names a key."""
        return path.relative_to(self.dir).as_posix()

    @staticmethod
    def stage(d: Path) -> Path:
        """An empty ``.next/`` in ``d`` for a new key and certificate; under the lock."""
        stage = d / STAGE
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        os.chmod(d, 0o700)
        os.chmod(stage, 0o700)
        return stage

    @staticmethod
    def commit(d: Path, files: Sequence[str], cert_name: str) -> None:
        """Move a staged key and certificate into place, the certificate they replace into
        ``history/``; under the lock. A stage is complete once ``.ready`` is written; a complete one
        that a crash left behind is finished here, an incomplete one thrown away, so a reader never
        pairs a new key with an old certificate. ``files`` are moved in order: the last one is what
        other processes watch for a change."""
        stage = d / STAGE
        if not stage.is_dir():
            return
        if not (stage / READY).exists():
            shutil.rmtree(stage)
            return
        staged, current = stage / cert_name, d / cert_name
        if staged.exists() and current.exists():
            old = load_cert(current)
            if old.serial_number != load_cert(staged).serial_number:
                kept = d / "history" / f"{old.serial_number}.crt"
                if not kept.exists():
                    save_cert(kept, old)
        for name in files:
            if (stage / name).exists():
                os.replace(stage / name, d / name)
        (stage / READY).unlink()
        stage.rmdir()
