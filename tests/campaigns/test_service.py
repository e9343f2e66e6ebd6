"""Campaign use cases without HTTP: create, issue as a named job, sign with a claim, forward, receive."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from service.archive.models import Document, DocumentVersion
from service.audit.models import AuditEvent
from service.campaigns.models import Assignment, AssignmentState, Campaign
from service.campaigns.service import CampaignSpec
from service.clock import wall_now
from service.container import Services
from service.documents.errors import AlreadySigned, ImageInvalid, SignatureTooSmall
from tests.district import load_district, scope_of
from tests.documents.test_seal import pad_png
from tests.documents.test_sign import handwriting


def _issued_campaign(services: Services) -> int:
    """The demo district's 2024 campaign, issued through its job like the server does."""
    load_district(services)
    with services.db.session() as s:
        bureau = scope_of(s, "bureau")
        deadline = (services.clock.now() + dt.timedelta(days=3)).replace(tzinfo=None)
        campaign = services.campaigns.create(
            s, bureau, CampaignSpec(name="2024年控辍保学责任书", year=2024, deadline=deadline, issue_date=None)
        )
        job, new = services.campaigns.start_issue(s, bureau, campaign, services.jobs)
        again, new_again = services.campaigns.start_issue(s, bureau, campaign, services.jobs)
        assert new and not new_again and again.id == job.id  # one active job per campaign
        s.commit()
        ended = services.jobs.run_here(job.id)
        assert (ended.status, ended.done, ended.total) == ("done", 12, 12), ended.error_message
        return campaign.id


def test_issue_records_every_document_with_its_version_and_audit(services: Services) -> None:
    cid = _issued_campaign(services)
    with services.db.session() as s:
        docs = s.scalars(select(Document).join(Assignment).where(Assignment.campaign_id == cid)).all()
        assert len(docs) == 12
        for doc in docs:
            assert services.archive.documents.exists(doc.current_sha256)
            versions = s.scalars(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)).all()
            assert [(v.number, v.event, v.sha256) for v in versions] == [(1, "issued", doc.current_sha256)]
        issued = s.scalars(select(AuditEvent.object_id).where(AuditEvent.action == "document.issue")).all()
        assert sorted(issued) == sorted(str(d.id) for d in docs)
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "campaign.issue")) == 1


def test_sign_claims_signs_records_and_refuses_a_second_time(services: Services) -> None:
    cid = _issued_campaign(services)
    with services.db.session() as s:
        principal = scope_of(s, "wsr-sh-head")
        mine = s.scalar(
            select(Assignment).where(Assignment.campaign_id == cid, Assignment.unit_id == principal.unit.id)
        )
        assert mine is not None
        doc = services.campaigns.sign(s, principal, mine, handwriting())
        s.commit()
        assert mine.state == AssignmentState.SIGNED and mine.claimed_until is None and mine.late is False
        versions = s.scalars(
            select(DocumentVersion.event).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.number)
        ).all()
        assert versions == ["issued", "signed"]
        assert services.engine.verify(services.archive.documents.get(doc.current_sha256)).genuine
        with pytest.raises(AlreadySigned):
            services.campaigns.sign(s, principal, mine, handwriting())
        signs = s.scalars(select(AuditEvent).where(AuditEvent.action == "document.sign")).all()
        assert [e.object_id for e in signs] == [str(doc.id)]


def test_a_failed_signature_releases_its_claim_and_recovery_frees_a_dead_one(services: Services) -> None:
    cid = _issued_campaign(services)
    with services.db.session() as s:
        principal = scope_of(s, "wsr-xd-head")
        mine = s.scalar(
            select(Assignment).where(Assignment.campaign_id == cid, Assignment.unit_id == principal.unit.id)
        )
        assert mine is not None
        with pytest.raises(ImageInvalid):
            services.campaigns.sign(s, principal, mine, b"\x89PNG\r\n\x1a\n not really a picture")
        s.refresh(mine)
        assert mine.state == AssignmentState.ISSUED and mine.claimed_until is None
        # a process that claimed a signature and died: its claim expires and recovery frees it
        s.execute(
            update(Assignment)
            .where(Assignment.id == mine.id)
            .values(state=AssignmentState.SIGNING, claimed_until=wall_now() - dt.timedelta(seconds=1))
        )
        s.commit()
        assert services.campaigns.release_expired_claims(s) == 1
        s.commit()
        s.refresh(mine)
        assert mine.state == AssignmentState.ISSUED
        services.campaigns.sign(s, principal, mine, handwriting())
        s.commit()
        assert mine.state == AssignmentState.SIGNED


def test_forward_and_receive(services: Services) -> None:
    cid = _issued_campaign(services)
    with services.db.session() as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        for username in ("wsr-sh-head", "wsr-xd-head", "syxx-head"):
            scope = scope_of(s, username)
            mine = select(Assignment).where(Assignment.campaign_id == cid, Assignment.unit_id == scope.unit.id)
            for a in s.scalars(mine).all():
                services.campaigns.sign(s, scope, a, handwriting())
                s.commit()
        batch = services.campaigns.forward(s, scope_of(s, "wsr-staff"), campaign)
        s.commit()
        assert batch.count == 2
        assert services.campaigns.receive(s, scope_of(s, "bureau"), campaign) == 4  # 2 forwarded, 2 of 实验小学
        s.commit()
        states = s.scalars(select(Assignment.state).where(Assignment.campaign_id == cid)).all()
        assert sorted(states).count(AssignmentState.RECEIVED) == 4


def test_a_single_tap_is_refused_before_anything_is_claimed(services: Services) -> None:
    cid = _issued_campaign(services)
    with services.db.session() as s:
        principal = scope_of(s, "wsr-xd-head")
        mine = s.scalar(
            select(Assignment).where(Assignment.campaign_id == cid, Assignment.unit_id == principal.unit.id)
        )
        assert mine is not None
        with pytest.raises(SignatureTooSmall, match="签名太短"):
            services.campaigns.sign(s, principal, mine, pad_png("tap"))
        s.refresh(mine)
        assert mine.state == AssignmentState.ISSUED and mine.claimed_until is None
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "document.sign")) == 0
