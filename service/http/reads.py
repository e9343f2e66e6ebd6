"""Reads of children's data, noted for the access log: the one helper every route that shows a
child (a case, a notice, a roster, a ledger, an export) calls with what it read.

The read is noted in memory with who read it (account, role, unit), from where (client address,
user agent) and through which route; ``Services.access`` writes it in a batch after the answer
(never while a GET is answered). A list is one read with its filter and row count.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from service.archive.models import Document
from service.audit.access import Read
from service.cases.models import Case
from service.documents.registry import get_kind
from service.http.deps import ScopeDep, ServicesDep
from service.http.exports import Export
from service.ledgers.service import Ledger
from service.rosters.models import Roster


class Reads:
    """What the route being answered read, noted as access-log entries."""

    def __init__(self, request: Request, scope: ScopeDep, services: ServicesDep) -> None:
        self.request = request
        self.scope = scope
        self.services = services

    @property
    def via(self) -> str:
        """The route's template (``GET /cases/{case_id}``), not its address: ids are in the entry."""
        route = self.request.scope.get("route")
        path = getattr(route, "path", None) or self.request.url.path
        return f"{self.request.method} {path}"

    def record(
        self,
        subject: str,
        subject_id: object = "",
        *,
        rows: int | None = None,
        exported: Export | None = None,
        **filter: Any,
    ) -> None:
        """Note one read of ``subject`` (a record by its id, or a list by its filter); an export
        (``exported``) with its purpose and whether it held full numbers."""
        user, actor = self.scope.user, self.scope.actor
        self.services.access.note(
            Read(
                at=self.services.clock.now(),
                user_id=actor.user_id,
                username=user.username if user is not None else actor.label,
                role=self.scope.role,
                unit_id=actor.unit_id,
                client=actor.client,
                user_agent=self.request.headers.get("user-agent"),
                via=self.via,
                subject=subject,
                subject_id=str(subject_id),
                filter={k: v for k, v in filter.items() if v is not None},
                rows=rows,
                purpose=exported.purpose if exported is not None else None,
                full=exported.full if exported is not None else None,
            )
        )

    def case(self, case: Case, **filter: Any) -> None:
        self.record("case", case.id, school_id=case.school_id, **filter)

    def document(self, doc: Document, **filter: Any) -> None:
        """A document read: recorded when it shows a child (a notice, a 一生一表, the 信息报告)."""
        if get_kind(doc.kind).names_children:
            self.record("document", doc.id, kind=doc.kind, case_id=doc.case_id, **filter)

    def roster(self, roster: Roster, exported: Export | None = None, **filter: Any) -> None:
        """A roster (its page, its JSON, its 回执台账): one read of its rows, not one per child."""
        self.record("roster", roster.id, rows=roster.rows, exported=exported, **filter)

    def ledger(self, ledger: Ledger, exported: Export | None = None, **filter: Any) -> None:
        """A 台账 of a unit (a page, the JSON or an export): one read with its rows and filter."""
        rows = len(ledger.children) if ledger.key == "children" else len(ledger.rows) + len(ledger.closed)
        self.record("ledger", ledger.key, rows=rows, unit=ledger.unit.id, exported=exported, **filter)


ReadsDep = Annotated[Reads, Depends(Reads)]
