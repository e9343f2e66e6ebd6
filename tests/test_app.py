"""The app as production builds it: what it shows to whom."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.accounts.models import User
from service.accounts.service import create_token
from service.app import create_app
from service.settings import PROJECT_ROOT, Settings
from tests.api.conftest import PKI_PASSPHRASE, Service, bootstrap_bureau, pki_template


def test_in_production_the_api_description_is_for_signed_in_users_only(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        data_dir=tmp_path / "var",
        certs_dir=tmp_path / "certs",
        templates_dir=PROJECT_ROOT / "templates",
        schemas_dir=PROJECT_ROOT / "schemas",
        pki_passphrase=PKI_PASSPHRASE,  # type: ignore[arg-type]
        secret_key="k" * 8 + "9f2c4e1a7b3d5f6081a2c3d4e5f60718",  # type: ignore[arg-type]
        public_base_url="https://kcbx.lcjt.gov.cn",
    )
    shutil.copytree(pki_template(), settings.certs_dir)
    with TestClient(create_app(settings, warm=False)) as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/redoc").status_code == 404
        page = client.get("/docs", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code in (302, 303) and "/login" in page.headers["location"]

        service = Service(client, client.app.state.service.clock, settings)  # type: ignore[attr-defined]
        bootstrap_bureau(service)
        with service.state.db.session() as s:
            user = s.scalars(select(User).where(User.username == "bureau")).one()
            _, token = create_token(s, user, "接口文档", service.clock.now(), access="read")
            s.commit()
        signed_in = {"authorization": f"Bearer {token}"}
        schema = client.get("/openapi.json", headers=signed_in)
        assert schema.status_code == 200 and "/api/campaigns" in schema.json()["paths"]
        assert "/openapi.json" not in schema.json()["paths"]
        docs = client.get("/docs", headers=signed_in)
        assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_while_a_request_waits_an_unreachable_store_is_answered_in_seconds_not_after_its_patience() -> None:
    import threading

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from service.app import StorePatience
    from service.errors import DocsignError
    from service.storage.s3 import S3Archive, connect_from_settings
    from tests.storage.test_store import closed_port

    settings = Settings(
        archive_url="s3://docsign",
        s3_endpoint_url=f"http://127.0.0.1:{closed_port()}",  # a stopped store
        s3_access_key_id="docsign",
        s3_secret_access_key="secret",  # type: ignore[arg-type]
    )
    # background work would wait ten minutes for the store to come back
    store = S3Archive(connect_from_settings(settings), "docsign", "documents", patience=600.0)
    app = FastAPI()
    app.add_middleware(StorePatience, seconds=0.5)

    @app.get("/file")
    def download() -> bytes:  # served in a worker thread, as the real downloads are
        return store.get("0" * 64)

    @app.exception_handler(DocsignError)
    async def refused(request: object, exc: DocsignError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.http_status)

    answers: list[tuple[int, dict[str, str]]] = []

    def ask() -> None:
        with TestClient(app) as client:
            r = client.get("/file")
            answers.append((r.status_code, r.json()))

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(120)  # far less than the store's patience; a wait for it would leave no answer
    assert answers, "the request waited for the background patience"
    status, body = answers[0]
    assert status == 503 and body["code"] == "ARCHIVE_UNAVAILABLE"
    assert "已重试 0.5 秒仍未恢复" in body["message"]
