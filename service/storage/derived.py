"""Files made from archived ones and kept to be served again (a notice's page images): a cache in
a folder under the work folder, owner-only, sealed with the keyring like the archive it comes from."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from service.crypto import DecryptionFailed, Keyring
from service.settings import private_dir

SEALED = ".sealed"


class DerivedFiles:
    """``{folder}/{name}.sealed`` (or ``{folder}/{name}`` with no keyring), written whole, 0600."""

    def __init__(self, folder: Path, keyring: Keyring | None) -> None:
        self.folder = Path(folder)
        self.keyring = keyring

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"not a cache file name: {name!r}")
        return self.folder / (name + SEALED if self.keyring is not None else name)

    def _aad(self, name: str) -> bytes:
        return b"derived:" + name.encode()

    def get(self, name: str) -> bytes | None:
        """The file ``name`` if it is kept (None if not, or if it does not open: it is made again)."""
        path = self._path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if self.keyring is None:
            return data
        try:
            return self.keyring.decrypt(data, self._aad(name))
        except DecryptionFailed:
            path.unlink(missing_ok=True)
            return None

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        private_dir(self.folder)
        stored = data if self.keyring is None else self.keyring.encrypt(data, self._aad(name))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".incoming-")  # 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(stored)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def drop_plain(self) -> int:
        """Remove the copies kept in the clear (written before encryption was on); returns how many."""
        if self.keyring is None or not self.folder.is_dir():
            return 0
        removed = 0
        for path in self.folder.iterdir():
            if path.is_file() and not path.name.endswith(SEALED) and not path.name.startswith("."):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
