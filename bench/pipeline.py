"""Benchmark of the document pipeline: per-stage milliseconds per document and documents per second.

Runs, in one process on this machine:
  1. one notice end to end (repeated), the latency a clerk sees for ``docsign issue``;
  2. N notices as one batch with merged conversion (``merge_chunk_size`` documents per soffice call);
  3. the same N notices converted one document at a time (the baseline for 2);
then verifies a sample of the issued PDFs. Figures are ratios against the baseline measured in the
same run, since this machine is shared and noisy.

    .venv/bin/python bench/pipeline.py            # N = 500
    .venv/bin/python bench/pipeline.py --count 100 --chunk 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from service.documents.convert import Converter, ConverterConfig
from service.documents.pipeline import STAGES, DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.settings import Settings

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "子涵欣怡梓轩浩宇雨桐一诺思远佳怡俊杰晨曦嘉怡语桐明轩若曦天佑雅琪文博梦瑶志强秀英建华丽娟海燕国庆红梅"


def notices(settings: Settings, n: int) -> list[IssueRequest]:
    base = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    out = []
    for i in range(n):
        s = SURNAMES[i % len(SURNAMES)]
        g = GIVEN[(i * 7) % (len(GIVEN) - 1)] + GIVEN[(i * 3 + 1) % len(GIVEN)]
        out.append(IssueRequest("enrollment_notice", {**base, "student_name": s + g, "guardian_name": s + "建国"}))
    return out


def run_batch(engine: DocumentEngine, requests: list[IssueRequest], merge: bool) -> dict[str, float]:
    engine.times.seconds.clear()
    engine.times.documents = 0
    t0 = time.perf_counter()
    docs = engine.issue_many(requests, merge=merge)
    wall = time.perf_counter() - t0
    per = engine.times.per_document_ms()
    size = statistics.mean(len(d.pdf) for d in docs) / 1024
    return {"wall": wall, "docs_per_s": len(docs) / wall, **per, "kb": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="notices per batch (default 500)")
    parser.add_argument("--chunk", type=int, default=100, help="documents per merged conversion (default 100)")
    parser.add_argument("--single-runs", type=int, default=5, help="repeats of the one-notice run")
    parser.add_argument("--verify-sample", type=int, default=50, help="issued PDFs to verify")
    args = parser.parse_args()
    console = Console(width=150)  # the table stays whole when the output goes to a file

    with tempfile.TemporaryDirectory(prefix="docsign-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "var",
            certs_dir=Path(tmp) / "certs",
            merge_chunk_size=args.chunk,
        )
        converter = Converter(ConverterConfig(settings.soffice_path, settings.uno_python))
        engine = DocumentEngine(settings, converter=converter)
        engine.pki.init()
        converter.warm_up()
        requests = notices(settings, args.count)
        engine.issue_many(requests[:3])  # warm templates, keys, fonts

        console.print(f"[bold]docsign pipeline benchmark[/]: {args.count} 份入学通知书, 每次合并转换 {args.chunk} 份")
        single = [run_batch(engine, requests[:1], merge=True) for _ in range(args.single_runs)]
        one = {k: statistics.median(r[k] for r in single) for k in single[0]}
        console.print("  单份 ✓")
        merged = run_batch(engine, requests, merge=True)
        console.print("  批量合并转换 ✓")
        baseline = run_batch(engine, requests, merge=False)
        console.print("  批量逐份转换 ✓")

        sample = engine.issue_many(requests[: args.verify_sample])
        t0 = time.perf_counter()
        for doc in sample:
            assert engine.verify(doc.pdf).genuine
        verify_ms = (time.perf_counter() - t0) * 1000 / len(sample)
        engine.close()

    table = Table(title="每份文书各阶段耗时（毫秒）与吞吐量", title_justify="left")
    table.add_column("运行")
    for stage in (*STAGES, "verify"):
        table.add_column(stage, justify="right")
    table.add_column("端到端 份/秒", justify="right")
    table.add_column("相对逐份", justify="right")
    table.add_column("PDF KB", justify="right")
    rows = [
        ("1 份（中位数）", one),
        (f"{args.count} 份 逐份转换（基线）", baseline),
        (f"{args.count} 份 合并转换", merged),
    ]
    for name, r in rows:
        table.add_row(
            name,
            *(f"{r[s]:.1f}" for s in STAGES),
            f"{verify_ms:.1f}",
            f"{r['docs_per_s']:.1f}",
            f"{r['docs_per_s'] / baseline['docs_per_s']:.2f}×",
            f"{r['kb']:.0f}",
        )
    console.print(table)
    console.print(
        f"合并转换的转换阶段：{merged['convert']:.1f} ms/份，逐份转换 {baseline['convert']:.1f} ms/份，"
        f"快 {baseline['convert'] / merged['convert']:.1f} 倍；"
        f"端到端快 {merged['docs_per_s'] / baseline['docs_per_s']:.1f} 倍。"
    )
    console.print("注：转换在另一进程（soffice）中与本进程的盖章签名并行，端到端时间小于各阶段之和。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
