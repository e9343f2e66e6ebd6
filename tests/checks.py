"""Independent checkers the tests hold our PDFs against: poppler, qpdf, zbar, pyHanko itself."""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

T = TypeVar("T")


def _run(args: list[str], data: bytes | None = None, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        target = path
        if target is None:
            target = Path(tmp) / "doc.pdf"
            assert data is not None
            target.write_bytes(data)
        return subprocess.run([*args, str(target)], capture_output=True, text=True, timeout=120)


def pdftotext(data: bytes) -> str:
    """Text of the PDF with all whitespace removed (LibreOffice spaces Latin and CJK apart)."""
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "doc.pdf"
        pdf.write_bytes(data)
        subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), str(Path(tmp) / "doc.txt")], check=True, timeout=120)
        text = (Path(tmp) / "doc.txt").read_text(encoding="utf-8")
    return re.sub(r"\s+", "", text)


def pdftotext_layout(data: bytes, page: int) -> str:
    """Text of one page as laid out (``-layout``): a table's row stays one line."""
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "doc.pdf"
        pdf.write_bytes(data)
        args = ["pdftotext", "-enc", "UTF-8", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-"]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout


def pdffonts(data: bytes) -> list[dict[str, str]]:
    """Rows of ``pdffonts``: name, type, emb."""
    lines = _run(["pdffonts"], data).stdout.splitlines()[2:]
    rows = []
    for line in lines:
        parts = line.split()
        # columns from the right: object ID (2), uni, sub, emb
        rows.append({"name": parts[0], "emb": parts[-5], "sub": parts[-4], "uni": parts[-3]})
    return rows


def pdfsig(data: bytes, nss_db: str) -> str:
    return _run(["pdfsig", "-nssdir", nss_db], data).stdout


def qpdf_check(data: bytes) -> subprocess.CompletedProcess[str]:
    return _run(["qpdf", "--check"], data)


def qr_codes(data: bytes, page: int = 1, dpi: int = 150) -> list[str]:
    """QR codes zbarimg finds on one page rendered at ``dpi``."""
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "doc.pdf"
        pdf.write_bytes(data)
        prefix = Path(tmp) / "page"
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                str(dpi),
                "-f",
                str(page),
                "-l",
                str(page),
                "-png",
                "-singlefile",
                str(pdf),
                str(prefix),
            ],
            check=True,
            timeout=120,
        )
        result = subprocess.run(
            ["zbarimg", "--quiet", "--raw", str(prefix) + ".png"], capture_output=True, text=True, timeout=60
        )
    return [line for line in result.stdout.splitlines() if line]


def page_count(data: bytes) -> int:
    m = re.search(r"Pages:\s+(\d+)", _run(["pdfinfo"], data).stdout)
    assert m
    return int(m.group(1))


def pyhanko_statuses(
    data: bytes, root: asn1_x509.Certificate
) -> list[tuple[str, SignatureCoverageLevel, ModificationLevel | None, bool]]:
    """(field, coverage, modification level, bottom line) per signature, by pyHanko alone, given
    our root and the certificates of the document's DSS (its PAdES B-LT validation material: the
    timestamp tokens carry only the TSA's certificate, the CA above it is in the DSS)."""
    reader = PdfFileReader(io.BytesIO(data))
    out = []
    for sig in reader.embedded_signatures:
        status = validate_pdf_signature(sig, dss_context(reader, root))
        out.append((sig.field_name, status.coverage, status.modification_level, status.bottom_line))
    return out


def dss_context(reader: PdfFileReader, root: asn1_x509.Certificate) -> ValidationContext:
    """A pyHanko validation context trusting ``root``, with the certificates of the document's DSS."""
    try:
        certs = list(DocumentSecurityStore.read_dss(reader).load_certs())
    except NoDSSFoundError:
        certs = []
    return ValidationContext(trust_roots=[root], other_certs=certs, allow_fetching=False)


def nss_db(folder: Path, root_ca_pem: Path) -> str:
    """An NSS database in ``folder`` trusting our root CA, for pdfsig (made once, reused after)."""
    if not folder.exists():
        folder.mkdir(parents=True)
        subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], check=True, capture_output=True)
        subprocess.run(
            ["certutil", "-A", "-d", f"sql:{folder}", "-n", "root", "-t", "CT,C,C", "-i", str(root_ca_pem)],
            check=True,
            capture_output=True,
        )
    return f"sql:{folder}"


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a thread of its own: pyHanko runs an event loop of its own, which cannot start
    on a thread where another loop runs (Playwright's, once the browser tests have started)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def docsign_code(pdf: bytes) -> str | None:
    """The verification code a document we issued records in its document information."""
    from pypdf import PdfReader

    code = (PdfReader(io.BytesIO(pdf)).metadata or {}).get("/DocsignCode")
    return str(code) if code else None
