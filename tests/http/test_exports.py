"""Exports with a purpose: every export that holds children's data is refused without a purpose
(no file, no access-log entry), masks 身份证号 and phones unless ``full=1`` is asked by a role
allowed it (bureau staff, a school's head), and its access-log entry says the purpose, masked or
full, and the row count."""

from __future__ import annotations

import io
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import func, select

from service.audit.access import verify_access_chain
from service.audit.models import AccessEntry
from tests.api.conftest import Service, running_service, setup_licheng
from tests.ledgers.term import xlsx as term_xlsx
from tests.rosters.roster_data import resident_id, rows
from tests.rosters.roster_data import xlsx as roster_xlsx

CASE_ID_NUMBER = "370112201203070013"
CASE_PHONE = "13805310002"
CHILD_PHONE = "13905319876"


def _last_id(service: Service) -> int:
    service.state.access.flush()
    with service.state.db.session() as s:
        return s.scalar(select(func.coalesce(func.max(AccessEntry.id), 0))) or 0


def _entries_after(service: Service, last: int) -> list[AccessEntry]:
    service.state.access.flush()
    with service.state.db.session() as s:
        return list(s.scalars(select(AccessEntry).where(AccessEntry.id > last).order_by(AccessEntry.id)))


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


def _cells(data: bytes) -> list[str]:
    book = load_workbook(io.BytesIO(data))
    return [str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row if c is not None]


def test_exports_ask_a_purpose_mask_numbers_and_record_both(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        units = setup_licheng(service)
        xx = units["HJL-XX"]
        service.login("hjl-xx-head")
        r = c.post(
            "/api/cases",
            json={
                "school_id": xx,
                "student_name": "李四",
                "id_number": CASE_ID_NUMBER,
                "sex": "男",
                "birth_date": "2012-03-07",
                "grade": "六年级",
                "guardians": [{"name": "李大", "phone": CASE_PHONE}],
            },
        )
        assert r.status_code == 201, r.text
        now = service.clock.now()
        year = now.year if now.month >= 9 else now.year - 1
        kid = resident_id(7, "20200901", female=False)
        sheet = term_xlsx(
            [
                ("儿童姓名", "身份证号", "性别", "出生日期", "监护人", "联系电话"),
                ("马小一", kid, "男", "2020-09-01", "马大", CHILD_PHONE),
            ]
        )
        r = c.post(
            "/ledgers/children/import", data={"school_id": xx, "year": year}, files={"file": ("名单.xlsx", sheet)}
        )
        assert "已导入 1 名儿童。" in r.text, r.text[:500]
        roster = c.post(
            "/api/rosters",
            files={"file": ("名单.xlsx", roster_xlsx(rows(2, ["HJL-XX"])))},
            data={"kind": "enrollment_notice", "report_by": "2099-08-31"},
        )
        assert roster.status_code == 201, roster.text
        roster_id = roster.json()["id"]
        assert service.wait_job(c.post(f"/api/rosters/{roster_id}/issue").json()["id"])["status"] == "done"

        # (url, full numbers it would hold, whether it is a signed file exported as issued)
        numbers = [CASE_ID_NUMBER, CASE_PHONE, kid, CHILD_PHONE]
        exports: list[tuple[str, list[str], bool]] = [
            (f"/ledgers/suspected/export.xlsx?unit={xx}", [CASE_ID_NUMBER], False),
            (f"/ledgers/suspected/provincial.xlsx?unit={xx}", [CASE_ID_NUMBER], False),
            (f"/ledgers/children/export.xlsx?unit={xx}&year={year}", [kid, CHILD_PHONE], False),
            ("/deadlines/export.xlsx", [], False),
            (f"/api/rosters/{roster_id}/receipts.xlsx", [], False),
            (f"/api/rosters/{roster_id}/print/{xx}.pdf", [], True),
        ]
        refusals = [
            ("", "EXPORT_PURPOSE_REQUIRED"),
            ("purpose=%20", "EXPORT_PURPOSE_REQUIRED"),
            ("purpose=其他", "EXPORT_PURPOSE_REQUIRED"),  # 其他 needs its few words
            ("purpose=" + "核" * 41, "EXPORT_PURPOSE_TOO_LONG"),
        ]
        for url, full_values, signed in exports:
            for username in ("hjl-xx-head", "hjl-staff", "bureau"):
                service.login(username)
                allowed_full = username != "hjl-staff"
                for query, code in refusals:
                    last = _last_id(service)
                    got = c.get(_with(url, query))
                    assert got.status_code == 422, (url, query, got.status_code)
                    assert got.json()["code"] == code and "用途" in got.json()["message"], got.text
                    assert _entries_after(service, last) == [], (url, query)

                last = _last_id(service)
                got = c.get(_with(url, "purpose=家访核查"))
                assert got.status_code == 200, (username, url, got.text[:200])
                (e,) = _entries_after(service, last)
                assert (e.purpose, e.full, e.username) == ("家访核查", signed, username), url
                assert isinstance(e.rows, int), url
                if not signed:
                    cells = " ".join(_cells(got.content))
                    assert not [n for n in numbers if n in cells], (username, url)
                    for n in full_values:  # masked, not left out: the region and last four stay
                        masked = n[:3] + "****" + n[-4:] if len(n) == 11 else n[:6] + "********" + n[-4:]
                        assert masked in cells, (username, url, masked)

                last = _last_id(service)
                got = c.get(_with(url, "purpose=其他&purpose_text=配合公安核查户籍&full=1"))
                if not allowed_full:
                    assert got.status_code == 403 and got.json()["code"] == "EXPORT_FULL_FORBIDDEN", got.text
                    assert _entries_after(service, last) == [], url
                    continue
                assert got.status_code == 200, (username, url, got.text[:200])
                (e,) = _entries_after(service, last)
                assert (e.purpose, e.full) == ("其他：配合公安核查户籍", True), url
                if not signed:
                    cells = " ".join(_cells(got.content))
                    for n in full_values:
                        assert n in cells, (username, url, n)

        # the school's head sees its own school's rows; the rows counted are the file's
        service.login("hjl-xx-head")
        last = _last_id(service)
        got = c.get(f"/ledgers/children/export.xlsx?unit={xx}&year={year}&purpose=存档")
        (e,) = _entries_after(service, last)
        assert e.rows == 1 and e.subject == "ledger" and e.subject_id == "children"
        with service.state.db.session() as s:
            assert verify_access_chain(s).ok
            # an entry names the export's purpose and filter, never a child's numbers
            text = " ".join(str((e.purpose, e.filter)) for e in s.scalars(select(AccessEntry)))
            assert CASE_ID_NUMBER not in text and CHILD_PHONE not in text


def test_the_export_forms_offer_purposes_and_full_numbers_to_the_roles_allowed(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        c = service.client
        setup_licheng(service)
        for username, full in (("hjl-xx-head", True), ("hjl-staff", False), ("bureau", True)):
            service.login(username)
            page = c.get("/ledgers/suspected").text
            assert 'class="export"' in page and 'name="purpose"' in page and "家访核查" in page
            assert 'formaction="/ledgers/suspected/export.xlsx"' in page
            assert ('name="full"' in page) is full, username
            assert 'name="full"' not in c.get("/deadlines").text  # names, no numbers to unmask
