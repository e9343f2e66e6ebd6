"""The 案卷 of a case (``Cases.case_file``): one PDF a court can check, its originals embedded unaltered."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from pathlib import Path

import pikepdf
import pytest
from PIL import Image
from sqlalchemy import select

from service.accounts.errors import Forbidden
from service.archive.models import Document
from service.archive.service import Receipt
from service.audit.models import AuditEvent
from service.cases.errors import CaseFileUnavailable
from service.cases.models import Case, CaseFile
from service.cases.service import CaseIn, GuardianIn
from service.container import Services
from tests import checks
from tests.district import load_district, scope_of, unit
from tests.test_cli import run as run_cli

BUREAU = "济南市历城区教育和体育局"


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A two-page PDF, as a scanned 承诺书 is uploaded."""
    pages = [Image.new("RGB", (600, 800), c) for c in ((250, 250, 250), (230, 230, 200))]
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:])
    return out.getvalue()


def court_case(services: Services) -> int:
    """A case with three 劝返 (a photo with one, a scanned PDF with another), a 复学通知书 the
    guardian confirmed, a 限期复学通知书 once it ran out, and the 一生一表."""
    load_district(services)
    today = services.cases.today()
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        case = services.cases.create(
            s,
            school,
            unit(s, "WSR-SH").id,
            CaseIn(
                student_name="王浩然",
                id_number="370112201203070013",
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                class_name="二班",
                confirmed=True,
                dropout_date=today - dt.timedelta(days=20),
                guardians=[GuardianIn("王德福", "父亲", "13805310001")],
            ),
        )
        add = services.cases.add_attempt
        add(s, school, case, date=today - dt.timedelta(days=15), staff="孙丽（班主任）", method="家访",
            result="家长外出务工，祖母在家", attachments=[("家访照片.jpg", photo())])  # fmt: skip
        add(s, school, case, date=today - dt.timedelta(days=12), staff="赵明（校长）", method="电话",
            result="父亲同意督促返校", attachments=[("承诺书扫描件.pdf", scanned_pdf())])  # fmt: skip
        add(s, school, case, date=today - dt.timedelta(days=10), staff="孙丽（班主任）", method="家访",
            result="学生仍不愿返校")  # fmt: skip
        notice = services.cases.issue_notice(s, school, case, "return_notice", today + dt.timedelta(days=3))
        assert services.archive.confirm_receipt(s, notice, "0001", "127.0.0.1") == Receipt.CONFIRMED
        s.commit()
        case_id = case.id
    services.clock.advance(dt.timedelta(days=4))
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        case = s.get(Case, case_id)
        assert case is not None
        services.cases.issue_notice(
            s, school, case, "deadline_return_notice", services.cases.today() + dt.timedelta(days=7)
        )
        services.cases.register(s, school, case)
        s.commit()
    return case_id


