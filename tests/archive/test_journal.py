"""A request's archive writes are journaled apart from its own transaction: any number of files in one
request, whatever it wrote first, on SQLite (one write lock) as on PostgreSQL; many at once; and what a
request that never committed stored is found and removed by recovery."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select

from service.archive.service import REQUEST_GRACE
from service.cases.models import Case, CaseClosure, CaseFile
from service.cases.service import CaseIn, GuardianIn
from service.container import Services
from service.storage.base import sha256_hex
from tests.district import load_district, scope_of, unit

PHOTO = b"\x89PNG\r\n\x1a\n" + b"home visit " * 200


def new_case(services: Services, n: int) -> int:
    with services.db.session() as s:
        case = services.cases.create(
            s,
            scope_of(s, "wsr-sh-head"),
            unit(s, "WSR-SH").id,
            CaseIn(
                student_name=f"测试{n}",
                id_number=["370112201203070013", "370112201105140028", "370112201009210036"][n % 3],
                sex="男",
                birth_date=dt.date(2012, 3, 7),
                grade="六年级",
                class_name="二班",
                confirmed=True,
                guardians=[GuardianIn("王德福", "父亲", "13805310001")],
            ),
        )
        s.commit()
        return case.id


def test_a_request_stores_several_files_after_writing_and_commits_them_all(services: Services) -> None:
    load_district(services)
    case_id = new_case(services, 0)
    files = [(f"照片{i}.png", PHOTO + bytes([i])) for i in range(3)]
    with services.db.session() as s:
        case = s.get(Case, case_id)
        assert case is not None
        head = scope_of(s, "wsr-sh-head")
        services.cases.add_attempt(
            s, head, case, date=services.cases.today(), staff="张老师", method="家访", result="家长不同意",
            attachments=files,
        )  # fmt: skip
        # a second write of the same request after the first files: the 核销 with two evidence files
        services.cases.write_off(
            s, head, case, "deceased", [("死亡证明.pdf", b"%PDF-1.4 death"), ("户籍注销.pdf", b"%PDF-1.4 register")]
        )
        assert services.archive.requests.entries(), "journaled before the files were stored"
        s.commit()
    assert services.archive.requests.entries() == []  # the records committed: the entries are gone
    with services.db.session() as s:
        kept = s.scalars(select(CaseFile).where(CaseFile.case_id == case_id)).all()
        assert sorted(f.filename for f in kept) == [
            "户籍注销.pdf",
            "死亡证明.pdf",
            "照片0.png",
            "照片1.png",
            "照片2.png",
        ]
        for f in kept:
            assert services.archive.stores["files"].get(f.sha256)  # each stored, checked against its hash
        assert s.scalar(select(func.count()).select_from(CaseClosure).where(CaseClosure.case_id == case_id)) == 1


def test_ten_requests_upload_at_once(services: Services) -> None:
    load_district(services)
    case_ids = [new_case(services, n) for n in range(1)]
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            with services.db.session() as s:
                case = s.get(Case, case_ids[0])
                assert case is not None
                services.cases.add_attempt(
                    s, scope_of(s, "wsr-sh-head"), case, date=services.cases.today(), staff=f"老师{n}",
                    method="电话", result="未接通", attachments=[(f"{n}-a.png", PHOTO + b"a%d" % n), (f"{n}-b.png", PHOTO + b"b%d" % n)],
                )  # fmt: skip
                s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(CaseFile).where(CaseFile.case_id == case_ids[0])) == 20
    assert services.archive.requests.entries() == []


def test_what_a_request_stored_and_never_committed_is_removed_by_recovery(services: Services) -> None:
    load_district(services)
    case_id = new_case(services, 0)
    lost, kept = PHOTO + b"lost", PHOTO + b"kept"
    with services.db.session() as s:  # this one rolls back: its file stays journaled
        case = s.get(Case, case_id)
        assert case is not None
        services.cases.add_attempt(
            s, scope_of(s, "wsr-sh-head"), case, date=services.cases.today(), staff="张老师", method="电话",
            result="未接通", attachments=[("lost.png", lost), ("kept.png", kept)],
        )  # fmt: skip
        s.rollback()
    with services.db.session() as s:  # the same content kept by a request that commits
        case = s.get(Case, case_id)
        assert case is not None
        services.cases.add_attempt(
            s, scope_of(s, "wsr-sh-head"), case, date=services.cases.today(), staff="张老师", method="电话",
            result="未接通", attachments=[("kept.png", kept)],
        )  # fmt: skip
        s.commit()
    files = services.archive.stores["files"]
    assert files.exists(sha256_hex(lost)) and len(services.archive.requests.entries()) == 2
    with services.db.session() as s:
        assert services.archive.sweep(s) == 0  # too recent: the request may still be under way
        services.clock.advance(REQUEST_GRACE + dt.timedelta(seconds=1))
        assert services.archive.sweep(s) == 1
        s.commit()
    assert not files.exists(sha256_hex(lost))  # no committed row named it
    assert files.exists(sha256_hex(kept))  # another request's committed row does
    assert services.archive.requests.entries() == []
