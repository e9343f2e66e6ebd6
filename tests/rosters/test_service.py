"""The roster use cases: a roster dated in Beijing time and issued by its named job with a print file
per school; a return-notice roster opens a case per row; the 回执台账 of who opened and confirmed."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zoneinfo
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from service.archive.models import Document
from service.audit.models import AuditEvent
from service.cases.models import Case
from service.container import Services
from service.errors import UploadInvalid
from service.rosters.models import PrintBundle, RosterEntry
from tests.api.conftest import Service, running_service, setup_licheng
from tests.district import load_district, scope_of
from tests.rosters.roster_data import HEADER, rows, xlsx

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
COL = {name: i for i, name in enumerate(HEADER)}


def at_beijing(services: Services, day: dt.date, hour: int) -> None:
    """Move the service's clock to ``hour`` o'clock Beijing time on ``day``."""
    target = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)
    if target > services.clock.now():
        services.clock.advance(target - services.clock.now())


def test_a_roster_is_dated_in_beijing_time_and_issued_by_its_job(services: Services) -> None:
    load_district(services)
    # 01:00 in Beijing is 17:00 of the day before in UTC: the notices carry the Beijing date.
    day = (services.clock.now() + dt.timedelta(days=2)).astimezone(SHANGHAI).date()
    at_beijing(services, day, 1)
    assert services.clock.now().astimezone(dt.UTC).date() == day - dt.timedelta(days=1)
    sheet = xlsx(rows(30, ["WSR-SH", "WSR-XD"]))
    with services.db.session() as s:
        school_office = scope_of(s, "bureau")
        with pytest.raises(UploadInvalid, match="晚于今天"):
            services.rosters.import_roster(
                s, school_office, sheet, "名单.xlsx", kind="enrollment_notice", report_by=day
            )
        roster, skipped = services.rosters.import_roster(
            s, school_office, sheet, "名单.xlsx", kind="enrollment_notice", report_by=day + dt.timedelta(days=30)
        )
        s.commit()
        assert skipped == [] and roster.issue_date == day and roster.rows == 30
        job, _ = services.rosters.start_issue(s, school_office, roster, services.jobs)
        s.commit()
        ended = services.jobs.run_here(job.id)
        assert ended.status == "done", ended.error_message
        issued = s.scalars(
            select(Document)
            .join(RosterEntry, RosterEntry.document_id == Document.id)
            .where(RosterEntry.roster_id == roster.id)
        ).all()
        assert len(issued) == 30 and {d.fields["issue_date"] for d in issued} == {day.isoformat()}
        bundles = s.scalars(select(PrintBundle).where(PrintBundle.roster_id == roster.id)).all()
        assert sorted(b.notices for b in bundles) == [15, 15]
        for b in bundles:
            assert services.archive.documents.exists(b.sha256)
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "roster.import")) == 1


def test_receipts_ledger_of_an_enrollment_roster_has_its_grade_and_class(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        data = rows(3, ["WSR-SH"], seed=11)
        report_by = (dt.date.today() + dt.timedelta(days=20)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("一年级名单.xlsx", xlsx(data))},
            data={"kind": "enrollment_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        sheet = load_workbook(
            io.BytesIO(c.get(f"/api/rosters/{r.json()['id']}/receipts.xlsx?purpose=家访核查").content)
        ).active
        assert [cell.value for cell in sheet[1]][2] == "年级班级"
        got = sorted((row[3], row[2]) for row in sheet.iter_rows(min_row=2, values_only=True))
        assert got == sorted((row[1], row[6] + row[7]) for row in data)  # e.g. 一年级3班
        # the pages show the codes a roster needs
        assert "本校代码 <b>WSR-SH</b>" in c.get("/rosters").text
        service.login("bureau")
        assert "WSR-SH" in c.get("/rosters").text and '代码 <span class="code">WSR-SH</span>' in c.get("/units").text


def _count(service: Service, model: type) -> int:
    with service.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_return_roster_creates_cases_formulas_stay_text_and_receipts_come_back(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("wsr-sh-head")
        data = [list(r) for r in rows(6, ["WSR-SH"], seed=11)]
        data[0][COL["学生姓名"]] = '=HYPERLINK("http://evil","点我")'
        header = (*HEADER, "辍学日期", "辍学原因")
        data = [[*r, "2024-09-02", "厌学"] for r in data]
        for r in data:
            r[COL["年级"]] = "六年级"
        report_by = (dt.date.today() + dt.timedelta(days=10)).isoformat()
        r = c.post(
            "/api/rosters",
            files={"file": ("复学名单.xlsx", xlsx(data, header))},
            data={"kind": "return_notice", "report_by": report_by},
        )
        assert r.status_code == 201, r.text
        roster_id = r.json()["id"]
        assert _count(service, Case) == 6
        with service.state.db.session() as s:  # the codes reserved at import, as printed on the notices
            entry = s.scalar(select(RosterEntry).where(RosterEntry.roster_id == roster_id).order_by(RosterEntry.row))
            code = entry.code  # type: ignore[union-attr]
        job = service.wait_job(c.post(f"/api/rosters/{roster_id}/issue").json()["id"])
        assert job["status"] == "done" and job["done"] == 6

        # a guardian opens one notice and confirms it
        doc_id = None
        with service.state.db.session() as s:
            entry = s.scalar(select(RosterEntry).where(RosterEntry.roster_id == roster_id).order_by(RosterEntry.row))
            doc_id = entry.document_id  # type: ignore[union-attr]
            # once issued, the database keeps only the code's hash, like the document's
            assert entry.code == hashlib.sha256(code.encode()).hexdigest()  # type: ignore[union-attr]
        page = c.get(f"/v/{code}")
        assert "我已阅知" in page.text
        c.post(f"/v/{code}/opened")  # the page's script: a person saw it
        service.state.opens.flush()
        phone = data[0][COL["监护人电话"]]  # the guardian of the first row confirms with the end of their phone
        confirmed = c.post(f"/v/{code}/confirm", data={"digits": phone[-4:]})
        assert "已于" in confirmed.text and "确认阅知" in confirmed.text and "我已阅知" not in confirmed.text
        info = c.get(f"/api/rosters/{roster_id}").json()
        assert info["issued"] == 6 and info["opened"] == 1 and info["confirmed"] == 1

        # the receipt ledger keeps the formula-looking name as text
        sheet = load_workbook(
            io.BytesIO(c.get(f"/api/rosters/{roster_id}/receipts.xlsx?purpose=家访核查").content)
        ).active
        names = [row[3] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert '\'=HYPERLINK("http://evil","点我")' in names
        confirmed_rows = [row for row in sheet.iter_rows(min_row=2, values_only=True) if row[8]]
        assert len(confirmed_rows) == 1
        # the notice carries the name as text, and the case was created for each row
        with service.state.db.session() as s:
            doc = s.get(Document, doc_id)
            assert doc is not None and doc.case_id is not None
        assert re.search(r"HYPERLINK", str(doc.fields["student_name"]))
