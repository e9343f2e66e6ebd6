"""Drawing for the pages: the progress chart, page images."""

from __future__ import annotations

import datetime as dt
import subprocess
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

from service.campaigns.models import Assignment
from service.campaigns.schemas import local_time
from service.documents.errors import ConversionError
from service.workdir import temp_dir


def progress_chart(
    items: Sequence[Assignment],
    deadline: dt.datetime,
    now: dt.datetime,
    tz: zoneinfo.ZoneInfo,
    words: dict[str, str] | None = None,
) -> str:
    """Cumulative signatures (or reports) over time against the deadline, as an inline SVG (no
    script needed). Drawn 400 units wide with 15-unit labels, so that on a phone (about 340 px)
    the labels read at 13 px; dates carry their year."""
    done = (words or {}).get("done", "已签")
    total = len(items)
    times = sorted(a.signed_at for a in items if a.signed_at is not None)
    issued = [a.issued_at for a in items if a.issued_at is not None]
    start = min(issued) if issued else now
    end = max(now, deadline, *(times or [now]))
    span = max((end - start).total_seconds(), 1.0)
    w, h, left, right, top, bottom, font = 400, 240, 40, 12, 44, 30, 15

    def x(t: dt.datetime) -> float:
        return left + (w - left - right) * (t - start).total_seconds() / span

    def y(n: int) -> float:
        return h - bottom - (h - top - bottom) * (n / total if total else 0)

    points = [(x(start), y(0))]
    for n, t in enumerate(times, 1):
        points.append((x(t), y(n - 1)))
        points.append((x(t), y(n)))
    points.append((x(min(now, end)), y(len(times))))
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    dx = x(deadline)
    on_time = sum(1 for t in times if t <= deadline)
    anchor = "end" if dx > w - 120 else "start" if dx < left + 120 else "middle"
    deadline_text = f"截止 {local_time(deadline, tz, '%Y年%-m月%-d日 %H:%M')}"
    label = f"{done}进度：截止前{done} {on_time} 份，共 {total} 份；{deadline_text}"
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{label}">',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#94a3b8"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{y(total) + 5:.1f}" font-size="{font}" text-anchor="end" fill="#6b7280">{total}</text>',
        f'<text x="{left - 6}" y="{y(0) + 5:.1f}" font-size="{font}" text-anchor="end" fill="#6b7280">0</text>',
        f'<line x1="{left}" y1="{y(total):.1f}" x2="{w - right}" y2="{y(total):.1f}" stroke="#e5e7eb" stroke-dasharray="4 4"/>',
        f'<polyline points="{path}" fill="none" stroke="#15803d" stroke-width="2.5"/>',
        f'<line x1="{dx:.1f}" y1="{top - 8}" x2="{dx:.1f}" y2="{h - bottom}" stroke="#c8161d" stroke-width="2"/>',
        f'<text x="{dx:.1f}" y="{font + 4}" font-size="{font}" text-anchor="{anchor}" fill="#c8161d">{deadline_text}</text>',
        f'<text x="{left}" y="{h - 8}" font-size="{font}" fill="#6b7280">{local_time(start, tz, "%Y年%-m月%-d日")}</text>',
        "</svg>",
    ]
    return "".join(parts)


def page_png(pdf: Path, page: int, temp_root: Path | None, width: int = 900) -> bytes:
    """One page of a PDF rendered to PNG (poppler) in a temporary folder of this process; the
    caller keeps it (sealed) in the page cache."""
    with temp_dir(temp_root, "page") as tmp:
        out = tmp / "page"
        try:
            subprocess.run(
                [
                    "pdftoppm",
                    "-png",
                    "-singlefile",
                    "-f",
                    str(page),
                    "-l",
                    str(page),
                    "-scale-to-x",
                    str(width),
                    "-scale-to-y",
                    "-1",
                    str(pdf),
                    str(out),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConversionError("无法生成文书页面的图片，请直接下载 PDF 阅读。") from exc
        return Path(str(out) + ".png").read_bytes()
