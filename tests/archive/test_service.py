from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.archive.models import Document, DocumentVersion, PendingWrite
from service.archive.service import RecordAs, StoredVerdict, bundle_path, mask_name, public_info
from service.audit.service import Actor
from service.clock import wall_now
from service.container import Services
from service.documents.convert import Converter
from service.documents.pipeline import IssueRequest
from service.documents.registry import KINDS, example_fields
from service.jobs.models import Job
from service.settings import Settings
from service.storage.local import LocalArchive
from tests.conftest import built_services
from tests.district import load_district, unit


def test_names_are_masked_for_the_public_page() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("张小雨") == "张*雨"
    assert mask_name("欧阳晓娜") == "欧**娜"
    assert mask_name("李") == "*"


def test_public_information_never_carries_an_id_number() -> None:
    fields = {
        "guardian_name": "张建国",
        "student_name": "张小雨",
        "student_id_number": "370112201804150027",
        "school_name": "济南市历城区实验小学",
        "report_by": "2024-08-31",
        "issuer_name": "济南市历城区教育和体育局",
        "issue_date": "2024-08-10",
        "contact_phone": "0531-88161285",
    }
    info = public_info("enrollment_notice", fields)
    assert info == {
        "kind": "enrollment_notice",
        "title": "义务教育入学通知书",
        "issuer": "济南市历城区教育和体育局",
        "date": "2024-08-10",
        "school_name": "济南市历城区实验小学",
        "report_by": "2024-08-31",
        "subject": "张*雨",
        "guardian": "张*国",
    }
    assert "370112" not in str(info)


def test_bundle_paths_are_safe() -> None:
    assert bundle_path("历城区/教育办", "石河小学:承诺书.pdf") == "历城区_教育办/石河小学_承诺书.pdf"


# --- issue-and-record and recovery, against a real database ------------------------------------


def _request(services: Services) -> IssueRequest:
    fields = example_fields(KINDS["enrollment_notice"], services.settings.schemas_dir)
    return IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt")


def test_a_crash_between_archive_and_record_leaves_nothing_behind(services: Services) -> None:
    load_district(services)
    actor = Actor(None, "测试")
    with services.db.session() as s:
        bureau = unit(s, "LCJT")
        kept, _ = services.archive.issue(s, _request(services), RecordAs(issuer=bureau), actor)
        s.commit()
        _, issued = services.archive.issue(s, _request(services), RecordAs(issuer=bureau), actor)
        s.rollback()  # the process died before its transaction committed: the file is archived, no row
        store = services.archive.documents
        assert store.exists(issued.sha256)
        # journaled apart from the transaction that never committed (the kept one's entry is gone)
        assert [e.sha256 for e in services.archive.requests.entries()] == [issued.sha256]
        # a request's write is given time to commit before it counts as lost
        assert services.archive.sweep(s) == 0
        s.commit()
        services.clock.advance(dt.timedelta(minutes=11))
        assert services.archive.sweep(s) == 1
        s.commit()
        assert not store.exists(issued.sha256) and store.exists(kept.current_sha256)
        assert s.scalars(select(PendingWrite)).all() == [] and services.archive.requests.entries() == []
        assert sorted(store.keys()) == [kept.current_sha256]


def test_a_live_job_keeps_its_writes_and_a_dead_one_loses_them(services: Services) -> None:
    store = services.archive.documents
    live_key, dead_key = store.put(b"%PDF- live job"), store.put(b"%PDF- dead job")
    with services.db.session() as s:
        live = Job(
            kind="roster.issue", params={}, status="running", lease_expires_at=wall_now() + dt.timedelta(minutes=1)
        )
        dead = Job(
            kind="roster.issue", params={}, status="running", lease_expires_at=wall_now() - dt.timedelta(seconds=1)
        )
        s.add_all([live, dead])
        s.flush()
        s.add_all(
            [
                PendingWrite(store="documents", sha256=live_key, job_id=live.id, created_at=services.clock.now()),
                PendingWrite(store="documents", sha256=dead_key, job_id=dead.id, created_at=services.clock.now()),
            ]
        )
        s.commit()
        assert services.archive.sweep(s) == 1
        s.commit()
        assert store.exists(live_key) and not store.exists(dead_key)
        assert [p.sha256 for p in s.scalars(select(PendingWrite))] == [live_key]


