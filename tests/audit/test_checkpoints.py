"""Audit checkpoints: a tail cut off both the log and its head in the database (what a careful
intruder with the database would do) is found against the checkpoint in the archive; a forged
checkpoint is named; the checkpoint's timestamp is the TSA's, over the checkpoint itself."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update

from service.audit.checkpoints import check, latest
from service.audit.models import AuditEvent, AuditHead
from service.audit.service import SYSTEM, audit_key, record, verify_chain
from service.container import Services


def _events(services: Services, n: int, start: int = 0) -> None:
    with services.db.session() as s:
        for i in range(start, start + n):
            record(s, SYSTEM, "test.event", "test", i, services.clock.now(), n=i)
        s.commit()


def test_a_tail_cut_with_its_head_is_found_against_the_checkpoint(services: Services) -> None:
    _events(services, 5)
    key = services.write_checkpoint()
    _events(services, 3, start=5)  # written after the checkpoint: fine
    with services.db.session() as s:
        report = check(s, services.checkpoints, services.pki)
        assert report.ok and report.checkpoint is not None, report.problems
        assert report.checkpoint.heads["audit"][0] == s.scalar(select(AuditHead.events)) - 3
        assert report.checkpoint.stamped_at <= services.clock.now()
        # cut the last four events and rewrite the head to match: the chain alone sees nothing
        ids = s.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(4)).all()
        s.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
        last = s.scalars(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).one()
        count = s.scalar(select(func.count()).select_from(AuditEvent))
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(events=count, last_hash=last))
        s.commit()
        assert verify_chain(s).ok
        report = check(s, services.checkpoints, services.pki)
        assert not report.ok
        assert any("审计日志末尾缺少记录" in p and "检查点记有" in p for p in report.problems), report.problems
    # a checkpoint changed after the fact (a smaller count) does not pass for one
    with services.db.session() as s:
        record_ = json.loads(services.checkpoints.get(key))
        record_["payload"]["heads"]["audit"]["entries"] = 1
        services.checkpoints.put(json.dumps(record_).encode())
        found, bad = latest(services.checkpoints, audit_key(s), services.pki)
        assert found is not None and found.heads["audit"][0] > 1
        assert any("密钥校验不符" in b for b in bad), bad
        assert not check(s, services.checkpoints, services.pki).ok


def test_a_checkpoint_timestamped_for_another_checkpoint_is_refused(services: Services) -> None:
    _events(services, 2)
    first = json.loads(services.checkpoints.get(services.write_checkpoint()))
    _events(services, 2, start=2)
    second = json.loads(services.checkpoints.get(services.write_checkpoint()))
    swapped = {**second, "timestamp": first["timestamp"]}  # a real token, over another checkpoint
    services.checkpoints.put(json.dumps(swapped).encode())
    with services.db.session() as s:
        _, bad = latest(services.checkpoints, audit_key(s), services.pki)
        assert any("时间戳不是为这份检查点签发的" in b for b in bad), bad


def test_a_checkpoint_whose_timestamp_signature_was_altered_is_refused(services: Services) -> None:
    import base64

    from asn1crypto import cms

    _events(services, 2)
    record_ = json.loads(services.checkpoints.get(services.write_checkpoint()))
    token = cms.ContentInfo.load(base64.b64decode(record_["timestamp"]))
    signer = token["content"]["signer_infos"][0]
    signature = bytearray(signer["signature"].native)
    signature[-1] ^= 0x01
    signer["signature"] = bytes(signature)
    services.checkpoints.put(
        json.dumps({**record_, "timestamp": base64.b64encode(token.dump(force=True)).decode()}).encode()
    )
    with services.db.session() as s:
        found, bad = latest(services.checkpoints, audit_key(s), services.pki)
        assert found is not None  # the genuine one still counts
        assert any("时间戳签名无效" in b for b in bad), bad
