"""Independent validators over every CMS structure of a signed PDF: Bouncy Castle (the CMS library
under EU DSS and iText, through a small Java program compiled at test time), OpenSSL (``cms
-verify`` and ``ts -verify`` with the chain) and a DER check (each structure re-encoded by
asn1crypto must give the same bytes). A validator that is not installed fails the test: CI installs
them all (scripts/setup), and a skipped check would only hide a document the auditor rejects."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader

HERE = Path(__file__).parent
#: Debian's Bouncy Castle (libbcprov-java, libbcpkix-java; bcutil comes with them).
BC_JARS = [Path("/usr/share/java") / f"{name}.jar" for name in ("bcprov", "bcpkix", "bcutil")]
_compiled: dict[str, Path] = {}
_compile_lock = threading.Lock()


@dataclass(frozen=True)
class Signed:
    """One signature of a PDF: its field, ``/Sig`` or ``/DocTimeStamp``, the CMS, the bytes signed."""

    field: str
    kind: str
    cms: bytes
    data: bytes


def der_length(raw: bytes) -> int:
    """The length of the DER value at the start of ``raw`` (a /Contents string is zero-padded)."""
    first = raw[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(raw[2 : 2 + count], "big")


def signatures(pdf: bytes) -> list[Signed]:
    out = []
    for sig in PdfFileReader(io.BytesIO(pdf)).embedded_signatures:
        start1, len1, start2, len2 = sig.byte_range
        raw = sig.pkcs7_content
        out.append(
            Signed(
                sig.field_name,
                sig.sig_object_type,
                raw[: der_length(raw)],
                pdf[start1 : start1 + len1] + pdf[start2 : start2 + len2],
            )
        )
    return out


def tokens(signed: Signed) -> list[tuple[bytes, bytes]]:
    """The RFC 3161 tokens of a signature, each with the signature value it covers."""
    if signed.kind == "/DocTimeStamp":
        return []
    found = []
    for info in cms.ContentInfo.load(signed.cms)["content"]["signer_infos"]:
        for attr in info["unsigned_attrs"] or []:
            if attr["type"].native == "signature_time_stamp_token":
                for token in attr["values"]:
                    found.append((token.dump(), info["signature"].native))
    return found


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: scripts/setup installs it"
    return path


def _bc_classes(work: Path) -> Path:
    """BcCheck compiled once per test process."""
    with _compile_lock:
        if "bc" not in _compiled:
            for jar in BC_JARS:
                assert jar.exists(), f"{jar} is missing: scripts/setup installs libbcprov-java and libbcpkix-java"
            out = work / "bc-classes"
            out.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [_tool("javac"), "-nowarn", "-cp", _classpath(), "-d", str(out), str(HERE / "BcCheck.java")],
                check=True,
                capture_output=True,
                timeout=300,
            )
            _compiled["bc"] = out
        return _compiled["bc"]


def _classpath(*extra: Path) -> str:
    return ":".join(str(p) for p in [*BC_JARS, *extra])


def _write(pdf: bytes, folder: Path) -> list[Signed]:
    folder.mkdir(parents=True, exist_ok=True)
    found = signatures(pdf)
    for n, signed in enumerate(found):
        (folder / f"{n:02d}.p7s").write_bytes(signed.cms)
        (folder / f"{n:02d}.data").write_bytes(signed.data)
    return found


def bouncy_castle(pdf: bytes, work: Path) -> list[str]:
    """Bouncy Castle's verdict, one line per CMS signer and per token; fails on any failure."""
    classes = _bc_classes(work.parent)
    folder = work / "bc"
    found = _write(pdf, folder)
    result = subprocess.run(
        [_tool("java"), "-cp", _classpath(classes), "BcCheck", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sum(1 if s.kind == "/DocTimeStamp" else 1 + len(tokens(s)) for s in found)
    assert len(lines) == expected and all(line.startswith("OK ") for line in lines), lines
    return lines


def _pem(certs: Iterable[x509.Certificate], path: Path) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def openssl(pdf: bytes, work: Path, roots: list[x509.Certificate], intermediates: list[x509.Certificate]) -> int:
    """OpenSSL checks each signature over its byte ranges (``cms -verify``, the chain up to
    ``roots``) and each token (``ts -verify``, against the digest of the signature value it
    covers, or of the byte ranges for a document timestamp); returns how many checks passed."""
    folder = work / "openssl"
    found = _write(pdf, folder)
    ca = _pem(roots, folder / "roots.pem")
    untrusted = _pem(intermediates, folder / "intermediates.pem")
    checked = 0
    for n, signed in enumerate(found):
        p7s, data = folder / f"{n:02d}.p7s", folder / f"{n:02d}.data"
        if signed.kind == "/DocTimeStamp":
            _openssl_ts(p7s, ["-data", str(data)], ca, untrusted)
        else:
            result = subprocess.run(
                [
                    _tool("openssl"),
                    "cms",
                    "-verify",
                    "-binary",
                    "-inform",
                    "DER",
                    "-in",
                    str(p7s),
                    "-content",
                    str(data),
                    "-CAfile",
                    str(ca),
                    "-certfile",
                    str(untrusted),
                    "-purpose",
                    "any",
                    "-out",
                    "/dev/null",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0 and "Verification successful" in result.stderr, (signed.field, result.stderr)
            for t, (token, signature) in enumerate(tokens(signed)):
                path = folder / f"{n:02d}-token{t}.der"
                path.write_bytes(token)
                _openssl_ts(path, ["-digest", hashlib.sha256(signature).hexdigest()], ca, untrusted)
                checked += 1
        checked += 1
    return checked


def _openssl_ts(token: Path, what: list[str], ca: Path, untrusted: Path) -> None:
    result = subprocess.run(
        [
            _tool("openssl"),
            "ts",
            "-verify",
            "-token_in",
            "-in",
            str(token),
            *what,
            "-CAfile",
            str(ca),
            "-untrusted",
            str(untrusted),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Verification: OK" in result.stdout, (token.name, result.stdout, result.stderr)


def _tlv(raw: bytes, at: int) -> tuple[int, int, int, int]:
    """The TLV at ``at``: its first tag byte, where its contents start and end, and where the
    tag ends; fails on what DER forbids in a header (indefinite or non-minimal lengths)."""
    tag = raw[at]
    pos = at + 1
    if tag & 0x1F == 0x1F:  # a high tag number: base 128, no leading 0x80
        assert raw[pos] != 0x80, f"non-minimal tag at {at}"
        while raw[pos] & 0x80:
            pos += 1
        pos += 1
    first = raw[pos]
    assert first != 0x80, f"indefinite length at {at}"
    if first < 0x80:
        return tag, pos + 1, pos + 1 + first, pos
    count = first & 0x7F
    length = int.from_bytes(raw[pos + 1 : pos + 1 + count], "big")
    assert raw[pos + 1] != 0 and length >= 0x80, f"non-minimal length at {at}"
    return tag, pos + 1 + count, pos + 1 + count + length, pos


def _der_walk(raw: bytes, start: int, end: int) -> list[bytes]:
    """Check every TLV from ``start`` to ``end`` as DER wants its encoding, recursing into the
    constructed ones; returns the encodings found at this level. A universal SET's elements must
    be sorted; an INTEGER minimal; a BOOLEAN 00 or FF."""
    found = []
    at = start
    while at < end:
        tag, body, stop, _ = _tlv(raw, at)
        assert stop <= end, f"TLV at {at} runs past its parent"
        if tag & 0x20:  # constructed
            children = _der_walk(raw, body, stop)
            if tag == 0x31:
                assert children == sorted(children), f"SET at {at} is not sorted"
        elif tag == 0x02:
            value = raw[body:stop]
            assert value, f"empty INTEGER at {at}"
            if len(value) > 1:
                assert not (value[0] == 0 and value[1] < 0x80), f"non-minimal INTEGER at {at}"
                assert not (value[0] == 0xFF and value[1] >= 0x80), f"non-minimal INTEGER at {at}"
        elif tag == 0x01:
            assert raw[body:stop] in (b"\x00", b"\xff"), f"BOOLEAN at {at} is neither 00 nor FF"
        found.append(raw[at:stop])
        at = stop
    return found


def _sorted_set(value: core.Asn1Value, where: str) -> None:
    """An implicitly tagged SET OF (signed and unsigned attributes, certificates): its elements
    sorted by their encodings, as DER orders them."""
    if isinstance(value, core.Void):
        return
    encoded = [child.dump() for child in value]
    assert encoded == sorted(encoded), f"{where}: the SET OF is not sorted as DER wants"


def _reencodes(value: core.Asn1Value, where: str) -> None:
    """asn1crypto re-encodes ``value`` (a shallow part: its forced re-encoding is exponential in
    the depth, minutes for a whole CMS with a token inside) to the same bytes: defaults left out,
    times and strings in their DER forms."""
    if isinstance(value, core.Void):
        return
    raw = value.dump()
    assert value.dump(force=True) == raw, f"{where}: not DER"


def _der_signed_data(content_info: cms.ContentInfo, where: str) -> int:
    """The parts of a CMS SignedData re-encoded one by one, and the tokens inside it likewise."""
    signed_data = content_info["content"]
    checked = 0
    for name in ("digest_algorithms", "certificates"):
        _reencodes(signed_data[name], f"{where} {name}")
    _sorted_set(signed_data["certificates"], f"{where} certificates")
    encap = signed_data["encap_content_info"]
    _reencodes(encap["content_type"], f"{where} content type")
    if encap["content_type"].native == "tst_info":
        _reencodes(encap["content"].parsed, f"{where} TSTInfo")
    for n, info in enumerate(signed_data["signer_infos"]):
        at = f"{where} signer {n}"
        for name in ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature"):
            _reencodes(info[name], f"{at} {name}")
        _sorted_set(info["signed_attrs"], f"{at} signed attributes")
        _sorted_set(info["unsigned_attrs"], f"{at} unsigned attributes")
        for attr in info["unsigned_attrs"] or []:
            if attr["type"].native == "signature_time_stamp_token":
                for token in attr["values"]:
                    checked += _der_signed_data(token, f"{at} token")
            else:
                _reencodes(attr, f"{at} {attr['type'].native}")
    return checked + 1


def der_everywhere(pdf: bytes) -> int:
    """Every CMS of the PDF and every token inside one is DER: each structure's encoding walked
    (definite minimal lengths, sorted SETs, minimal INTEGERs), each implicitly tagged SET OF
    sorted, and each part re-encoded by asn1crypto (sorting each SET OF, leaving defaults out)
    to the same bytes. Returns how many structures it checked."""
    checked = 0
    for signed in signatures(pdf):
        raw = signed.cms
        assert sum(len(e) for e in _der_walk(raw, 0, len(raw))) == len(raw), f"{signed.field}: trailing bytes"
        checked += _der_signed_data(cms.ContentInfo.load(raw, strict=True), signed.field)
    return checked


def all_validators(
    pdf: bytes, work: Path, roots: list[x509.Certificate], intermediates: list[x509.Certificate]
) -> dict[str, int]:
    """Bouncy Castle, OpenSSL and the DER check over every signature and token of ``pdf``."""
    return {
        "bouncy_castle": len(bouncy_castle(pdf, work)),
        "openssl": openssl(pdf, work, roots, intermediates),
        "der": der_everywhere(pdf),
    }
