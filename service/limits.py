"""Rate limits: at most so many events per key in a sliding window.

:class:`RateLimiter` is the interface; :class:`MemoryRateLimiter` keeps counts in this process (the
embedded profile, one server). Several servers need a shared store in its place.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Protocol


class RateLimiter(Protocol):
    def hit(self, key: str) -> int:
        """Count one event for ``key``: 0 when allowed; otherwise the seconds to wait."""


class MemoryRateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds, counted in this process."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._pruned = 0.0

    def hit(self, key: str) -> int:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, int(self.window - (now - hits[0])) + 1)
            hits.append(now)
            if len(self._hits) > 10_000 and now - self._pruned > self.window:  # forget idle clients
                self._pruned = now
                for k in [k for k, v in self._hits.items() if not v or now - v[-1] > self.window]:
                    del self._hits[k]
            return 0
