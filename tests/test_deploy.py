"""What deploy/ holds is checked by the tools that will read it: the alert rules by promtool
(syntax, and their own unit tests: each alert fires when it should and not before), and every
metric they name is one the service exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sqlalchemy import select

from service.audit.models import AuditEvent
from tests.api.conftest import running_service

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "docsign-alerts.yml"
#: Exported only by the scale-out profile (a broker and workers apart from the web process).
SCALE_OUT_ONLY = {"docsign_queue_depth", "docsign_worker_tick_age_seconds"}


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    tested = subprocess.run(
        ["promtool", "test", "rules", RULES.with_name("docsign-alerts.test.yml").name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_metric_the_alerts_name_is_exported(tmp_path: Path) -> None:
    def family(name: str) -> str:
        return re.sub(r"_(bucket|count|sum|total)$", "", name)

    named = {family(m) for m in re.findall(r"\b(docsign_[a-z_]+)", RULES.read_text(encoding="utf-8"))}
    with running_service(tmp_path) as service:
        service.client.get("/v/ABCD-EFGH-JKMN")  # a scan, so the route's histogram has a series
        text = service.client.get("/metrics").text
    exported = {family(m) for m in re.findall(r"^(docsign_[a-z_]+)", text, re.M)}
    assert named - SCALE_OUT_ONLY <= exported, named - SCALE_OUT_ONLY - exported


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Each unit, with its paths pointed at this checkout, is one systemd accepts without a word
    (systemd-analyze exits 0 on an unknown value and only says so: silence is the check)."""
    root = Path(__file__).resolve().parent.parent
    env = tmp_path / "docsign.env"
    env.write_text("DOCSIGN_ENVIRONMENT=production\n")
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"docsign-web.service", "docsign-worker.service", "docsign-worker-beat.service"}
    for unit in units:
        text = unit.read_text(encoding="utf-8").replace("/etc/docsign/docsign.env", str(env))
        (tmp_path / unit.name).write_text(text.replace("/opt/docsign", str(root)), encoding="utf-8")
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[u.name for u in units]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout + checked.stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kcbx.example.edu.cn")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    chain, private = folder / "fullchain.pem", folder / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain, private


def nginx_config(tmp_path: Path, backend_port: int, http_port: int, https_port: int) -> Path:
    """deploy/nginx/docsign.conf in a minimal nginx.conf of its own: certificates, logs, ports and
    the backend moved into ``tmp_path``; nothing else of the site changed."""
    chain, private = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "docsign.conf").read_text(encoding="utf-8")
    for old, new in (
        ("/etc/docsign/tls/fullchain.pem", str(chain)),
        ("/etc/docsign/tls/privkey.pem", str(private)),
        ("/var/log/nginx/docsign.access.log", str(tmp_path / "access.log")),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{backend_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:80;\n", ""),
        ("listen [::]:443 ssl http2;\n", ""),
    ):
        assert old in site, old
        site = site.replace(old, new)
    (tmp_path / "docsign.conf").write_text(site, encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
daemon off;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/docsign.conf;
}}
""",
        encoding="utf-8",
    )
    return conf


def test_the_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    conf = nginx_config(tmp_path, 8000, 8080, 8443)
    checked = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_service_behind_the_nginx_site_logs_no_code_and_answers_with_the_proxys_request_id(
    tmp_path: Path,
) -> None:
    """The real proxy in front of the real server: HTTP redirects to HTTPS, a scan goes through with
    the request id nginx made, and nginx's access log holds /v/{code}, never the code."""
    import threading
    import time

    import httpx
    import uvicorn

    backend, http_port, https_port = _free_port(), _free_port(), _free_port()
    (tmp_path / "nginx").mkdir()
    conf = nginx_config(tmp_path / "nginx", backend, http_port, https_port)
    with running_service(tmp_path / "service", trusted_proxies="127.0.0.1") as service:
        server = uvicorn.Server(uvicorn.Config(service.client.app, port=backend, lifespan="off", log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        proxy = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path / "nginx")], stderr=subprocess.PIPE)
        try:
            base = f"https://127.0.0.1:{https_port}"
            with httpx.Client(verify=False, timeout=10) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if client.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "nginx or the service did not start"
                    time.sleep(0.2)
                plain = client.get(f"http://127.0.0.1:{http_port}/v", follow_redirects=False)
                assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
                code = "7K3M-9QXZ-2B4C-6D8E-0F1G-H5J7-K9M2"
                scan = client.get(f"{base}/v/{code}", headers={"accept": "application/json"})
                assert scan.status_code == 404 and scan.json()["found"] is False
                rid = scan.headers["x-request-id"]
                assert len(rid) == 32  # nginx's $request_id, carried through the service
                # the client as nginx saw it (here a forwarded hop, since the test runs on the
                # proxy's own machine): the service's audit names it, not nginx's 127.0.0.1
                failed = client.post(
                    f"{base}/api/auth/login",
                    json={"username": "nobody", "password": "not-the-password-1"},
                    # as the login page sends it: nginx passes the Host with its port, so the
                    # service finds the page's own origin (and no cross-site request)
                    headers={"x-forwarded-for": "198.51.100.7", "origin": base},
                )
                assert failed.status_code == 401, failed.text
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
            server.should_exit = True
            thread.join(timeout=30)
        with service.state.db.session() as s:
            clients = s.scalars(select(AuditEvent.client).where(AuditEvent.action == "auth.login_failed")).all()
        assert clients == ["198.51.100.7"]
    log = (tmp_path / "nginx" / "access.log").read_text(encoding="utf-8")
    assert '"GET /v/{code}" 404' in log and f"req={rid}" in log
    assert "7K3M" not in log
