"""The local PKI keeps itself alive: CRLs re-published before their nextUpdate, unit certificates
renewed before they expire, the TSA's key rolled over, and a status that says what expires when.

A PKI made years ago comes from the injected clock: the test makes it in the past, then moves the
clock to today, where documents are signed and verified with the real signing path.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from pyhanko.pdf_utils.reader import PdfFileReader

from service.documents.convert import Converter
from service.documents.pipeline import DocumentEngine, IssueRequest
from service.documents.registry import KINDS, example_fields
from service.pki.crls import CRL_DAYS
from service.pki.errors import CertificateNotRenewable, CertificateRevoked, RevocationInvalid
from service.pki.store import Pki
from service.settings import Settings
from service.storage.local import LocalArchive
from tests import checks
from tests.conftest import TEST_KDF_ROUNDS

UTC = dt.UTC
PASSPHRASE = "lifecycle-passphrase"
BUREAU_KEY, SCHOOL_KEY = "bureau-lc", "school-sh"
SCHOOL = "历城区王舍人街道石河小学"
YEAR = dt.timedelta(days=365)
DOCSIGN = str(Path(sys.executable).with_name("docsign"))


class Clock:
    """The PKI's time, set by the test."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def today(self) -> None:
        self.at = dt.datetime.now(UTC)


def make_pki(folder: Path, clock: Clock) -> Pki:
    return Pki(
        folder / "certs",
        PASSPHRASE,
        "测试证书中心",
        "https://kcbx.example.edu.cn",
        now=clock,
        kdf_rounds=TEST_KDF_ROUNDS,
    )


def bureau_name(settings: Settings) -> str:
    kind = KINDS["pledge"]
    return str(example_fields(kind, settings.schemas_dir)[kind.issuer.name_field])


def engine_for(pki: Pki, settings: Settings, converter: Converter, tmp_path: Path) -> DocumentEngine:
    """The real pipeline over ``pki`` (signing in this process, at the system's time)."""
    own = settings.model_copy(update={"certs_dir": pki.dir, "pki_passphrase": SecretStr(PASSPHRASE)})
    return DocumentEngine(own, pki=pki, converter=converter, archive=LocalArchive(tmp_path / "archive"))


def issue_pledge(engine: DocumentEngine, settings: Settings) -> bytes:
    fields = example_fields(KINDS["pledge"], settings.schemas_dir)
    return engine.issue(IssueRequest("pledge", fields, issuer_key=BUREAU_KEY)).pdf


def signer_serials(pdf: bytes) -> list[int]:
    return [sig.signer_cert.serial_number for sig in PdfFileReader(io.BytesIO(pdf)).embedded_signatures]


def tsa_serials(pdf: bytes) -> list[int]:
    """Serial of the TSA certificate that signed each signature's timestamp token."""
    serials = []
    for sig in PdfFileReader(io.BytesIO(pdf)).embedded_signatures:
        token = next(
            a["values"][0]
            for a in sig.signer_info["unsigned_attrs"]
            if a["type"].native == "signature_time_stamp_token"
        )
        serials.append(token["content"]["signer_infos"][0]["sid"].chosen["serial_number"].native)
    return serials


def pdfsig_trusts(pdf: bytes, pki: Pki, folder: Path) -> str:
    root = folder / "root.crt"
    root.write_bytes(pki.root_certificate().public_bytes(serialization.Encoding.PEM))
    return checks.pdfsig(pdf, checks.nss_db(folder / "nss", root))


def openssl_crl(path: Path) -> dict[str, str]:
    """nextUpdate, lastUpdate and CRL number as ``openssl crl`` reads them."""
    out = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout", "-lastupdate", "-nextupdate", "-crlnumber"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def openssl_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text.replace("  ", " "), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC)


