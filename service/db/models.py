"""Every table, imported in one place so that ``Base.metadata`` is complete (Alembic, tests)."""

from service.accounts.models import ApiToken, Delegation, LoginFailure, LoginSession, User
from service.archive.models import Document, DocumentVersion
from service.audit.models import AuditEvent, AuditHead
from service.campaigns.models import Assignment, Campaign, ForwardBatch, TermStart
from service.cases.models import (
    Attempt,
    Case,
    CaseClosure,
    CaseFile,
    Guardian,
    HomeVisit,
    PrintBundle,
    Roster,
    RosterEntry,
)
from service.db.base import Base
from service.jobs.models import Job, JobSlice
from service.ledgers.models import (
    ChildEntry,
    ColumnMapping,
    DeadlineRule,
    ReportVersion,
    RuleDone,
    SchoolRoll,
)
from service.units.models import Unit

__all__ = [
    "ApiToken",
    "Assignment",
    "Attempt",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Campaign",
    "Case",
    "CaseClosure",
    "CaseFile",
    "ChildEntry",
    "ColumnMapping",
    "DeadlineRule",
    "Delegation",
    "Document",
    "DocumentVersion",
    "ForwardBatch",
    "Guardian",
    "HomeVisit",
    "Job",
    "JobSlice",
    "LoginFailure",
    "LoginSession",
    "PrintBundle",
    "ReportVersion",
    "Roster",
    "RosterEntry",
    "RuleDone",
    "SchoolRoll",
    "TermStart",
    "Unit",
    "User",
]
