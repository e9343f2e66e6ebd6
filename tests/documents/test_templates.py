"""Every official template renders, converts and signs into a PDF that independent tools accept."""

from __future__ import annotations

import re

import pytest
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation.status import SignatureCoverageLevel

from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.documents.sign import _asn1_cert
from service.pki.store import Pki
from service.settings import Settings
from tests import checks

#: Wording each document must carry: the official 式样 text where reference/ has it.
OFFICIAL_PHRASES = {
    "enrollment_notice": [
        "（父母或法定监护人）：",
        "接受义务教育是法律赋予每个适龄儿童的权利和义务",
        "已经达到接受义务教育年龄，请您于8月31日前送其到济南市历城区实验小学报到入学",
        "感谢您的支持和配合",
        "第五十八条",  # the liability wording qiaocheng (七) asks for
        "责令限期改正",
    ],
    "return_notice": [
        "处于接受义务教育年龄，请您于9月20日前送其到历城区王舍人街道石河小学报到入读",
        "接受义务教育是法律赋予每个适龄儿童的权利和义务",
        "感谢您的支持和配合",
        "第十四条",
    ],
    "deadline_return_notice": ["限期复学通知书", "已向您送达《义务教育复学通知书》", "司法文书", "送达回执"],
    "pledge": ["控辍保学承诺书", "郑重承诺", "一生一表", "每月20日前", "一式两份", "校长签字"],
    "responsibility_office": [
        "2024年控辍目标责任书",
        "（街道教育办公室）",
        "甲方：济南市历城区教育和体育局",
        "零流失",
        "收齐所辖学校的控辍保学承诺书",
        "一式两份",
        "甲方（盖章）",
        "乙方（盖章）",
    ],
    "responsibility_direct": [
        "2024年控辍目标责任书",
        "（区直义务教育阶段学校）",
        "乙方：济南市历城区实验小学",
        "零流失",
        "一式两份",
        "校长签字",  # the Licheng notice: 区直学校 校长签字、加盖学校公章
    ],
    "dropout_register": ["义务教育阶段辍学学生登记表", "（一生一表）", "劝返记录", "监护人情况", "370112201203070013"],
    "monthly_report": ["控辍保学动态管理月报表", "填报单位", "统计期间", "月末未销号个案（按年级）", "填报人"],
    "weekly_report": ["辍学周报告", "填报单位", "统计期间", "周末未销号个案（按年级）", "填报人"],
    "info_report": [
        "学生失学辍学信息报告",
        "填报单位",
        "报告时未销号个案（按辍学原因）",
        "失学辍学学生名单",
        "去向及情况",
    ],
    "case_file": ["控辍保学个案案卷", "目录", "一、劝返记录", "二、文书及核验记录", "三、监护人回执", "四、办理经过"],
}

#: Filled names that must appear in each PDF.
FILLED = {
    "enrollment_notice": ["张建国", "张小雨", "济南市历城区实验小学", "济南市历城区教育和体育局", "2024年8月10日"],
    "return_notice": ["王德福", "王浩然", "（原就读六年级二班）"],
    "deadline_return_notice": ["王德福", "王浩然", "2024年9月10日", "2024年9月30日", "济南市历城区王舍人街道办事处"],
    "pledge": ["赵明", "历城区王舍人街道石河小学", "2025年8月31日", "2024年9月25日"],
    "responsibility_office": ["历城区王舍人街道教育办公室", "李志强", "12所", "100%", "2025年8月31日"],
    "responsibility_direct": ["王秀兰", "济南市历城区实验小学"],
    "dropout_register": [
        "王浩然",
        "王德福",
        "李桂芝",
        "13805310001",
        "留守儿童、家庭经济困难",
        "孙丽（班主任）",
        "祖母同意督促",
        "2024年9月14日",
    ],
    "monthly_report": ["历城区王舍人街道石河小学", "新增疑似辍学", "七年级", "留守儿童", "赵明", "2027年10月18日"],
    "weekly_report": ["历城区王舍人街道石河小学", "2027年第41周报送", "七年级", "留守儿童", "赵明", "2027年10月13日"],
    "info_report": ["2027年9月1日开学后报送", "失学（应入未入）", "张三", "随父母在外地", "厌学", "2027年9月14日"],
    "case_file": ["王浩然", "370112201203070013", "家访照片.jpg（第8页）", "2024年10月20日", "登记个案（疑似辍学）"],
}

CJK_FONT = re.compile(r"CJK|UKai", re.I)


@pytest.fixture(scope="module")
def issued(engine: DocumentEngine, settings: Settings) -> dict[str, bytes]:
    docs = {}
    for key in KINDS:
        doc = engine.issue(IssueRequest(key, example_fields(KINDS[key], settings.schemas_dir)))
        docs[key] = doc.pdf
    return docs


@pytest.mark.parametrize("key", list(KINDS))
def test_text_has_filled_fields_and_official_wording(issued: dict[str, bytes], key: str) -> None:
    text = checks.pdftotext(issued[key])
    for phrase in OFFICIAL_PHRASES[key] + FILLED[key]:
        assert phrase in text, f"{key}: {phrase!r} missing from the PDF text"
    assert "□" not in text and "\ufffd" not in text


@pytest.mark.parametrize("key", list(KINDS))
def test_fonts_are_embedded_cjk_faces_without_fallback(issued: dict[str, bytes], key: str) -> None:
    fonts = checks.pdffonts(issued[key])
    assert fonts, "no fonts listed"
    assert all(f["emb"] == "yes" for f in fonts), fonts
    # Every face is one of ours: a fallback face (DejaVu, Liberation) means a glyph was missing.
    assert all(CJK_FONT.search(f["name"]) for f in fonts), fonts


@pytest.mark.parametrize("key", list(KINDS))
def test_signed_pdf_passes_pdfsig_qpdf_and_pyhanko(issued: dict[str, bytes], key: str, nss_db: str, pki: Pki) -> None:
    pdf = issued[key]
    report = checks.pdfsig(pdf, nss_db)
    assert report.count("Signature is Valid.") == 1, report
    assert report.count("Certificate is Trusted.") == 1, report
    qpdf = checks.qpdf_check(pdf)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    assert "No syntax or stream encoding errors found" in qpdf.stdout
    for field, coverage, level, ok in checks.pyhanko_statuses(pdf, _asn1_cert(pki.root_certificate())):
        assert ok, field
        # the signature covers the whole file, or only validation data (the DSS) follows it
        assert coverage == SignatureCoverageLevel.ENTIRE_FILE or level == ModificationLevel.LTA_UPDATES, (
            field,
            coverage,
            level,
        )


@pytest.mark.parametrize("key", list(KINDS))
def test_every_page_carries_the_qr_of_its_verification_url(issued: dict[str, bytes], key: str) -> None:
    pdf = issued[key]
    code = checks.docsign_code(pdf)
    assert code, "verification code recorded in the document information"
    url = f"https://kcbx.example.edu.cn/v/{code}"
    for page in range(1, checks.page_count(pdf) + 1):
        assert checks.qr_codes(pdf, page) == [url]
    grouped = "-".join(code[i : i + 4] for i in range(0, 28, 4))
    assert grouped in checks.pdftotext(pdf)


def test_signer_is_the_unit_named_on_the_document(issued: dict[str, bytes], nss_db: str) -> None:
    assert "Signer Certificate Common Name: 济南市历城区教育和体育局" in checks.pdfsig(
        issued["enrollment_notice"], nss_db
    )
    assert "Signer Certificate Common Name: 历城区王舍人街道石河小学" in checks.pdfsig(
        issued["dropout_register"], nss_db
    )
