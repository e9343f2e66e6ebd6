"""Batches: merged conversion gives the same documents as one at a time, each its own code."""

from __future__ import annotations

import re

from service.documents.pipeline import DocumentEngine, IssuedDocument, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.settings import Settings
from service.storage.local import LocalArchive
from tests import checks


def _requests(settings: Settings, n: int) -> list[IssueRequest]:
    base = example_fields(KINDS["enrollment_notice"], settings.schemas_dir)
    names = ["李明", "王芳", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴霞", "徐丽", "孙涛"]
    return [
        IssueRequest(
            "enrollment_notice", {**base, "student_name": names[i % len(names)] + str(i), "guardian_name": f"家长{i}"}
        )
        for i in range(n)
    ]


def test_batch_issues_each_notice_with_its_own_pages_code_and_signature(
    isolated_engine: DocumentEngine, settings: Settings, fresh_archive: LocalArchive, nss_db: str
) -> None:
    seen: list[IssuedDocument] = []
    progress: list[tuple[str, int, int]] = []
    docs = isolated_engine.issue_many(
        _requests(settings, 25), on_issued=seen.append, progress=lambda *a: progress.append(a)
    )
    assert len(docs) == 25 and [d.code for d in seen] == [d.code for d in docs]
    assert len({d.code for d in docs}) == 25 and len({d.sha256 for d in docs}) == 25
    assert sorted(fresh_archive) == sorted(d.sha256 for d in docs)
    assert progress[-1] == ("done", 25, 25)
    for i in (0, 13, 24):  # across both merged chunks (chunk size 20)
        doc = docs[i]
        assert doc.pages == 1
        text = checks.pdftotext(doc.pdf)
        assert f"家长{i}（父母或法定监护人）" in text and doc.fields["student_name"] in text
        assert text.count("义务教育入学通知书") == 1
        assert checks.qr_codes(doc.pdf) == [doc.url]
        assert "Signature is Valid." in checks.pdfsig(doc.pdf, nss_db)
        assert isolated_engine.verify(doc.pdf).genuine


def test_merged_and_single_conversion_give_the_same_layout(isolated_engine: DocumentEngine, settings: Settings) -> None:
    reqs = _requests(settings, 3)
    merged = isolated_engine.issue_many(reqs)
    single = isolated_engine.issue_many(reqs, merge=False)
    for a, b in zip(merged, single, strict=True):
        strip = lambda t: re.sub(r"验证码[-0-9A-Z]+", "", t)  # noqa: E731
        assert strip(checks.pdftotext(a.pdf)) == strip(checks.pdftotext(b.pdf))


def test_a_reserved_code_is_kept(isolated_engine: DocumentEngine, settings: Settings) -> None:
    code = "K7Q3M9XD2HFA8RTWZP4N6JCYB1VE"
    req = _requests(settings, 1)[0]
    doc = isolated_engine.issue(IssueRequest(req.kind, req.fields, code=code))
    assert doc.code == code and doc.url.endswith("/v/" + code)


def test_one_bad_row_stops_the_batch_before_any_work(
    isolated_engine: DocumentEngine, settings: Settings, fresh_archive: LocalArchive
) -> None:
    reqs = _requests(settings, 4)
    bad = dict(reqs[2].fields)
    bad["report_by"] = "下周一"
    reqs[2] = IssueRequest("enrollment_notice", bad)
    import pytest

    from service.documents.errors import FieldsInvalid

    with pytest.raises(FieldsInvalid) as exc:
        isolated_engine.issue_many(reqs)
    assert exc.value.details["errors"][0]["index"] == 2
    assert list(fresh_archive) == []
