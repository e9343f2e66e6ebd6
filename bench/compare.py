"""Benchmark: 四查三比对 for a county, from its lists as Excel files to the stored findings.

Each size runs in a process of its own (its own SQLite database in a fresh folder, so the peak
memory is its own). A county of N children of compulsory age in the 公安户籍 list has 0.8 N in the
学籍 export and 0.8 N in the schools' 在校学生名单 (the issue's 50,000 / 40,000 / 40,000), 5 % in the
脱贫/低保 list, 1 % in the 残疾 list and 1 % in the platform's 疑似辍学 list, with children missing
from one list or another so that every rule finds some, and 0.2 % of the 学籍 rows with two digits
of the 身份证号 swapped. Rows per phase:

  import        the six lists read, checked and stored (sealed) through ``Compare.upload``: the
                baseline the comparison's figures are a ratio of;
  compare       the first run: the latest lists streamed by blind index, the rules, the findings
                inserted;
  again         a second run over the same lists: every finding found again, none new.

Peak memory is the process's (``ru_maxrss``) after the import and after the runs (the import's
peak, reading the sheets, is the largest), and what one run allocates at its peak, measured by
``tracemalloc`` in a third run whose time is not counted (the run's own MB).

    .venv/bin/python bench/compare.py                       # N = 10,000 and 50,000
    .venv/bin/python bench/compare.py --count 2000          # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

SCHOOLS = [
    "历城区王舍人街道石河小学",
    "历城区王舍人街道辛甸小学",
    "历城区王舍人街道中学",
    "历城区洪家楼小学",
    "历城区洪家楼北路小学",
    "历城区洪家楼中学",
    "济南市历城区实验小学",
    "济南市历城区第二中学",
]
TOWNS = ["王舍人街道", "洪家楼街道", "唐冶街道", "港沟街道", "彩石街道", "华山街道"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "浩然子涵欣怡梓轩雨桐一诺宇航思远佳琪俊杰"
HEADER = ("姓名", "身份证号", "出生日期", "学校名称", "乡镇（街道）", "村（社区）")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def county(n: int) -> dict[str, list[tuple[str, ...]]]:
    """The six lists of a county of ``n`` registered children, as rows of ``HEADER``."""
    from stdnum.cn import ric

    first = dt.date(2012, 9, 1)
    days = (dt.date(2021, 8, 31) - first).days + 1
    children = []
    for i in range(n):
        born = first + dt.timedelta(days=i % days)
        body = f"370112{born:%Y%m%d}{i // days:03d}"
        number = body + ric.calc_check_digit(body + "0")
        name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)] + GIVEN[(i * 11) % len(GIVEN)]
        children.append(
            (name, number, born.isoformat(), SCHOOLS[i % len(SCHOOLS)], TOWNS[i % len(TOWNS)], f"{i % 40}村")
        )

    def row(c: tuple[str, ...], school: bool = True, number: str | None = None) -> tuple[str, ...]:
        return (c[0], number or c[1], c[2], c[3] if school else "", c[4], c[5])

    def swapped(number: str) -> str:
        for i in range(14, 16):
            if number[i] != number[i + 1]:
                return number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        return number[:14] + ("1" if number[14] != "1" else "2") + number[15:]

    def outsider(number: str) -> str:
        """A valid ID of a child in no local list (a serial no county child has)."""
        body = number[:14] + "9" + number[15:17]
        return body + ric.calc_check_digit(body + "0")

    xueji_n = enrolled_n = int(n * 0.8)
    # 学籍: the first 0.8 n less every 50th (有户籍无学籍), with some of those past the end (在校无学籍)
    xueji = [row(c, number=swapped(c[1]) if i % 500 == 7 else None) for i, c in enumerate(children[:xueji_n]) if i % 50]
    # at school: the first 0.8 n less one in 40 (有学籍不在校), every 50th included (人籍不一致)
    enrolled = [row(c) for i, c in enumerate(children[:enrolled_n]) if i % 40 != 1 or i % 50 == 0]
    return {
        "huji": [row(c, school=False) for c in children],
        "xueji": xueji,
        "enrolled": enrolled,
        "poverty": [row(c, school=False) for c in children[::20]],
        "disabled": [row(c, school=False) for c in children[3::100]],
        "platform": [row(c) for c in children[5::100]]
        + [("平台外" + c[0], outsider(c[1]), c[2], "", "", "") for c in children[: max(3, n // 1000)]],
    }


def workbook(rows: list[tuple[str, ...]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(list(HEADER))
    for r in rows:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def run_one(count: int) -> dict[str, Any]:
    """One county of ``count`` registered children in a fresh folder: import, compare, compare again."""
    import zoneinfo

    from sqlalchemy import func, select

    from service.accounts.scope import Scope
    from service.clock import Clock
    from service.db.session import Database
    from service.demo import load_demo
    from service.ledgers.compare import Compare
    from service.ledgers.exchange import Exchange
    from service.ledgers.models import Finding
    from service.settings import Settings
    from service.units.models import Unit

    generated = county(count)
    rows = {kind: len(r) for kind, r in generated.items()}
    lists = {kind: workbook(r) for kind, r in generated.items()}
    del generated
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "var", environment="development")
        db = Database(settings)
        db.migrate()
        with db.session() as s:
            load_demo(s)
            s.commit()
        clock = Clock()
        compare = Compare(Exchange(None, clock.now), None, zoneinfo.ZoneInfo("Asia/Shanghai"), clock.now)  # type: ignore[arg-type]
        memory0 = _peak_mb()
        with db.session() as s:
            bureau = s.scalar(select(Unit).where(Unit.code == "LCJT"))
            assert bureau is not None
            scope = Scope.operator(s, bureau, "bench")
            t0 = time.perf_counter()
            for kind, data in lists.items():
                compare.upload(s, scope, kind, data, f"{kind}.xlsx")
                s.commit()
            t1 = time.perf_counter()
            memory1 = _peak_mb()
            first = compare.run(s, scope, "manual")
            s.commit()
            t2 = time.perf_counter()
            memory2 = _peak_mb()
            again = compare.run(s, scope, "manual")
            s.commit()
            t3 = time.perf_counter()
            # once more under tracemalloc, for what a run itself allocates (its time is not counted)
            tracemalloc.start()
            compare.run(s, scope, "manual")
            traced = tracemalloc.get_traced_memory()[1] / 1024 / 1024
            tracemalloc.stop()
            s.rollback()
            findings = s.scalar(select(func.count(Finding.id)))
            counts, again_new = dict(first.counts), again.new_findings
        db.dispose()
    return {
        "count": count,
        "rows": sum(rows.values()),
        "import": t1 - t0,
        "compare": t2 - t1,
        "again": t3 - t2,
        "findings": findings,
        "counts": counts,
        "again_new": again_new,
        "memory_start": memory0,
        "memory_import": memory1,
        "memory_compare": memory2,
        "memory_end": _peak_mb(),
        "traced_run": traced,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, action="append", help="children in the 户籍 list (repeatable)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    console = Console(width=120)
    results = []
    for count in args.count or [10_000, 50_000]:
        console.print(f"county of {count:,} children …")
        out = subprocess.run(
            [sys.executable, str(HERE), "--one", str(count)], check=True, capture_output=True, text=True, cwd=ROOT
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="四查三比对: seconds and peak memory (each size in a process of its own)")
    for column in ("户籍 children", "rows", "phase", "seconds", "× import", "peak RSS MB", "run's own MB", "findings"):
        table.add_column(column, justify="right")
    for r in results:
        base = r["import"]
        table.add_row(
            f"{r['count']:,}",
            f"{r['rows']:,}",
            "import",
            f"{base:.1f}",
            "1.00",
            f"{r['memory_import']:.0f}",
            "",
            "",
        )
        table.add_row(
            "",
            "",
            "compare",
            f"{r['compare']:.1f}",
            f"{r['compare'] / base:.2f}",
            f"{r['memory_compare']:.0f}",
            f"{r['traced_run']:.0f}",
            f"{r['findings']:,}",
        )
        table.add_row(
            "",
            "",
            "compare again",
            f"{r['again']:.1f}",
            f"{r['again'] / base:.2f}",
            f"{r['memory_end']:.0f}",
            "",
            f"new {r['again_new']}",
        )
    console.print(table)
    for r in results:
        console.print(
            f"{r['count']:,}: findings by rule {r['counts']}; RSS before the import {r['memory_start']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