def test_the_crl_is_republished_before_its_next_update(tmp_path: Path) -> None:
    today = dt.datetime.now(UTC)
    clock = Clock(today - dt.timedelta(days=20))
    pki = make_pki(tmp_path, clock)
    pki.init()
    pki.issue_unit(SCHOOL_KEY, SCHOOL)
    serial = int(pki.revoke_unit(SCHOOL_KEY))
    path = tmp_path / "certs" / "crl" / "issuing.crl"
    before = openssl_crl(path)
    assert openssl_time(before["nextUpdate"]) < today + dt.timedelta(days=11)

    clock.today()
    issuing_crl = next(i for i in pki.status().items if i.kind == "crl" and i.key == "issuing")
    assert issuing_crl.warn and issuing_crl.days_left == 9  # 10 days less a few seconds
    published = pki.refresh_crls()
    assert [p.which for p in published] == ["issuing"]  # the root's CRL has most of its year left

    after = openssl_crl(path)
    assert abs(openssl_time(after["nextUpdate"]) - (today + dt.timedelta(days=CRL_DAYS))) < dt.timedelta(minutes=1)
    assert abs(openssl_time(after["lastUpdate"]) - today) < dt.timedelta(minutes=6)
    assert int(after["crlNumber"], 16) > int(before["crlNumber"], 16)
    served = pki.crls()[1]
    assert served.public_bytes(serialization.Encoding.DER) == path.read_bytes()
    assert served.get_revoked_certificate_by_serial_number(serial) is not None  # the same entries
    assert served.is_signature_valid(pki.issuing_certificate().public_key())  # type: ignore[arg-type]
    assert not next(i for i in pki.status().items if i.kind == "crl" and i.key == "issuing").warn
    assert pki.refresh_crls() == []


def test_a_renewed_unit_certificate_signs_new_documents_and_old_ones_still_verify(
    tmp_path: Path, settings: Settings, converter: Converter
) -> None:
    today = dt.datetime.now(UTC)
    clock = Clock(today - 3 * YEAR + dt.timedelta(days=60))  # certificates made then expire in 60 days
    pki = make_pki(tmp_path, clock)
    pki.init()
    old_bureau = pki.issue_unit(BUREAU_KEY, bureau_name(settings)).certificate
    old_school = pki.issue_unit(SCHOOL_KEY, SCHOOL).certificate
    clock.today()
    engine = engine_for(pki, settings, converter, tmp_path)
    before = issue_pledge(engine, settings)
    assert signer_serials(before) == [old_bureau.serial_number]

    renewed = {r.key: r for r in pki.renew_expiring()}
    assert set(renewed) == {BUREAU_KEY, SCHOOL_KEY}
    assert renewed[BUREAU_KEY].old_serial == old_bureau.serial_number
    new_bureau = pki.unit(BUREAU_KEY).certificate
    assert new_bureau.serial_number == renewed[BUREAU_KEY].new_serial
    assert new_bureau.subject == old_bureau.subject and new_bureau.public_key() != old_bureau.public_key()
    assert new_bureau.not_valid_after_utc > today + 3 * YEAR - dt.timedelta(days=1)
    assert pki.unit_certificates(BUREAU_KEY) == [old_bureau, new_bureau]
    assert pki.renew_expiring() == []

    after = issue_pledge(engine, settings)
    assert signer_serials(after) == [new_bureau.serial_number]
    # the school signs, with its new certificate, the pledge the bureau certified with its old one
    countersigned, _ = engine.sign_as(before, unit_key=SCHOOL_KEY)
    assert signer_serials(countersigned) == [old_bureau.serial_number, renewed[SCHOOL_KEY].new_serial]
    assert old_school.serial_number != renewed[SCHOOL_KEY].new_serial

    for pdf in (before, after, countersigned):
        report = engine.verify(pdf)
        assert report.genuine, report.to_dict()
    sig = pdfsig_trusts(countersigned, pki, tmp_path)
    assert sig.count("Signature is Valid.") == 2 and sig.count("Certificate is Trusted.") == 2, sig
    # another process sharing certs/ signs with the new certificate too
    assert make_pki(tmp_path, clock).unit(BUREAU_KEY).certificate == new_bureau


