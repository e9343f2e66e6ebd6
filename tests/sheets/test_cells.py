"""Cells for Excel and WPS: what a spreadsheet would run as a formula stays text, in every sheet
and CSV the service writes."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from service.archive.service import BundleEntry, write_bundle
from service.sheets.cells import safe_cell
from service.storage.local import LocalArchive


def test_text_a_spreadsheet_would_run_stays_text() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for risky in ("+1", "-2", "@SUM(A1)", "\tx"):
        assert str(safe_cell(risky)).startswith("'")
    assert safe_cell("历城区石河小学") == "历城区石河小学"
    assert safe_cell(12) == 12


def test_a_bundles_manifest_csv_keeps_a_formula_looking_name_as_text(tmp_path: Path) -> None:
    """A file name or a unit name that starts with = (typed by whoever uploaded it) opens in Excel as
    text, not as a formula that runs."""
    store = LocalArchive(tmp_path / "archive")
    sha = store.put(b"%PDF-1.7 not really")
    out = io.BytesIO()
    meta = {"unit": '=HYPERLINK("http://x","点此")', "filename": "@SUM(1+1)*cmd|' /C calc'!A0"}
    assert write_bundle(out, store, [BundleEntry("a.pdf", sha, meta)], "测试") == 1
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.reader(io.StringIO(zf.read("manifest.csv").decode("utf-8-sig"))))
    header, row = rows
    cells = dict(zip(header, row, strict=True))
    assert cells["单位"] == '\'=HYPERLINK("http://x","点此")' and cells["原文件名"].startswith("'@SUM")
    assert cells["文件"] == "a.pdf"
