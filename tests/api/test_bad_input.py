"""Bad input to the API gives a clear error with a stable code, and changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.campaigns.models import Campaign
from service.units.models import Unit
from tests.api.conftest import (
    LICHENG,
    Service,
    bootstrap_bureau,
    running_service,
    setup_licheng,
    signature_data_url,
    xlsx,
)
from tests.documents.test_seal import pad_png


def count(service: Service, model: type) -> int:
    with service.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_malformed_sheets_import_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        bootstrap_bureau(service)
        service.login("bureau")
        c = service.client
        before = count(service, Unit)

        bad = [
            LICHENG[0],
            ("WSR", "历城区王舍人街道教育办公室", "街道教育办", "LCJT", "李志强", ""),
            ("WSR-SH", "", "学校", "WSR", "赵明", ""),  # no name
            ("WSR-SH2", "石河二小", "幼儿园", "WSR", "", ""),  # unknown type
            ("WSR-XD", "辛甸小学", "学校", "NOPE", "", ""),  # unknown parent
            ("WSR", "重复的教育办", "街道教育办", "LCJT", "", ""),  # duplicate code
            ("SYXX", "实验小学", "学校", "WSR-XD", "", "12345"),  # school under a school, bad phone
            ("HJL", "洪家楼教育办", "街道教育办", "WSR", "", ""),  # office under an office
            ("=cmd|' /C calc'!A0", "注入", "学校", "LCJT", "", ""),  # formula-looking code
        ]
        r = c.post("/api/units/import", files={"file": ("units.xlsx", xlsx(bad))})
        assert r.status_code == 422 and r.json()["code"] == "SHEET_INVALID"
        errors = {(e["row"], e["column"]) for e in r.json()["details"]["errors"]}
        assert errors == {
            (3, "单位名称"),
            (4, "单位类型"),
            (5, "上级单位代码"),
            (6, "单位代码"),
            (7, "上级单位代码"),
            (7, "联系电话"),
            (8, "上级单位代码"),
            (9, "单位代码"),
        }, r.json()
        assert "未导入任何单位" in r.json()["message"]
        assert count(service, Unit) == before

        r = c.post("/api/units/import", files={"file": ("units.xlsx", xlsx([("名称", "类型"), ("某校", "学校")]))})
        assert r.status_code == 422 and "表头缺少列" in r.json()["message"]
        r = c.post("/api/units/import", files={"file": ("units.xlsx", b"PK\x03\x04 not really a workbook")})
        assert r.status_code == 422 and "无法读取" in r.json()["message"]
        r = c.post("/api/units/import", files={"file": ("units.pdf", b"%PDF-1.7")})
        assert r.status_code == 422 and ".xlsx 或 .csv" in r.json()["message"]
        # a CSV saved by Chinese Excel (GBK) imports
        csv_text = "\n".join(",".join(map(str, row)) for row in LICHENG[:3]).encode("gb18030")
        r = c.post("/api/units/import", files={"file": ("units.csv", csv_text)})
        assert r.status_code == 200 and r.json() == {"created": 2, "updated": 0}


def test_oversized_and_non_pdf_uploads(tmp_path: Path) -> None:
    with running_service(tmp_path, max_sheet_bytes=4096, max_pdf_bytes=8192) as service:
        bootstrap_bureau(service)
        service.login("bureau")
        c = service.client
        r = c.post("/api/units/import", files={"file": ("units.csv", b"x" * 5000)})
        assert r.status_code == 413 and r.json()["code"] == "UPLOAD_TOO_LARGE"
        r = c.post(
            "/v/check", files={"file": ("big.pdf", b"%PDF-" + b"0" * 9000)}, headers={"accept": "application/json"}
        )
        assert r.status_code == 413 and "过大" in r.json()["summary"]
        r = c.post("/v/check", files={"file": ("doc.pdf", b"GIF89a not a pdf")}, headers={"accept": "application/json"})
        assert r.status_code == 422 and r.json()["summary"] == "上传的文件不是 PDF 文件。"
        page = c.post("/v/check", files={"file": ("doc.pdf", b"GIF89a not a pdf")})
        assert "无法核对" in page.text and "不是 PDF" in page.text


def test_campaign_rules(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        units = setup_licheng(service)
        c = service.client
        service.login("bureau")
        before = (count(service, Campaign), count(service, AuditEvent))
        past = (service.clock.now() - dt.timedelta(hours=1)).isoformat()
        r = c.post("/api/campaigns", json={"name": "过期任务", "year": 2024, "deadline": past})
        assert r.status_code == 422 and r.json()["code"] == "DEADLINE_PASSED" and "已经过去" in r.json()["message"]
        r = c.post("/api/campaigns", json={"name": "x", "year": 2024, "deadline": "下周一"})
        assert r.status_code == 422 and r.json()["code"] == "INVALID_INPUT" and "deadline" in r.json()["message"]
        future = (service.clock.now() + dt.timedelta(days=1)).isoformat()
        r = c.post("/api/campaigns", json={"name": "x", "year": 2024, "deadline": future, "kinds": ["admission"]})
        assert r.status_code == 422 and r.json()["code"] == "CAMPAIGN_INVALID"
        assert (count(service, Campaign), count(service, AuditEvent)) == before
        # a user for a unit that does not exist
        service.login("sysadmin")
        r = c.post(
            "/api/users",
            json={
                "username": "ghost",
                "password": "long-enough",
                "display_name": "x",
                "role": "unit_signer",
                "unit_id": 9999,
            },
        )
        assert r.status_code == 404
        # only the bureau creates campaigns
        service.login("wsr-staff")
        r = c.post("/api/campaigns", json={"name": "x", "year": 2024, "deadline": future})
        assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
        del units


def test_signing_rules(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        c = service.client
        service.login("bureau")
        future = (service.clock.now() + dt.timedelta(days=1)).isoformat()
        cid = c.post(
            "/api/campaigns", json={"name": "承诺书", "year": 2024, "deadline": future, "kinds": ["pledge"]}
        ).json()["id"]
        service.wait_job(c.post(f"/api/campaigns/{cid}/issue").json()["id"])
        assignments = {a["unit_name"]: a for a in c.get(f"/api/campaigns/{cid}/assignments").json()}
        shihe = assignments["历城区王舍人街道石河小学"]
        xindian = assignments["历城区王舍人街道辛甸小学"]
        sig = {"signature_png": signature_data_url(), "confirm": True}

        # someone else's document: another school's principal cannot even see it
        service.login("wsr-sh-head")
        assert c.post(f"/api/assignments/{xindian['id']}/sign", json=sig).status_code == 404
        # the office sees its school's document but cannot sign it
        service.login("wsr-head")
        r = c.post(f"/api/assignments/{shihe['id']}/sign", json=sig)
        assert r.status_code == 403 and r.json()["message"] == "只能签署本单位的文书。"
        # bad pictures and no confirmation
        service.login("wsr-sh-head")
        for body, code in (
            ({"signature_png": "data:image/png;base64,!!!!", "confirm": True}, "UPLOAD_INVALID"),
            ({"signature_png": "data:text/html;base64,PGh0bWw+", "confirm": True}, "UPLOAD_INVALID"),
            ({**sig, "confirm": False}, "UPLOAD_INVALID"),
            # one tap on a pad: a dot is not a signature
            (
                {
                    "signature_png": "data:image/png;base64," + base64.b64encode(pad_png("tap")).decode(),
                    "confirm": True,
                },
                "SIGNATURE_TOO_SMALL",
            ),
        ):
            r = c.post(f"/api/assignments/{shihe['id']}/sign", json=body)
            assert r.status_code == 422 and r.json()["code"] == code, r.text
        # signing twice
        assert c.post(f"/api/assignments/{shihe['id']}/sign", json=sig).status_code == 200
        r = c.post(f"/api/assignments/{shihe['id']}/sign", json=sig)
        assert r.status_code == 409 and r.json()["code"] == "ALREADY_SIGNED"
        # a revoked document
        service.login("bureau")
        r = c.post(f"/api/documents/{xindian['document_id']}/revoke", json={"reason": "学校名称变更，重新下发"})
        assert r.status_code == 200
        service.login("wsr-xd-head")
        r = c.post(f"/api/assignments/{xindian['id']}/sign", json=sig)
        assert r.status_code == 409 and r.json()["code"] == "DOCUMENT_REVOKED" and "撤回" in r.json()["message"]
        # only one signed version was stored for 石河小学
        service.login("bureau")
        versions = c.get(f"/api/documents/{shihe['document_id']}").json()["versions"]
        assert [v["event"] for v in versions] == ["issued", "signed"]


def test_login_failures_are_audited_and_limited(tmp_path: Path) -> None:
    with running_service(tmp_path, login_rate_per_minute=3) as service:
        bootstrap_bureau(service)
        c = service.client
        r = c.post("/api/auth/login", json={"username": "bureau", "password": "wrong-password"})
        assert r.status_code == 401 and r.json() == {"code": "AUTH_FAILED", "message": "用户名或密码错误。"}
        assert c.get("/api/campaigns").status_code == 401
        with service.state.db.session() as s:
            assert s.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login_failed")) is not None
        c.post("/api/auth/login", json={"username": "nobody", "password": "x"})
        c.post("/api/auth/login", json={"username": "nobody", "password": "x"})
        r = c.post("/api/auth/login", json={"username": "bureau", "password": "x"})
        assert r.status_code == 429


def test_an_import_cannot_take_over_another_bureaus_units(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        setup_licheng(service)
        bootstrap_bureau(service, code="ZQ", name="章丘区教育和体育局", username="zhangqiu")
        service.login("zhangqiu")
        c = service.client
        sheet = xlsx(
            [
                LICHENG[0],
                ("WSR", "历城区王舍人街道教育办公室", "街道教育办", "ZQ", "李志强", ""),
                ("LCJT", "济南市历城区教育和体育局", "教体局", "", "", ""),
                ("ZQ-1", "章丘区第一小学", "学校", "WSR-SH", "", ""),
            ]
        )
        r = c.post("/api/units/import", files={"file": ("units.xlsx", sheet)})
        assert r.status_code == 422
        errors = {(e["row"], e["column"]): e["message"] for e in r.json()["details"]["errors"]}
        assert "不能使用" in errors[(2, "单位代码")] and "不能使用" in errors[(3, "单位代码")]
        assert "不存在" in errors[(4, "上级单位代码")]
        assert [u["code"] for u in c.get("/api/units").json()] == ["ZQ"]
        service.login("bureau")
        assert len(c.get("/api/units").json()) == 11


def test_chunked_upload_over_the_limit_is_cut_off(tmp_path: Path) -> None:
    with running_service(tmp_path, max_sheet_bytes=4096, max_pdf_bytes=8192) as service:

        def body():  # a streamed multipart upload: no Content-Length to refuse it by
            yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            yield b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
            for _ in range(50):
                yield b"x" * 100_000
            yield b"\r\n--B--\r\n"

        r = service.client.post("/v/check", content=body(), headers={"content-type": "multipart/form-data; boundary=B"})
        assert r.status_code == 413 and r.json()["code"] == "UPLOAD_TOO_LARGE"