def test_tsa_rollover_keeps_old_timestamps_verifiable(tmp_path: Path, settings: Settings, converter: Converter) -> None:
    today = dt.datetime.now(UTC)
    clock = Clock(today - 3 * YEAR - dt.timedelta(days=10))  # the TSA key has signed for three years
    pki = make_pki(tmp_path, clock)
    pki.init()
    old_tsa, _ = pki.tsa()
    clock.at = today - YEAR
    pki.issue_unit(BUREAU_KEY, bureau_name(settings))
    pki.issue_unit(SCHOOL_KEY, SCHOOL)
    clock.today()
    engine = engine_for(pki, settings, converter, tmp_path)
    before = issue_pledge(engine, settings)
    assert tsa_serials(before) == [old_tsa.serial_number]
    tsa_item = next(i for i in pki.status().items if i.kind == "tsa")
    assert tsa_item.renews_from is not None and tsa_item.renews_from < today

    rolled = pki.rollover_tsa()
    assert rolled is not None and rolled.old_serial == old_tsa.serial_number
    new_tsa, _ = pki.tsa()
    assert new_tsa.serial_number == rolled.new_serial and new_tsa.subject == old_tsa.subject
    # the issuing CA has under seven years left: the new TSA certificate ends with it, not 10 years on
    assert new_tsa.not_valid_after_utc == pki.issuing_certificate().not_valid_after_utc
    assert pki.tsa_certificates() == [old_tsa, new_tsa]
    assert pki.rollover_tsa() is None

    countersigned, _ = engine.sign_as(before, unit_key=SCHOOL_KEY)
    assert tsa_serials(countersigned) == [old_tsa.serial_number, new_tsa.serial_number]
    for pdf in (before, countersigned):
        report = engine.verify(pdf)
        assert report.genuine, report.to_dict()
        assert all(s.timestamped for s in report.signatures)
    sig = pdfsig_trusts(countersigned, pki, tmp_path)
    assert sig.count("Signature is Valid.") == 2, sig


def make_aged(folder: Path) -> Pki:
    """A PKI made on 10 January 2021, with units issued later, and one revoked."""
    clock = Clock(dt.datetime(2021, 1, 10, tzinfo=UTC))
    pki = make_pki(folder, clock)
    pki.init()
    clock.at = dt.datetime(2021, 6, 1, tzinfo=UTC)
    pki.issue_unit("school-a", "历城区实验小学")
    pki.issue_unit("school-c", "历城区已撤并小学")
    pki.revoke_unit("school-c")
    clock.at = dt.datetime(2023, 1, 1, tzinfo=UTC)
    pki.issue_unit("school-b", "历城区第二实验小学")
    return pki


