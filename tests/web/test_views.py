"""The progress chart drawn for the campaign page."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from types import SimpleNamespace
from typing import Any

from service.web.views import progress_chart

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_the_chart_dates_its_deadline_and_its_labels_read_on_a_phone() -> None:
    issued = dt.datetime(2024, 9, 25, 1, 0, tzinfo=dt.UTC)
    deadline = dt.datetime(2024, 9, 29, 8, 0, tzinfo=dt.UTC)  # 16:00 in Beijing
    items: list[Any] = [
        SimpleNamespace(issued_at=issued, signed_at=issued + dt.timedelta(days=i)) for i in range(3)
    ] + [SimpleNamespace(issued_at=issued, signed_at=None)]
    svg = progress_chart(items, deadline, issued + dt.timedelta(days=2), BEIJING, {"done": "已报送"})
    assert "截止 2024年9月29日 16:00" in svg  # with its year, in Beijing time
    assert "2024年9月25日" in svg
    assert 'aria-label="已报送进度：截止前已报送 3 份，共 4 份' in svg
    width = float(re.search(r'viewBox="0 0 (\d+)', svg).group(1))  # type: ignore[union-attr]
    smallest = min(float(f) for f in re.findall(r'font-size="(\d+(?:\.\d+)?)"', svg))
    # drawn into a 375 px phone's card (about 330 px wide), a label is at least 12 px tall
    assert smallest * 330 / width >= 12