def test_verdicts_are_stored_once_and_checked_again_on_schedule(services: Services) -> None:
    load_district(services)
    with services.db.session() as s:
        doc, issued = services.archive.issue(
            s, _request(services), RecordAs(issuer=unit(s, "LCJT")), Actor(None, "测试")
        )
        s.commit()
        assert services.archive.stored_verdict(s, doc) is None  # a scan before the check: 核验中
        assert not s.dirty and not s.new  # ... and the scan wrote nothing
        assert services.archive.check_pending(s) == 1 and services.archive.check_pending(s) == 0
        s.commit()
        assert _genuine(services.archive.stored_verdict(s, doc))
        # the archived file changes behind the service's back (a disk fault, a hand edit)
        store = services.archive.documents
        assert isinstance(store, LocalArchive)
        path = store.path_for(issued.sha256)
        path.chmod(0o644)
        path.write_bytes(issued.pdf.replace(b"%%EOF", b"%%EOX", 1))
        assert _genuine(services.archive.stored_verdict(s, doc))  # a scan reads the record ...
        assert list(services.archive.recheck(s)) == [1]  # ... until the scheduled check runs again
        s.commit()
        stored = services.archive.stored_verdict(s, doc)
        assert stored is not None and not stored.genuine and stored.codes == ["ARCHIVE_CORRUPT"]


def _genuine(stored: StoredVerdict | None) -> bool:
    assert stored is not None, "not checked yet"
    return stored.genuine


def _run_long_term_jobs(services: Services) -> list[str]:
    """What the daily schedule does for long-term validity: the PKI first, then archive timestamps."""
    services.pki.maintain(services.clock.now())
    with services.db.session() as s:
        margin = dt.timedelta(days=services.settings.archive_timestamp_margin_days)
        outcomes = [r.outcome for r in services.archive.refresh_timestamps(s, margin, checkpoint=s.commit)]
        s.commit()
    return outcomes


@pytest.fixture()
def own_pki(tmp_path: Path, settings: Settings, converter: Converter) -> Iterator[Services]:
    """Services with a PKI of their own: twelve years of renewals must not touch the session's."""
    with built_services(tmp_path, settings.model_copy(update={"certs_dir": tmp_path / "certs"}), converter, "") as s:
        yield s


def test_a_notice_stays_genuine_for_twelve_years_through_the_scheduled_jobs(own_pki: Services) -> None:
    services = own_pki
    load_district(services)
    with services.db.session() as s:
        doc, issued = services.archive.issue(
            s, _request(services), RecordAs(issuer=unit(s, "LCJT")), Actor(None, "测试")
        )
        s.commit()
        services.archive.check_pending(s)
        s.commit()
        document_id, original = doc.id, issued.pdf
    start = services.clock.now()
    stamped_at: list[float] = []
    checked: dict[int, bool] = {}
    for quarter in range(1, 12 * 4 + 1):  # the daily jobs, seen every three months for twelve years
        services.clock.advance(start + dt.timedelta(days=round(quarter * 365.25 / 4)) - services.clock.now())
        if "timestamped" in _run_long_term_jobs(services):
            stamped_at.append(quarter / 4)
        if quarter / 4 in (1, 5, 12):
            with services.db.session() as s:
                current = s.get(Document, document_id)
                assert current is not None and current.status == "valid"
                report = services.engine.verify(services.archive.documents.get(current.current_sha256))
                checked[quarter // 4] = report.genuine
                assert report.genuine, (quarter / 4, report.codes)
                if quarter / 4 >= 12:  # the first CA and TSA end at +10 years: only an archive timestamp spans that
                    assert any(sig.kind == "document_timestamp" for sig in report.signatures)
    assert checked == {1: True, 5: True, 12: True} and stamped_at, stamped_at
    with services.db.session() as s:
        versions = s.scalars(
            select(DocumentVersion).where(DocumentVersion.document_id == document_id).order_by(DocumentVersion.number)
        ).all()
        assert [v.event for v in versions] == ["issued", *["timestamped"] * len(stamped_at)]
        assert all(v.sha256 != versions[0].sha256 for v in versions[1:])  # written once, never over
        assert _genuine(services.archive.stored_verdict(s, versions[-1].document))
        assert versions[-1].protected_until is not None and versions[-1].protected_until > services.clock.now()
    # without the jobs, the same notice at +12 years is not a forgery: it needs an archive timestamp
    untouched = services.engine.verify(original)
    assert not untouched.genuine and untouched.codes == {"NEEDS_ARCHIVE_TIMESTAMP"}