def test_status_says_what_expires_when(tmp_path: Path) -> None:
    pki = make_aged(tmp_path)
    at = dt.datetime(2024, 3, 15, tzinfo=UTC)
    items = {(i.kind, i.key): i for i in pki.status(at).items}
    assert [i.kind for i in pki.status(at).items] == ["root", "issuing", "tsa", "crl", "crl", "unit", "unit", "unit"]

    made = dt.datetime(2021, 1, 9, 23, 55, tzinfo=UTC)  # five minutes before the PKI was made
    root, issuing, tsa = items["root", None], items["issuing", None], items["tsa", None]
    assert root.expires == made + dt.timedelta(days=20 * 365) and not root.warn and root.renews_from is None
    assert issuing.expires == dt.datetime(2031, 1, 7, 23, 55, tzinfo=UTC) and not issuing.warn
    assert tsa.expires == issuing.expires and tsa.renews_from == made + dt.timedelta(days=3 * 365)

    school_a = items["unit", "school-a"]
    assert school_a.name == "历城区实验小学"
    assert school_a.expires == dt.datetime(2024, 5, 30, 23, 55, tzinfo=UTC)  # 3 × 365 days, across 29 Feb 2024
    assert school_a.days_left == 76 and school_a.warn
    assert school_a.renews_from == school_a.expires - dt.timedelta(days=120)
    school_b = items["unit", "school-b"]
    assert school_b.expires == dt.datetime(2025, 12, 30, 23, 55, tzinfo=UTC) and not school_b.warn
    school_c = items["unit", "school-c"]
    assert school_c.revoked and not school_c.warn and school_c.renews_from is None and school_c.note == "已吊销"

    issuing_crl = items["crl", "issuing"]  # last signed at the revocation, 1 June 2021
    assert issuing_crl.expires == dt.datetime(2021, 7, 1, tzinfo=UTC) and issuing_crl.warn
    assert items["crl", "root"].expires == dt.datetime(2022, 1, 10, tzinfo=UTC)
    assert {(i.kind, i.key) for i in pki.status(at).warnings} == {
        ("crl", "root"),
        ("crl", "issuing"),
        ("unit", "school-a"),
    }

    # 90 days is the dashboard's window: on 1 March school-a still has 90 days and 23:55
    assert not next(i for i in pki.status(dt.datetime(2024, 3, 1, tzinfo=UTC)).items if i.key == "school-a").warn


def test_maintain_clears_every_warning_and_a_second_run_does_nothing(tmp_path: Path) -> None:
    pki = make_aged(tmp_path)
    at = dt.datetime(2024, 3, 15, tzinfo=UTC)
    report = pki.maintain(at)
    assert {c.which for c in report.crls} == {"root", "issuing"}
    assert [r.key for r in report.renewed] == ["school-a"]  # school-b has 21 months, school-c is revoked
    assert report.tsa is not None and report.attention == []
    assert any("已为单位「历城区实验小学」（school-a）续期签章证书" in line for line in report.lines())
    assert pki.status(at).warnings == []
    with pytest.raises(CertificateRevoked):
        pki.unit("school-c")

    again = pki.maintain(at)
    assert not again.changed and again.lines() == ["无需处理：证书和吊销列表都未到续期时间。"]
    assert len(pki.unit_certificates("school-a")) == 2 and len(pki.tsa_certificates()) == 2


#: maintain() in another process, with its own Pki over the same certs/.
MAINTAIN_ELSEWHERE = """
import datetime as dt, json, sys, time
from service.pki.store import Pki
pki = Pki(sys.argv[1], sys.argv[2], "测试证书中心", "https://kcbx.example.edu.cn", kdf_rounds=10_000)
time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # both start together
report = pki.maintain(dt.datetime.fromisoformat(sys.argv[3]))
print(json.dumps({"renewed": [r.key for r in report.renewed], "tsa": report.tsa is not None,
                  "crls": [c.which for c in report.crls]}))
"""


