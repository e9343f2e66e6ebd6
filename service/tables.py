"""Every table, imported in one place so that ``Base.metadata`` is complete (Alembic, the container).

Every mapped class must be registered before any session flushes: a flush sorts tables by their
foreign keys, and some name a table of a domain above them (``documents.case_id`` names ``cases``).
The composition root imports this module; ``service/db`` knows no domain.
"""

from service.accounts.models import Activation, ApiToken, Delegation, LoginFailure, LoginSession, User
from service.archive.models import Document, DocumentVersion
from service.audit.models import AccessEntry, AccessHead, AuditEvent, AuditHead
from service.campaigns.models import Assignment, Campaign, ForwardBatch, TermStart
from service.cases.models import (
    Attempt,
    Case,
    CaseClosure,
    CaseFile,
    Guardian,
    HomeVisit,
)
from service.db.base import Base
from service.jobs.models import Job, JobSlice
from service.ledgers.models import (
    BureauBasis,
    ChildEntry,
    ColumnMapping,
    CompareRun,
    DeadlineRule,
    Finding,
    ReportVersion,
    RuleDone,
    SchoolRoll,
    SourceChild,
    SourceList,
)
from service.notify.models import Delivery, NotifyCursor, UnitContact, WebhookDelivery, WebhookSubscription
from service.retention.models import RetentionRecord
from service.rosters.models import PrintBundle, Roster, RosterEntry
from service.units.models import Unit

__all__ = [
    "AccessEntry",
    "AccessHead",
    "Activation",
    "ApiToken",
    "Assignment",
    "Attempt",
    "AuditEvent",
    "AuditHead",
    "Base",
    "BureauBasis",
    "Campaign",
    "Case",
    "CaseClosure",
    "CaseFile",
    "ChildEntry",
    "ColumnMapping",
    "CompareRun",
    "DeadlineRule",
    "Delegation",
    "Delivery",
    "Document",
    "DocumentVersion",
    "Finding",
    "ForwardBatch",
    "Guardian",
    "HomeVisit",
    "Job",
    "JobSlice",
    "LoginFailure",
    "LoginSession",
    "NotifyCursor",
    "PrintBundle",
    "ReportVersion",
    "RetentionRecord",
    "Roster",
    "RosterEntry",
    "RuleDone",
    "SchoolRoll",
    "SourceChild",
    "SourceList",
    "TermStart",
    "Unit",
    "UnitContact",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
