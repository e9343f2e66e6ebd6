"""Rate limits: in this process (embedded profile) and in Redis, shared by every web process (the
scale-out profile). Redis DB 7 is the tests' own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from service.limits import MemoryRateLimiter, RedisRateLimiter, rate_limiter
from service.settings import Settings

LIMITS = os.environ.get("DOCSIGN_TEST_RATE_LIMIT_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture()
def clean_redis() -> str:
    redis.Redis.from_url(LIMITS).flushdb()
    return LIMITS


def test_the_settings_choose_redis_when_a_broker_is_configured(tmp_path: Path) -> None:
    assert isinstance(rate_limiter(Settings(data_dir=tmp_path), "verify", 5), MemoryRateLimiter)
    scale = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/6")
    assert isinstance(rate_limiter(scale, "verify", 5), RedisRateLimiter)
    apart = Settings(data_dir=tmp_path, broker_url="amqp://127.0.0.1//", rate_limit_url=LIMITS)
    limiter = rate_limiter(apart, "verify", 5)
    assert isinstance(limiter, RedisRateLimiter)


def test_a_redis_limit_allows_the_limit_then_says_how_long_to_wait(clean_redis: str) -> None:
    limiter = RedisRateLimiter(clean_redis, "verify", 3, window=60)
    assert [limiter.hit("1.2.3.4") for _ in range(3)] == [0, 0, 0]
    wait = limiter.hit("1.2.3.4")
    assert 55 <= wait <= 61
    assert limiter.hit("5.6.7.8") == 0  # another client has its own count
    other = RedisRateLimiter(clean_redis, "login", 3, window=60)
    assert other.hit("1.2.3.4") == 0  # and another limit too


def test_the_window_slides(clean_redis: str) -> None:
    limiter = RedisRateLimiter(clean_redis, "verify", 2, window=1.0)
    assert limiter.hit("c") == 0 and limiter.hit("c") == 0
    assert limiter.hit("c") >= 1
    time.sleep(1.1)
    assert limiter.hit("c") == 0


def test_processes_share_one_count(clean_redis: str) -> None:
    """Two web processes behind one proxy: a client cannot double its allowance by landing on both."""
    code = (
        "import sys; from service.limits import RedisRateLimiter; "
        f"l = RedisRateLimiter({clean_redis!r}, 'verify', 10); "
        "print(sum(1 for _ in range(8) if l.hit('9.9.9.9') == 0))"
    )
    procs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60) for _ in range(2)]
    allowed = [int(p.stdout.strip()) for p in procs]
    assert sum(allowed) == 10, allowed


def test_an_unreachable_redis_does_not_lock_everyone_out() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", "verify", 1)
    assert limiter.hit("x") == 0 and limiter.hit("x") == 0