def test_a_case_file_carries_every_original_unaltered_and_verifies_as_the_bureaus(
    services: Services, tmp_path: Path
) -> None:
    case_id = court_case(services)
    with services.db.session() as s:
        case = s.get(Case, case_id)
        assert case is not None
        started = time.perf_counter()
        doc, issued = services.cases.case_file(s, scope_of(s, "bureau"), case)
        s.commit()
        took = time.perf_counter() - started
        pdf = services.archive.documents.get(doc.current_sha256)
        assert pdf == issued.pdf and doc.kind == "case_file" and doc.case_id == case_id
        originals = {
            d.current_sha256
            for d in s.scalars(select(Document).where(Document.case_id == case_id, Document.kind != "case_file"))
        }
        files = {f.sha256 for f in s.scalars(select(CaseFile).where(CaseFile.case_id == case_id))}
        assert len(originals) == 3 and len(files) == 2  # two notices and the 一生一表; a photo and a scan

        # opens, and qpdf finds nothing wrong
        with pikepdf.open(io.BytesIO(pdf)) as opened:
            embedded = {
                name: hashlib.sha256(spec.get_file().read_bytes()).hexdigest()
                for name, spec in opened.attachments.items()
            }
            pages = len(opened.pages)
        check = checks.qpdf_check(pdf)
        assert check.returncode == 0, check.stdout + check.stderr
        # every archived original is embedded byte for byte, and nothing else
        assert sorted(embedded.values()) == sorted(originals | files), embedded
        assert any(name.endswith("家访照片.jpg") for name in embedded)

        text = checks.pdftotext(pdf)
        for entry in (
            "目录",
            "一、劝返记录",
            "二、文书及核验记录",
            "三、监护人回执",
            "四、办理经过",
            "附件一辍学学生登记表（一生一表）",
            "附件二家访照片.jpg",
            "附件二承诺书扫描件.pdf",
            "附件三-1义务教育复学通知书",
            "附件三-2限期复学通知书",
        ):
            assert entry in text, entry
        # the 目录 names the page each part starts on, in order, as the file has them
        toc = doc.fields["toc"]
        assert [e["page"] for e in toc] == sorted(e["page"] for e in toc) and toc[0]["page"] == 1
        assert toc[-1]["page"] <= pages and len({e["page"] for e in toc[:6]}) == 6
        lines = {"".join(line.split()) for line in checks.pdftotext_layout(pdf, page=2).splitlines()}
        for e in toc:
            assert "".join(e["title"].split()) + str(e["page"]) in lines, (e, lines)
        # the history, from the audit log
        for line in ("登记个案", "记录劝返", "签发文书《义务教育复学通知书》", "监护人确认已阅知", "生成一生一表"):
            assert line in text, line
        assert "王浩然" in text and "370112201203070013" in text  # for the court: in full
        assert "真实有效" in text  # each document's verdict
        assert f"共{pages}页" in text  # the cover counts every page, the originals' included

        # the whole file verifies, certified by the bureau
        report = services.engine.verify(pdf)
        assert report.genuine, report.all_problems
        assert report.signatures[0].signer.startswith(BUREAU)  # the bureau certified it
        # and so does the command line, on the file as downloaded
        downloaded = tmp_path / "案卷.pdf"
        downloaded.write_bytes(pdf)
        verified = run_cli(
            tmp_path, "verify", str(downloaded), env={"DOCSIGN_CERTS_DIR": str(services.settings.certs_dir)}
        )
        assert verified.returncode == 0 and "真实有效" in verified.stdout, verified.stdout + verified.stderr
        assert BUREAU in verified.stdout
        # its verification code opens it on the verify page
        code = checks.docsign_code(pdf)
        assert code and services.archive.find(s, code) is not None
        assert services.archive.find(s, code).id == doc.id  # type: ignore[union-attr]
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.file")).all()
        assert [(e.object_id, e.detail["case"]) for e in audit] == [(str(doc.id), case_id)]
    print(f"case file: {pages} pages, {len(embedded)} originals, {took:.1f} s")


def test_a_case_file_is_made_by_the_bureau_the_office_or_the_school_each_with_its_own_key(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        school = scope_of(s, "wsr-sh-head")
        case = services.cases.create(
            s,
            school,
            unit(s, "WSR-SH").id,
            CaseIn(
                student_name="李小军",
                id_number="370112201203070013",
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                guardians=[GuardianIn("李强", "父亲", "13805310002")],
            ),
        )
        s.commit()
        # the bureau cannot make the school's 一生一表: it asks the school for it first
        with pytest.raises(CaseFileUnavailable):
            services.cases.case_file(s, scope_of(s, "bureau"), case)
        s.rollback()
        # another office's account is refused even handed the case; the office's staff never sign
        for username in ("hjl-staff", "hjl-head", "wsr-staff"):
            with pytest.raises(Forbidden):
                services.cases.case_file(s, scope_of(s, username), case)
            s.rollback()
        # the school's head makes it: the 一生一表 first, then the file, both under the school's seal
        doc, _ = services.cases.case_file(s, school, case)
        s.commit()
        assert doc.issuer is not None and doc.issuer.code == "WSR-SH"
        kinds = s.scalars(select(Document.kind).where(Document.case_id == case.id).order_by(Document.id)).all()
        assert kinds == ["dropout_register", "case_file"]
        # now the office's head and the bureau may make theirs, each certified by its own unit
        for username, code in (("wsr-head", "WSR"), ("bureau", "LCJT")):
            made, _ = services.cases.case_file(s, scope_of(s, username), case)
            s.commit()
            assert made.issuer is not None and made.issuer.code == code
