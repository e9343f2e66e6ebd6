"""Where the last revision ends, in the layouts real PDF writers produce, and rough counts."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.structure import bytes_after_last_revision, rough_counts
from service.settings import Settings


@pytest.fixture(scope="module")
def notice(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["return_notice"], settings.schemas_dir)
    return engine.issue(IssueRequest("return_notice", fields)).pdf


def qpdf(pdf: bytes, option: str, folder: Path) -> bytes:
    """The notice rewritten by qpdf (a signature does not survive it; the layout is the point)."""
    (folder / "in.pdf").write_bytes(pdf)
    subprocess.run(["qpdf", option, str(folder / "in.pdf"), str(folder / "out.pdf")], check=True, timeout=120)
    return (folder / "out.pdf").read_bytes()


def after(pdf: bytes) -> int:
    return bytes_after_last_revision(PdfFileReader(io.BytesIO(pdf), strict=False), pdf)


@pytest.mark.parametrize("layout", ["as-issued", "--linearize", "--object-streams=generate"])
def test_nothing_after_the_last_revision(notice: bytes, tmp_path: Path, layout: str) -> None:
    pdf = notice if layout == "as-issued" else qpdf(notice, layout, tmp_path)
    assert after(pdf) == 0
    assert after(pdf + b"\r\n") == 0  # an end-of-line is no content
    assert after(pdf + b"% comment\n") == len(b"\n% comment\n")  # counted from %%EOF
    tail = pdf[pdf.rindex(b"startxref") :]
    assert after(pdf + b"1 0 obj\n<< >>\nendobj\ntrailer\n<< /Size 2 >>\n" + tail) > 0


def test_rough_counts(notice: bytes) -> None:
    counts = rough_counts(notice)
    assert (counts.revisions, counts.signatures) == (2, 1)
