"""Rate limits: at most so many events per key in a sliding window.

:class:`RateLimiter` is the interface; :class:`MemoryRateLimiter` keeps counts in this process (the
embedded profile, one server); :class:`RedisRateLimiter` keeps them in Redis, shared by every
server (the scale-out profile); :func:`rate_limiter` picks one from the settings.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from typing import Protocol

from service.settings import Settings

log = logging.getLogger(__name__)


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


#: Sliding window in one sorted set per key: drop hits older than the window, count, and add this
#: hit only if under the limit; answers -1 when allowed, else the oldest hit's time (ms).
_SLIDING_WINDOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  return tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return -1
"""


class RedisRateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds, counted in Redis, so that every
    web process behind the proxy shares one count (the scale-out profile). While Redis cannot be
    reached the limit is not enforced (logged), rather than refusing every visitor."""

    def __init__(self, url: str, name: str, limit: int, window: float = 60.0) -> None:
        import redis  # only in the scale-out profile

        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.script = self.client.register_script(_SLIDING_WINDOW)
        self.prefix = f"docsign:rate:{name}:"
        self.limit = limit
        self.window = window

    def hit(self, key: str) -> int:
        import redis

        now_ms = int(time.time() * 1000)
        window_ms = int(self.window * 1000)
        try:
            oldest = int(
                self.script(
                    keys=[self.prefix + key], args=[now_ms, window_ms, self.limit, f"{now_ms}-{secrets.token_hex(4)}"]
                )
            )
        except redis.RedisError as exc:
            log.warning("rate limit %s not counted: %s", self.prefix, exc)
            return 0
        if oldest < 0:
            return 0
        return max(1, (oldest + window_ms - now_ms) // 1000 + 1)


def rate_limiter(settings: Settings, name: str, limit: int) -> RateLimiter:
    """In Redis when the scale-out profile is configured (a broker, or a rate limit URL), else in
    this process."""
    url = settings.rate_limit_url or (
        settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) else ""
    )
    if url:
        return RedisRateLimiter(url, name, limit)
    return MemoryRateLimiter(limit)
