"""Audit checkpoints: the logs' heads written down outside the database, so a cut tail is found.

The head row in the database notices entries cut off the end of a log, unless whoever cut them
also rewrote the head. A checkpoint is that head (entries and last hash of the audit log and of the
access log) kept where a database writer cannot reach: written once a day and at shutdown to the
archive's ``checkpoints`` store (write-once, content-addressed), keyed with the service's secret
(HMAC-SHA256, as the chains are) and timestamped by the service's TSA (RFC 3161, over the SHA-256
of the checkpoint). ``docsign audit verify`` reads the latest one and names a tail that is missing
since, or a log that no longer leads to the hash it recorded.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit.models import AccessEntry, AccessHead, AuditEvent, AuditHead
from service.audit.service import audit_key
from service.pki.store import Pki
from service.storage.base import ArchiveStore

FORMAT = "docsign-audit-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    at: dt.datetime
    #: log name -> (entries, last hash)
    heads: dict[str, tuple[int, str]]
    #: When the TSA says it saw the checkpoint.
    stamped_at: dt.datetime


@dataclass(frozen=True)
class CheckpointReport:
    ok: bool
    checkpoint: Checkpoint | None
    #: Which log fails it, and why (Chinese).
    problems: list[str]


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def heads(session: Session) -> dict[str, tuple[int, str]]:
    audit = session.get(AuditHead, 1)
    access = session.get(AccessHead, 1)
    return {
        "audit": (audit.events, audit.last_hash) if audit else (0, ""),
        "access": (access.entries, access.last_hash) if access else (0, ""),
    }


def write_checkpoint(
    session: Session, store: ArchiveStore, timestamp_token: Callable[[bytes], bytes], now: dt.datetime
) -> str:
    """Write the logs' heads now as a checkpoint; returns its archive key (its SHA-256)."""
    payload = {
        "format": FORMAT,
        "at": now.astimezone(dt.UTC).isoformat(),
        "heads": {name: {"entries": n, "last_hash": h} for name, (n, h) in heads(session).items()},
    }
    body = _canonical(payload)
    record = {
        "payload": payload,
        "mac": hmac.new(audit_key(session), body, hashlib.sha256).hexdigest(),
        "timestamp": base64.b64encode(timestamp_token(body)).decode(),
    }
    return store.put(_canonical(record))


def _read(data: bytes, key: bytes, pki: Pki) -> Checkpoint:
    """A checkpoint whose key and timestamp hold; raises ValueError with what is wrong."""
    record = json.loads(data)
    payload = record["payload"]
    if payload.get("format") != FORMAT:
        raise ValueError("不是审计检查点")
    body = _canonical(payload)
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), str(record.get("mac", ""))):
        raise ValueError("检查点的密钥校验不符（被改动，或不是用本服务的密钥写的）")
    stamped_at = _check_token(base64.b64decode(record["timestamp"]), hashlib.sha256(body).digest(), pki)
    parsed = {name: (int(h["entries"]), str(h["last_hash"])) for name, h in payload["heads"].items()}
    return Checkpoint(dt.datetime.fromisoformat(payload["at"]), parsed, stamped_at)


def _check_token(token: bytes, digest: bytes, pki: Pki) -> dt.datetime:
    """The RFC 3161 token covers ``digest`` and is signed by a TSA certificate of this PKI."""
    signed = cms.ContentInfo.load(token)["content"]
    info = signed["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo) or info["message_imprint"]["hashed_message"].native != digest:
        raise ValueError("检查点的时间戳不是为这份检查点签发的")
    signer = signed["signer_infos"][0]
    attrs = signer["signed_attrs"]
    wanted = hashlib.sha256(signed["encap_content_info"]["content"].contents).digest()
    if not any(a["type"].native == "message_digest" and a["values"][0].native == wanted for a in attrs):
        raise ValueError("检查点的时间戳内容与签名不符")
    sid = signer["sid"]
    certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"] or []]
    certs += [pki.tsa()[0]]
    serial = sid.chosen["serial_number"].native if sid.name == "issuer_and_serial_number" else None
    tsa = next((c for c in certs if c.serial_number == serial), None)
    if tsa is None:
        raise ValueError("检查点的时间戳签发者不明")
    data = b"\x31" + attrs.dump()[1:]  # signed over as a SET OF
    key = tsa.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signer["signature"].native, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signer["signature"].native, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise ValueError("检查点的时间戳使用了不支持的密钥")
        chain = pki.chain_for(tsa)
        for child, parent in zip([tsa, *chain], chain, strict=False):
            child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise ValueError("检查点的时间戳签名无效，或不是本服务的时间戳证书签发的") from exc
    return info["gen_time"].native  # type: ignore[no-any-return]


def latest(store: ArchiveStore, key: bytes, pki: Pki) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint that holds, and a word on each one that does not."""
    best: Checkpoint | None = None
    bad: list[str] = []
    for sha in store.keys():  # noqa: SIM118 - a store, not a dict
        try:
            found = _read(store.get(sha), key, pki)
        except Exception as exc:
            bad.append(f"检查点 {sha[:12]}：{exc}" if isinstance(exc, ValueError) else f"检查点 {sha[:12]} 无法读取")
            continue
        if best is None or found.at > best.at:
            best = found
    return best, bad


def check(session: Session, store: ArchiveStore, pki: Pki) -> CheckpointReport:
    """Both logs still hold everything the latest checkpoint recorded: at least as many entries,
    and the entry at its count has the hash it recorded."""
    found, bad = latest(store, audit_key(session), pki)
    if found is None:
        return CheckpointReport(not bad, None, bad)
    problems = list(bad)
    for name, model, count_of in (("audit", AuditEvent, "审计日志"), ("access", AccessEntry, "访问日志")):
        entries, last_hash = found.heads.get(name, (0, ""))
        if entries == 0:
            continue
        row = session.scalars(select(model.hash).order_by(model.id).offset(entries - 1).limit(1)).first()
        when = found.at.astimezone(dt.timezone(dt.timedelta(hours=8)))
        if row is None:
            have = session.scalar(select(model.id).order_by(model.id.desc()).limit(1)) is not None
            problems.append(
                f"{count_of}末尾缺少记录：{when:%Y-%m-%d %H:%M} 的检查点记有 {entries} 条，现在不足 {entries} 条"
                + ("" if have else "（日志为空）")
            )
        elif row != last_hash:
            problems.append(f"{count_of}与 {when:%Y-%m-%d %H:%M} 的检查点不符：第 {entries} 条记录的哈希已不同")
    return CheckpointReport(not problems, found, problems)
