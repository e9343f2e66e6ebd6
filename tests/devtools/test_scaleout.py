"""The scale-out profile's supervisor, on components that die when told and a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from devtools.scaleout import ScaleOutFailed, Supervisor


@dataclass
class Flaky:
    """A component that is up after ``start`` until the test kills it; ``fails`` starts fail."""

    up: bool = True
    starts: int = 0
    stops: int = 0
    fails: int = 0

    @property
    def running(self) -> bool:
        return self.up

    def start(self, timeout: float = 0.0) -> None:
        self.starts += 1
        if self.fails:
            self.fails -= 1
            raise ScaleOutFailed("起不来")
        self.up = True

    def stop(self, timeout: float = 0.0) -> None:
        self.stops += 1
        self.up = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_dead_component_is_cleaned_up_and_restarted_later_each_time_it_dies_again() -> None:
    clock, said = Clock(), []
    worker, web = Flaky(), Flaky()
    supervisor = Supervisor({"工作进程": worker, "Web 服务": web}, out=said.append, clock=clock, limit=5)
    supervisor.check()
    assert (worker.starts, worker.stops) == (0, 0)

    worker.up = False
    supervisor.check()  # at once the first time, what it left killed first
    assert (worker.starts, worker.stops, worker.up) == (1, 1, True)
    assert said == ["工作进程意外退出，0 秒后重启。", "工作进程已重启。"]

    worker.up = False
    clock.now = 10.0
    supervisor.check()  # dying again soon: a second's wait
    assert worker.starts == 1 and not worker.up
    clock.now = 11.0
    supervisor.check()
    assert worker.starts == 2 and worker.up
    worker.up = False
    supervisor.check()
    clock.now = 13.0
    supervisor.check()
    assert worker.starts == 2  # three seconds after two recent restarts
    clock.now = 14.0
    supervisor.check()
    assert worker.starts == 3
    assert web.starts == 0


def test_a_failed_restart_is_tried_again_and_a_crash_loop_stops_the_profile() -> None:
    clock, said = Clock(), []
    worker = Flaky(up=False, fails=1)
    supervisor = Supervisor({"工作进程": worker}, out=said.append, clock=clock, limit=2, max_delay=2.0)
    supervisor.check()
    assert worker.starts == 1 and not worker.up and "工作进程重启失败：起不来" in said
    clock.now = 3.0
    supervisor.check()  # a second after the failed try
    assert worker.starts == 1
    clock.now = 4.0
    supervisor.check()
    assert worker.starts == 2 and worker.up
    worker.up = False
    clock.now = 20.0
    with pytest.raises(ScaleOutFailed, match="重启 2 次仍然退出"):
        supervisor.check()
    clock.now = 400.0  # long after: restarts again
    Supervisor({"工作进程": worker}, clock=clock).check()
    assert worker.up
