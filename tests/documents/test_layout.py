"""The printed page: each template filled with long, realistic data and issued through the real
engine, then read back as a clerk reads paper. Page counts, rows that never split between pages,
signature blocks that never stand alone, every official field printed or dashed, fonts embedded.

The first pages (and every page of the long documents) are saved as PNG in
``test-artifacts/documents/`` to be looked at.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader

from service.documents.fields import DASH
from service.documents.pipeline import DocumentEngine, IssuedDocument, IssueRequest
from service.documents.registry import KINDS
from service.documents.seal import SEAL_DIAMETER
from service.settings import PROJECT_ROOT
from tests import checks

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "documents"

# The longest unit names of the demo district (service/campaigns/demo.py).
BUREAU = "济南市历城区教育和体育局"
OFFICE = "历城区王舍人街道教育办公室"
SCHOOL = "历城区王舍人街道石河小学"
SUBDISTRICT = "济南市历城区王舍人街道办事处"

NOTICE_COMMON = {
    "guardian_name": "欧阳德福",
    "student_name": "欧阳浩然",
    "student_id_number": "370112201203070013",
    "school_name": SCHOOL,
    "school_address": "济南市历城区王舍人街道石河村东街88号",
    "contact_phone": "0531-88120001",
    "regulation": "山东省义务教育条例",
}

ATTEMPT_PEOPLE = [
    "赵明（校长）、孙丽（班主任）",
    "孙丽（班主任）",
    "赵明（校长）、石河村委会张主任",
    "王舍人街道司法所刘所长",
]
ATTEMPT_RESULTS = [
    "与父亲电话沟通，父亲表示在外地务工无法回家，同意劝说孩子返校",
    "学生在家，表示跟不上课程、不愿上学；祖母同意督促",
    "家长同意送返，学生仍不愿到校，约定下周再次家访",
    "学生到校半天后离校，班主任当晚家访，学生情绪低落",
    "联合村委会上门劝返，家长承诺本周内送孩子到校",
    "送达限期复学通知书，祖母签收；学生表示考虑返校",
]


def _attempts(n: int) -> list[dict[str, str]]:
    start = dt.date(2024, 9, 5)
    out = []
    for i in range(n):
        out.append(
            {
                "date": (start + dt.timedelta(days=4 * i)).isoformat(),
                "staff": ATTEMPT_PEOPLE[i % len(ATTEMPT_PEOPLE)],
                "method": ["电话", "家访", "家访", "约谈", "联合劝返", "司法督促"][i % 6],
                # each result unique, so a row can be found on its page
                "result": f"第{i + 1}次：{ATTEMPT_RESULTS[i % len(ATTEMPT_RESULTS)]}",
                "note": "已送达复学通知书" if i % 3 == 1 else "",
            }
        )
    return out


REASON = (
    "父母长期在浙江宁波务工，学生自小由年迈的祖母照看，缺少有效监护；五年级下学期起数学、英语成绩明显下滑，"
    "多次不交作业，与同学交往少，常以身体不适为由请假；暑假期间沉迷手机游戏，开学后连续缺课，"
    "经班主任多次联系仍未到校。祖母年老多病，无力督促，父亲表示无法回家，家庭对学生上学重视程度不够。"
)
MEASURES = (
    "一是由校长、班主任和村委会组成劝返小组，每周至少家访一次，与在外务工的父亲保持电话沟通；"
    "二是安排数学、英语教师一对一学业辅导，制定个性化补课计划，降低学业难度，帮助学生树立学习信心；"
    "三是落实家庭经济困难学生生活补助和营养餐，协调村委会解决祖母就医困难；"
    "四是由心理教师开展心理疏导，安排同学结对帮扶，复学后继续跟踪，防止再次辍学。"
)

REGISTER_LONG = {
    "school_name": SCHOOL,
    "student_name": "欧阳浩然",
    "sex": "男",
    "ethnicity": "汉族",
    "birth_date": "2012-03-07",
    "student_id_number": "370112201203070013",
    "student_number": "G370112201203070013",
    "grade_class": "六年级二班",
    "home_address": "济南市历城区王舍人街道石河村委会第三村民小组东街15号院",
    "key_groups": ["留守儿童", "家庭经济困难"],
    "guardians": [
        {"name": "欧阳德福", "relation": "父亲", "phone": "13805310001", "workplace": "浙江省宁波市北仑区建筑工地务工"},
        {"name": "李桂芝", "relation": "祖母", "phone": "0531-88120345"},
        {"name": "张秀英", "relation": "母亲", "phone": "13905310002", "workplace": "广东省东莞市电子厂"},
    ],
    "dropout_date": "2024-09-02",
    "dropout_reason": "厌学",
    "reason_detail": REASON,
    "status": "劝返中",
    "attempts": _attempts(12),
    "measures": MEASURES,
    "filled_by": "孙丽",
    "school_phone": "0531-88120001",
    "fill_date": "2024-11-20",
}

#: Only what the schema requires: every optional official field must print as a dash.
REGISTER_SPARSE = {
    k: v
    for k, v in REGISTER_LONG.items()
    if k not in ("ethnicity", "student_number", "key_groups", "reason_detail", "measures", "school_phone", "attempts")
} | {"guardians": [{"name": "李桂芝", "relation": "祖母", "phone": "0531-88120345"}]}

#: A usual case: two guardians, three attempts in a line or two each, a few lines of analysis
#: and measures. It fits one page.
REGISTER_TYPICAL = REGISTER_LONG | {
    "guardians": REGISTER_LONG["guardians"][:2],
    "attempts": [
        a | {"result": result}
        for a, result in zip(
            _attempts(3),
            ["与父亲通话，父亲同意劝说孩子返校", "学生在家，表示不愿上学", "祖母同意督促，学生仍未到校"],
            strict=True,
        )
    ],
    "reason_detail": "父母长期在外务工，由祖母照看；学习跟不上，开学后以身体不适为由不愿到校。",
    "measures": "安排班主任一对一学业辅导，落实家庭经济困难学生生活补助，每周家访一次。",
}

LONG: dict[str, dict[str, Any]] = {
    "enrollment_notice": NOTICE_COMMON | {"report_by": "2024-08-31", "issuer_name": BUREAU, "issue_date": "2024-08-10"},
    "return_notice": NOTICE_COMMON
    | {"grade_class": "六年级二班", "report_by": "2024-09-20", "issuer_name": BUREAU, "issue_date": "2024-09-10"},
    "deadline_return_notice": NOTICE_COMMON
    | {
        "grade_class": "六年级二班",
        "return_notice_date": "2024-09-10",
        "report_by": "2024-09-30",
        "issuer_name": SUBDISTRICT,
        "issue_date": "2024-09-23",
    },
    "responsibility_office": {
        "year": 2024,
        "bureau_name": BUREAU,
        "office_name": OFFICE,
        "office_director": "欧阳志强",
        "school_count": 12,
        "retention_target": 99.5,
        "issue_date": "2024-09-25",
    },
    "responsibility_direct": {
        "year": 2024,
        "bureau_name": BUREAU,
        "school_name": SCHOOL,
        "principal_name": "欧阳秀兰",
        "retention_target": 99.5,
        "issue_date": "2024-09-25",
    },
    "pledge": {
        "year": 2024,
        "bureau_name": BUREAU,
        "school_name": SCHOOL,
        "principal_name": "欧阳明辉",
        "issue_date": "2024-09-25",
    },
    "dropout_register": REGISTER_LONG,
    "dropout_register_sparse": REGISTER_SPARSE,
    "dropout_register_typical": REGISTER_TYPICAL,
}

#: The most pages each may take. The 责任书 is one sheet printed on both sides (Licheng notice).
MAX_PAGES = {
    "enrollment_notice": 1,
    "return_notice": 1,
    "deadline_return_notice": 2,
    "responsibility_office": 2,
    "responsibility_direct": 2,
    "pledge": 2,
    "dropout_register": 3,
    "dropout_register_sparse": 1,
    "dropout_register_typical": 1,
}

#: The last words of the body, which must share a page with the signature block below them.
CLOSING = {
    "enrollment_notice": "感谢您的支持和配合。",
    "return_notice": "感谢您的支持和配合。",
    "deadline_return_notice": "特此通知。",
    "responsibility_office": "自双方签字盖章之日起生效。",
    "responsibility_direct": "自双方签字盖章之日起生效。",
    "pledge": "学校和区教体局各执一份。",
    "dropout_register": "填表人：孙丽",
    "dropout_register_sparse": "填表人：孙丽",
    "dropout_register_typical": "填表人：孙丽",
}


def _kind(name: str) -> str:
    return "dropout_register" if name.startswith("dropout_register") else name


def _handwriting() -> bytes:
    img = Image.new("RGB", (480, 180), "white")
    ImageDraw.Draw(img).line(
        [(30, 130), (90, 40), (140, 120), (200, 50), (260, 140), (450, 110)], fill=(0, 0, 0), width=8
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def page_texts(pdf: bytes) -> list[str]:
    """Each page's text as ``pdftotext -layout`` prints it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        out = subprocess.run(
            ["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, timeout=120
        ).stdout.decode()
    return out.split("\f")[: checks.page_count(pdf)]


