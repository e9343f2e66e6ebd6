"""The service's sense of time, in one place so that deadlines can be tested.

Everything that decides "before or after the deadline" reads :class:`Clock`, including the local
TSA that timestamps signatures. Tests move it forward; production leaves it alone.
"""

from __future__ import annotations

import datetime as dt
import threading


class Clock:
    def __init__(self) -> None:
        self._offset = dt.timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, delta: dt.timedelta) -> None:
        """Move time forward (tests only: real deployments never call this)."""
        if delta < dt.timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += delta


SYSTEM_CLOCK = Clock()


def wall_now() -> dt.datetime:
    """The machine's own time, never moved by tests: job leases and other measures of whether a
    process is alive run on it, so that moving business time forward does not expire them."""
    return dt.datetime.now(dt.UTC)
