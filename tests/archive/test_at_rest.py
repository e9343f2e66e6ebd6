"""A notice issued through the one issue-and-record path leaves no plaintext on disk: the archive
folder holds neither the PDF nor the child's name or ID number (raw, in any zlib stream, or as
text a PDF reader would extract), and every folder and file it wrote is the service user's only."""

from __future__ import annotations

import contextlib
import stat
import subprocess
import zlib
from pathlib import Path

from service.archive.service import RecordAs
from service.audit.service import Actor
from service.container import Services
from service.documents.pipeline import IssueRequest
from service.documents.registry import KINDS, example_fields
from tests.district import load_district, unit


def _readable_text(data: bytes, tmp: Path) -> bytes:
    """Everything a reader of the bytes could see: the bytes, every zlib stream in them inflated,
    and the text pdftotext extracts if they open as a PDF."""
    seen = [data]
    start = data.find(b"x")
    while start != -1:
        with contextlib.suppress(zlib.error):
            seen.append(zlib.decompressobj().decompress(data[start:], 1 << 22))
        start = data.find(b"x", start + 1)
    probe = tmp / "probe.pdf"
    probe.write_bytes(data)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(probe), "-"], capture_output=True, timeout=60)
    seen.append(text.stdout)
    return b"\n".join(seen)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_issued_notice_leaves_no_plaintext_in_the_archive_folder(services: Services, tmp_path: Path) -> None:
    load_district(services)
    fields = example_fields(KINDS["enrollment_notice"], services.settings.schemas_dir)
    name, id_number = fields["student_name"], fields["student_id_number"]
    with services.db.session() as s:
        _, issued = services.archive.issue(
            s,
            IssueRequest("enrollment_notice", fields, issuer_key="unit-lcjt"),
            RecordAs(issuer=unit(s, "LCJT")),
            Actor(None, "测试"),
        )
        s.commit()
    # the check finds the child in the plaintext PDF (so it would find them in a leaked file)
    control = _readable_text(issued.pdf, tmp_path)
    assert name.encode() in control and b"%PDF" in control

    archive_dir = services.settings.archive_dir
    files = [p for p in archive_dir.rglob("*") if p.is_file()]
    assert files, "nothing archived: the test proves nothing"
    for path in files:
        seen = _readable_text(path.read_bytes(), tmp_path)
        assert b"%PDF" not in seen and name.encode() not in seen and id_number.encode() not in seen, path
        assert _mode(path) == 0o400
    for folder in [archive_dir, *(p for p in archive_dir.rglob("*") if p.is_dir())]:
        assert _mode(folder) == 0o700, folder
    # read back through the store, the same bytes as issued (digests and codes unchanged)
    assert services.archive.documents.get(issued.sha256) == issued.pdf

    data_dir = services.settings.data_dir
    assert _mode(data_dir) == 0o700
    keys = services.settings.keys_folder
    assert _mode(keys) == 0o700 and all(_mode(p) == 0o600 for p in keys.iterdir() if p.name != ".lock")
    if services.db.engine.dialect.name == "sqlite":
        database = Path(str(services.db.engine.url.database))
        side = [p for p in data_dir.glob("*.sqlite3*")]
        assert database in side and len(side) >= 2  # with its -wal, and the request journal
        assert all(_mode(p) == 0o600 for p in side), {p.name: oct(_mode(p)) for p in side}