def printed_on(cell: str, page: str) -> bool:
    """Whether a table cell's whole text is printed on ``page`` (its ``pdftotext -layout`` text).

    A cell that wraps has its lines interleaved with its neighbours' in the page text, but in
    order; a row split between pages leaves its last lines on the next page, so they are missing
    here (nothing follows a row at the foot of a page but the page number and the QR legend).
    """
    rest = iter(_flat(page))
    return all(ch in rest for ch in _flat(cell))


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def save_pages(name: str, pdf: bytes, first_only: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        args = ["pdftoppm", "-r", "100", "-png"] + (["-f", "1", "-l", "1"] if first_only else [])
        subprocess.run([*args, str(path), str(ARTIFACTS / name)], check=True, timeout=120)


@pytest.fixture(scope="module")
def printed(engine: DocumentEngine) -> dict[str, bytes]:
    """Every long document, issued and signed; the 责任书 and the pledge also by their second party."""
    docs: dict[str, bytes] = {}
    for name, fields in LONG.items():
        doc = engine.issue(IssueRequest(_kind(name), fields, signature_image=_handwriting()))
        pdf = doc.pdf
        if KINDS[_kind(name)].later_signers:
            unit = fields.get("office_name") or fields["school_name"]
            key = f"layout-{name}"
            engine.pki.ensure_unit(key, unit)
            pdf, _ = engine.sign_as(pdf, unit_key=key, signature_image=_handwriting())
        docs[name] = pdf
        save_pages(name, pdf)
    return docs


@pytest.mark.parametrize("name", list(LONG))
def test_page_count(printed: Mapping[str, bytes], name: str) -> None:
    assert checks.page_count(printed[name]) <= MAX_PAGES[name]


@pytest.mark.parametrize("name", list(LONG))
def test_signature_block_shares_its_page_with_the_end_of_the_body(printed: Mapping[str, bytes], name: str) -> None:
    fields = LONG[name]
    pages = [_flat(t) for t in page_texts(printed[name])]
    kind = KINDS[_kind(name)]
    date = _cn_date(fields[kind.date_field])
    (last,) = [i for i, t in enumerate(pages) if CLOSING[name] in t]
    for slot in kind.slots:
        if slot.anchor is not None:
            unit = fields[slot.name_field]
            assert unit in pages[last] and date in pages[last], f"{name}: {slot.title} not on page {last + 1}"
    # nothing but the signature (and the receipt) after the closing words
    assert last == len(pages) - 1


def _cn_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{d.year}年{d.month}月{d.day}日"


def test_register_rows_never_split_and_headings_repeat(printed: Mapping[str, bytes]) -> None:
    pages = page_texts(printed["dropout_register"])
    assert len(pages) >= 2, "12 attempts with long text should run onto a second page"

    def page_of(cells: list[str]) -> int:
        on = [i for i, page in enumerate(pages) if all(printed_on(c, page) for c in cells)]
        assert on, f"a row split between pages: {cells}"
        return on[0]

    for i, a in enumerate(REGISTER_LONG["attempts"]):
        page = page_of([str(i + 1), _cn_date(a["date"]), a["staff"], a["method"], a["result"], a["note"] or DASH])
        heading = "劝返记录序号劝返日期劝返人员劝返方式劝返结果备注"
        assert heading in _flat(pages[page]), f"heading rows not repeated on page {page + 1}"
    for g in REGISTER_LONG["guardians"]:
        page_of([g["relation"], g["name"], g["phone"], g.get("workplace", DASH)])
    page_of(["原因分析", REASON])
    page_of(["帮扶措施", MEASURES])


@pytest.mark.parametrize("attempts", [0, 11, 12, 13])
def test_register_signatures_always_share_a_page_with_the_record(engine: DocumentEngine, attempts: int) -> None:
    """Whatever the length of the record (12 and 13 attempts end the table at the foot of a page),
    the 填表人 line and the school's name and date come with at least one row of the record."""
    fields = REGISTER_LONG | {"attempts": _attempts(attempts)}
    texts = page_texts(engine.preview("dropout_register", fields))
    for a in fields["attempts"]:
        assert any(all(printed_on(c, t) for c in (a["date"][:4], a["staff"], a["result"])) for t in texts), a
    pages = [_flat(t) for t in texts]
    last = pages[-1]
    assert "填表人：孙丽" in last and SCHOOL in last and "2024年11月20日" in last
    if attempts:
        assert f"第{attempts}次" in last, "the last attempt should be printed above the signatures"
    else:
        assert "劝返日期" in last  # the blank rows to fill by hand, under their heading


def test_register_prints_every_official_field(printed: Mapping[str, bytes]) -> None:
    text = _flat("".join(page_texts(printed["dropout_register"])))
    for key in ("ethnicity", "student_number", "home_address", "school_phone"):
        assert REGISTER_LONG[key] in text, key
    assert "留守儿童、家庭经济困难" in text
    assert REASON[:20] in text and REASON[-10:] in text and MEASURES[-10:] in text


def test_register_dashes_empty_official_fields(printed: Mapping[str, bytes]) -> None:
    (page,) = page_texts(printed["dropout_register_sparse"])
    rows = {line.split()[0]: line.split()[1:] for line in page.splitlines() if line.split()}
    for label in ("原因分析", "帮扶措施", "重点群体"):
        assert rows[label] == [DASH], (label, rows[label])
    assert rows["学生姓名"][-2:] == ["民族", DASH]
    assert rows["全国学籍号"][0] == DASH
    assert rows["祖母"][-1] == DASH  # the guardian's workplace
    assert "无" not in rows["重点群体"]


def test_key_groups_none_prints_as_written(engine: DocumentEngine) -> None:
    pdf = engine.preview("dropout_register", REGISTER_SPARSE | {"key_groups": ["无"]})
    rows = {line.split()[0]: line.split()[1:] for line in page_texts(pdf)[0].splitlines() if line.split()}
    assert rows["重点群体"] == ["无"]


def text_lines(pdf: bytes, page: int) -> dict[str, tuple[float, float, float, float]]:
    """The text lines of a page with their boxes (x0, y0, x1, y1 in PDF points from the bottom left)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        html = subprocess.run(
            ["pdftotext", "-bbox-layout", "-f", str(page + 1), "-l", str(page + 1), str(path), "-"],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout.decode()
    height = float(re.search(r'<page width="[\d.]+" height="([\d.]+)"', html).group(1))  # type: ignore[union-attr]
    out = {}
    for attrs, body in re.findall(r"<line (.*?)>(.*?)</line>", html, re.S):
        x0, y0, x1, y1 = (float(v) for v in re.findall(r'"([\d.]+)"', attrs))
        out[_flat("".join(re.findall(r">([^<]*)</word>", body)))] = (x0, height - y1, x1, height - y0)
    return out


def seal_fields(pdf: bytes) -> dict[str, tuple[int, tuple[float, ...]]]:
    """Signature fields by name: page index and rectangle."""
    reader = PdfReader(io.BytesIO(pdf))
    out = {}
    for i, page in enumerate(reader.pages):
        for annot in page.get("/Annots") or []:
            widget = annot.get_object()
            if widget.get("/FT") == "/Sig" or widget.get("/Parent", {}).get("/FT") == "/Sig":
                out[str(widget.get("/T"))] = (i, tuple(float(v) for v in widget["/Rect"]))
    return out


@pytest.mark.parametrize("name", ["enrollment_notice", "return_notice", "deadline_return_notice", "dropout_register"])
def test_the_seal_rides_the_unit_name_and_the_date(printed: Mapping[str, bytes], name: str) -> None:
    """骑年盖月: the seal, bottom right, centred on the issuing unit's name and over the date below it."""
    kind = KINDS[_kind(name)]
    fields = LONG[name]
    pdf = printed[name]
    page, (x0, y0, x1, y1) = seal_fields(pdf)[kind.issuer.field_name]
    lines = text_lines(pdf, page)
    unit = lines[fields[kind.issuer.name_field]]
    date = lines[_cn_date(fields[kind.date_field])]
    assert x0 > 595 / 3, "the seal sits right of the page"
    assert abs((x0 + x1) / 2 - (unit[0] + unit[2]) / 2) < 3, "the seal is centred on the unit name"
    assert abs((x0 + x1) / 2 - (date[0] + date[2]) / 2) < 6, "the date is centred under the name"
    assert y0 < date[1] and unit[3] < y1, "the seal covers the name and the date"
    assert unit[2] <= 595 - 26 * 72 / 25.4 + 1, "the name stays inside the right margin"


@pytest.mark.parametrize("name", ["responsibility_office", "responsibility_direct", "pledge"])
def test_party_seals_land_on_their_blocks(printed: Mapping[str, bytes], name: str) -> None:
    kind = KINDS[name]
    fields = LONG[name]
    pdf = printed[name]
    seals = seal_fields(pdf)
    for slot in kind.slots:
        if slot.anchor is None:
            continue
        page, (x0, y0, x1, y1) = seals[slot.field_name]
        assert page == checks.page_count(pdf) - 1
        unit = text_lines(pdf, page)[fields[slot.name_field]]
        # the seal is the left part of the field (the handwriting follows 负责人签字 to its right)
        assert x0 < (unit[0] + unit[2]) / 2 < x0 + SEAL_DIAMETER, (slot.field_name, (x0, x1), unit)
        assert y0 < unit[1] and unit[3] < y1, (slot.field_name, (y0, y1), unit)


@pytest.mark.parametrize("name", list(LONG))
def test_fonts_are_embedded(printed: Mapping[str, bytes], name: str) -> None:
    fonts = checks.pdffonts(printed[name])
    assert fonts and all(f["emb"] == "yes" for f in fonts), fonts


def test_merged_conversion_starts_each_document_on_its_own_page(
    isolated_engine: DocumentEngine, printed: Mapping[str, bytes]
) -> None:
    offices = [OFFICE, "历城区洪家楼街道教育办公室", "历城区唐冶街道教育办公室"]
    requests = [
        IssueRequest("responsibility_office", LONG["responsibility_office"] | {"office_name": o}) for o in offices
    ] + [IssueRequest("dropout_register", fields) for fields in (REGISTER_LONG, REGISTER_SPARSE, REGISTER_LONG)]
    docs: list[IssuedDocument] = isolated_engine.issue_many(requests)
    for doc in docs:
        pages = [_flat(t) for t in page_texts(doc.pdf)]
        assert doc.pages == len(pages)
        if doc.kind == "responsibility_office":
            assert doc.pages <= 2
            own = doc.fields["office_name"]
            assert pages[0].startswith("2024年控辍目标责任书") and own in pages[0]
            assert all(o not in "".join(pages) for o in offices if o != own)
            assert "自双方签字盖章之日起生效" in pages[-1]
        else:
            alone = printed["dropout_register" if "reason_detail" in doc.fields else "dropout_register_sparse"]
            assert doc.pages == checks.page_count(alone)
            assert "义务教育阶段辍学学生登记表" in pages[0] and "填表人" in pages[-1]
