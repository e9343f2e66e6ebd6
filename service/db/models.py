"""Every table, imported in one place so that ``Base.metadata`` is complete (Alembic, tests)."""

from service.accounts.models import ApiToken, Delegation, LoginFailure, LoginSession, User
from service.archive.models import Document, DocumentVersion
from service.audit.models import AuditEvent, AuditHead
from service.campaigns.models import Assignment, Campaign, ForwardBatch
from service.cases.models import Attempt, Case, CaseFile, Guardian, PrintBundle, Roster, RosterEntry
from service.db.base import Base
from service.jobs.models import Job
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
    "CaseFile",
    "Delegation",
    "Document",
    "DocumentVersion",
    "ForwardBatch",
    "Guardian",
    "Job",
    "LoginFailure",
    "LoginSession",
    "PrintBundle",
    "Roster",
    "RosterEntry",
    "Unit",
    "User",
]