def test_two_processes_maintaining_at_once_renew_each_thing_once(tmp_path: Path) -> None:
    pki = make_aged(tmp_path)
    clock = Clock(dt.datetime(2023, 1, 1, tzinfo=UTC))
    for i in range(6):
        make_pki(tmp_path, clock).issue_unit(f"office-{i}", f"历城区第{i + 1}街道教育办公室")
    at = dt.datetime(2025, 10, 1, tzinfo=UTC)  # school-a expired, school-b and the offices within 120 days
    start = str(time.time() + 5)
    running = [
        subprocess.Popen(
            [sys.executable, "-c", MAINTAIN_ELSEWHERE, str(pki.dir), PASSPHRASE, when.isoformat(), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for when in (at, at + dt.timedelta(minutes=1))  # two machines' clocks never agree exactly
    ]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in running]
    assert all(p.returncode == 0 for p in running)
    renewed = sorted(k for r in results for k in r["renewed"])
    assert renewed == sorted(["school-a", "school-b", *(f"office-{i}" for i in range(6))])
    assert sum(r["tsa"] for r in results) == 1
    assert sorted(w for r in results for w in r["crls"]) == ["issuing", "root"]
    assert not pki.maintain(at).changed
    for key in renewed:
        history = pki.unit_certificates(key)
        assert len(history) == 2 and history[-1] == pki.unit(key).certificate


def test_a_renewal_cut_short_is_finished_or_undone(tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(UTC) - 3 * YEAR + dt.timedelta(days=30))
    pki = make_pki(tmp_path, clock)
    pki.init()
    old = pki.issue_unit(SCHOOL_KEY, SCHOOL).certificate
    clock.today()
    unit_dir = tmp_path / "certs" / "units" / SCHOOL_KEY
    saved = tmp_path / "saved"
    shutil.copytree(unit_dir, saved)
    new = pki.renew_unit(SCHOOL_KEY)

    # a crash after the new key was moved into place, before the certificate and the record
    stage = unit_dir / ".next"
    stage.mkdir()
    for name in ("cert.crt", "unit.json"):
        os.replace(unit_dir / name, stage / name)
        shutil.copy(saved / name, unit_dir / name)
    (stage / ".ready").write_bytes(b"")
    shutil.rmtree(unit_dir / "history")
    creds = make_pki(tmp_path, clock).unit(SCHOOL_KEY)
    assert creds.certificate.serial_number == new.new_serial
    assert creds.certificate.public_key() == creds.private_key.public_key()
    assert [c.serial_number for c in pki.unit_certificates(SCHOOL_KEY)] == [old.serial_number, new.new_serial]
    assert not stage.exists()

    # a crash while the next key was being written: thrown away, the current one still signs
    stage.mkdir()
    shutil.copy(saved / "key.pem", stage / "key.pem")
    assert make_pki(tmp_path, clock).unit(SCHOOL_KEY).certificate.serial_number == new.new_serial
    assert not stage.exists()


def test_imported_certificates_are_not_renewed_but_reported(tmp_path: Path) -> None:
    from tests.pki.test_store import _p12

    clock = Clock(dt.datetime.now(UTC))
    pki = make_pki(tmp_path, clock)
    pki.init()
    pki.import_pkcs12("school-own", _p12(b"pw"), "pw")  # valid for 30 days
    with pytest.raises(CertificateNotRenewable):
        pki.renew_unit("school-own")
    report = pki.maintain()
    assert report.renewed == [] and len(report.attention) == 1 and "docsign pki import" in report.attention[0]
    item = next(i for i in pki.status().items if i.key == "school-own")
    assert item.warn and item.renews_from is None and "发证机构" in item.note


def docsign(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCSIGN_DATA_DIR": str(home / "var"),
        "DOCSIGN_CERTS_DIR": str(home / "certs"),
        "DOCSIGN_PKI_KDF_ROUNDS": str(TEST_KDF_ROUNDS),
        "DOCSIGN_PKI_PASSPHRASE": PASSPHRASE,
        "DOCSIGN_PUBLIC_BASE_URL": "https://kcbx.example.edu.cn",
        "COLUMNS": "160",
    }
    return subprocess.run([DOCSIGN, *args], cwd=home, env=env, capture_output=True, text=True, timeout=300)


def test_cli_status_and_refresh(tmp_path: Path) -> None:
    today = dt.datetime.now(UTC)
    clock = Clock(today - 3 * YEAR - dt.timedelta(days=30))
    pki = make_pki(tmp_path, clock)
    pki.init()
    clock.at = today - 3 * YEAR + dt.timedelta(days=30)
    pki.issue_unit(SCHOOL_KEY, SCHOOL)

    status = docsign(tmp_path, "pki", "status")
    assert status.returncode == 0, status.stderr
    for heading in ("类别", "名称", "到期/下次更新", "剩余天数", "自动续期/发布"):
        assert heading in status.stdout
    row = next(line for line in status.stdout.splitlines() if SCHOOL in line)
    expires = (clock.at - dt.timedelta(minutes=5) + 3 * YEAR).astimezone().strftime("%Y-%m-%d")
    assert expires in row and "需关注" in row
    assert "其中需关注 3 项" in status.stdout  # the school, both CRLs gone stale

    refresh = docsign(tmp_path, "pki", "refresh")
    assert refresh.returncode == 0, refresh.stderr
    assert f"已为单位「{SCHOOL}」（{SCHOOL_KEY}）续期签章证书" in refresh.stdout
    assert "已更换时间戳证书" in refresh.stdout and refresh.stdout.count("已重新发布") == 2
    assert json.loads((tmp_path / "certs" / "units" / SCHOOL_KEY / "unit.json").read_text())["serial"] != str(
        pki.unit_certificates(SCHOOL_KEY)[0].serial_number
    )

    again = docsign(tmp_path, "pki", "refresh")
    assert again.returncode == 0 and "无需处理" in again.stdout
    assert "其中需关注 0 项" in docsign(tmp_path, "pki", "status").stdout

    (tmp_path / "elsewhere").mkdir()
    missing = docsign(tmp_path / "elsewhere", "pki", "status")
    assert missing.returncode == 2 and "PKI_NOT_INITIALIZED" in missing.stderr


def test_revoking_a_renewed_unit_revokes_only_its_current_certificate(tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(UTC) - 3 * YEAR + dt.timedelta(days=30))
    pki = make_pki(tmp_path, clock)
    pki.init()
    old = pki.issue_unit(SCHOOL_KEY, SCHOOL).certificate
    clock.today()
    new = pki.renew_unit(SCHOOL_KEY)
    revoked = int(pki.revoke_unit(SCHOOL_KEY))
    assert revoked == new.new_serial
    crl = pki.crls()[1]
    assert crl.get_revoked_certificate_by_serial_number(new.new_serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(old.serial_number) is None
    assert pki.renew_expiring(3 * YEAR) == []  # a revoked unit is not brought back by the scheduled job
    with pytest.raises(CertificateRevoked):
        pki.unit(SCHOOL_KEY)
    assert pki.unit_certificates(SCHOOL_KEY)[0] == old


def test_the_issuing_ca_is_replaced_before_its_end_and_old_documents_stay_genuine(
    tmp_path: Path, settings: Settings, converter: Converter
) -> None:
    today = dt.datetime.now(UTC)
    clock = Clock(today - 7 * YEAR - dt.timedelta(days=200))  # the issuing CA has under three years left
    pki = make_pki(tmp_path, clock)
    pki.init()
    first_ca = pki.issuing_certificate()
    clock.at = today - YEAR
    pki.issue_unit(BUREAU_KEY, bureau_name(settings))
    pki.issue_unit(SCHOOL_KEY, SCHOOL)
    clock.today()
    engine = engine_for(pki, settings, converter, tmp_path)
    before = issue_pledge(engine, settings)
    ca_item = next(i for i in pki.status().items if i.kind == "issuing")
    assert ca_item.renews_from is not None and ca_item.renews_from < today

    report = pki.maintain()
    assert report.issuing is not None and (report.issuing.old_name, report.issuing.new_name) == ("issuing", "issuing-2")
    assert any("新的签发中心证书" in line for line in report.lines())
    second_ca = pki.issuing_certificate()
    assert second_ca.subject != first_ca.subject and second_ca.issuer == pki.root_certificate().subject
    assert second_ca.not_valid_after_utc > today + 9 * YEAR and second_ca.public_key().key_size == 3072
    assert pki.issuing_certificates() == [first_ca, second_ca]
    # everything that signs from now on chains to the new CA
    assert {r.key for r in report.renewed} == {BUREAU_KEY, SCHOOL_KEY} and report.tsa is not None
    assert pki.unit(BUREAU_KEY).certificate.issuer == second_ca.subject
    assert pki.tsa()[0].issuer == second_ca.subject
    # both CAs publish their CRLs; the old one until it expires
    old_crl, new_crl = pki.crl("issuing"), pki.crl("issuing-2")
    assert old_crl is not None and old_crl.issuer == first_ca.subject
    assert new_crl is not None and new_crl.issuer == second_ca.subject
    assert pki.crl("issuing-3") is None and pki.crl("../root") is None
    retired = [i for i in pki.status().items if i.kind == "issuing" and i.key == "issuing"]
    assert len(retired) == 1 and retired[0].note == "已停止签发，仍发布吊销列表"
    assert not pki.maintain().changed  # a second run finds nothing due
    # another process sharing certs/ issues under the new CA too
    assert make_pki(tmp_path, clock).issuing_certificate() == second_ca

    after = issue_pledge(engine, settings)
    countersigned, _ = engine.sign_as(before, unit_key=SCHOOL_KEY)  # old CA's bureau, new CA's school
    for pdf in (before, after, countersigned):
        verdict = engine.verify(pdf)
        assert verdict.genuine, verdict.to_dict()
    sig = pdfsig_trusts(countersigned, pki, tmp_path)
    assert sig.count("Signature is Valid.") == 2 and sig.count("Certificate is Trusted.") == 2, sig
    # a revocation lands on the CRL of the CA that issued the certificate
    serial = int(pki.revoke_unit(SCHOOL_KEY, "superseded"))
    new_crl, old_crl = pki.crl("issuing-2"), pki.crl("issuing")
    assert new_crl is not None and new_crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert old_crl is not None and old_crl.get_revoked_certificate_by_serial_number(serial) is None


def test_revocation_reasons_decide_what_happens_to_documents_signed_before(
    tmp_path: Path, settings: Settings, converter: Converter
) -> None:
    clock = Clock(dt.datetime.now(UTC) - dt.timedelta(days=30))
    pki = make_pki(tmp_path, clock)
    pki.init()
    pki.issue_unit(BUREAU_KEY, bureau_name(settings))
    school = pki.issue_unit(SCHOOL_KEY, SCHOOL).certificate
    clock.today()
    engine = engine_for(pki, settings, converter, tmp_path)
    pledge = issue_pledge(engine, settings)
    countersigned, _ = engine.sign_as(pledge, unit_key=SCHOOL_KEY)

    with pytest.raises(RevocationInvalid):
        pki.revoke_unit(BUREAU_KEY, "lost")
    with pytest.raises(RevocationInvalid):  # only a key compromise is dated back
        pki.revoke_unit(BUREAU_KEY, "superseded", since=clock.at - dt.timedelta(days=1))
    # the bureau's certificate revoked because its details changed: what it signed before stays genuine
    clock.today()  # after the signatures
    pki.revoke_unit(BUREAU_KEY, "affiliation_changed")
    entry = pki.crls()[1].get_revoked_certificate_by_serial_number(pki.unit_certificates(BUREAU_KEY)[-1].serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.affiliation_changed
    kept = engine.verify(pledge)
    assert kept.genuine, [(s.problems, s.evidence, s.judged_at) for s in kept.signatures]

    # the school's key leaked since before it countersigned: that signature fails, at every date
    pki.revoke_unit(SCHOOL_KEY, "key_compromise", since=school.not_valid_before_utc + dt.timedelta(days=1))
    report = engine.verify(countersigned)
    assert not report.genuine
    assert any("私钥泄露" in p.message for s in report.signatures for p in s.problems), report.to_dict()
    later = make_pki(tmp_path, Clock(clock.at + 5 * YEAR))
    assert str(school.serial_number) in {str(r.serial_number) for r in later.crls()[1]}
