from __future__ import annotations

import io

from pypdf import PdfWriter

from service.documents.codes import new_code, verification_url
from service.documents.stamp import StampMark, split_and_stamp, stamp
from tests import checks


def _blank(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595.3, 841.9)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_every_page_gets_the_qr_and_the_code() -> None:
    code = new_code()
    url = verification_url("https://kcbx.example.edu.cn", code)
    pdf = stamp(_blank(3), StampMark(url, code, "测试文书", "pledge"))
    for page in (1, 2, 3):
        assert checks.qr_codes(pdf, page) == [url]
    text = checks.pdftotext(pdf)
    assert text.count("扫码验证真伪") == 3
    assert checks.qpdf_check(pdf).returncode == 0
    fonts = checks.pdffonts(pdf)
    assert all(f["emb"] == "yes" for f in fonts) and any("CJK" in f["name"] for f in fonts)


def test_split_gives_each_document_its_own_pages_and_code() -> None:
    marks = []
    for _ in range(3):
        code = new_code()
        marks.append(StampMark(verification_url("https://x.cn", code), code))
    docs = split_and_stamp(_blank(5), [(range(0, 2), marks[0]), (range(2, 3), marks[1]), (range(3, 5), marks[2])])
    assert [checks.page_count(d) for d in docs] == [2, 1, 2]
    assert checks.qr_codes(docs[2], 2) == [marks[2].url]
