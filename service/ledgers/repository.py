"""The reads of 四查三比对 the faces need: the bureau's lists and runs, the findings a user may see
(a school its own, an office its own and its schools', the bureau all of its district's), and the
summary by reason and 乡镇. Every read of findings is built on ``visible_to(scope)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.accounts.scope import Scope
from service.ledgers.compare import RULES
from service.ledgers.models import CompareRun, Finding, SourceList

PAGE_SIZE = 50
NO_TOWNSHIP = "未注明乡镇"


def visible_to(scope: Scope) -> Select[tuple[Finding]]:
    """The findings routed to the user's units."""
    return select(Finding).where(Finding.unit_id.in_(scope.units))


@dataclass(frozen=True)
class FindingFilter:
    rule: str | None = None
    #: open or answered
    status: str | None = None
    unit_id: int | None = None
    township: str | None = None
    page: int = 1

    def shown(self) -> dict[str, Any]:
        """The filter as the access log keeps it."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FindingPage:
    rows: list[Finding]
    total: int
    page: int
    pages: int


def findings(session: Session, scope: Scope, where: FindingFilter) -> FindingPage:
    query = visible_to(scope)
    if where.rule:
        query = query.where(Finding.rule == where.rule)
    if where.status:
        query = query.where(Finding.status == where.status)
    if where.unit_id is not None:
        query = query.where(Finding.unit_id == where.unit_id)
    if where.township is not None:
        query = query.where(Finding.township == ("" if where.township == NO_TOWNSHIP else where.township))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, where.page), pages)
    rows = session.scalars(
        query.order_by(Finding.status.desc(), Finding.rule, Finding.unit_id, Finding.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return FindingPage(list(rows), total, page, pages)


def get(session: Session, scope: Scope, finding_id: int) -> Finding | None:
    return session.scalar(visible_to(scope).where(Finding.id == finding_id))


@dataclass
class Summary:
    """Findings counted by reason, for the whole of what the user sees and per 乡镇."""

    #: rule -> (open, answered)
    by_rule: dict[str, list[int]] = field(default_factory=lambda: {r: [0, 0] for r in RULES})
    #: 乡镇 -> rule -> findings (open and answered)
    by_township: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def open(self) -> int:
        return sum(o for o, _ in self.by_rule.values())

    @property
    def answered(self) -> int:
        return sum(a for _, a in self.by_rule.values())


def summary(session: Session, scope: Scope) -> Summary:
    out = Summary()
    counted = session.execute(
        select(Finding.township, Finding.rule, Finding.status, func.count())
        .where(Finding.unit_id.in_(scope.units))
        .group_by(Finding.township, Finding.rule, Finding.status)
    )
    for township, rule, status, count in counted:
        out.by_rule.setdefault(rule, [0, 0])[0 if status == "open" else 1] += count
        place = out.by_township.setdefault(township or NO_TOWNSHIP, dict.fromkeys(RULES, 0))
        place[rule] = place.get(rule, 0) + count
    out.by_township = dict(sorted(out.by_township.items(), key=lambda kv: (kv[0] == NO_TOWNSHIP, kv[0])))
    return out


def lists(session: Session, scope: Scope) -> list[SourceList]:
    """The versions of the lists of the bureau the user belongs to (its staff only: offices and
    schools see findings, not the lists)."""
    return list(
        session.scalars(
            select(SourceList)
            .where(SourceList.bureau_id == scope.unit.id, SourceList.bureau_id.in_(scope.units))
            .order_by(SourceList.kind, SourceList.version.desc())
        )
    )


def last_run(session: Session, scope: Scope) -> CompareRun | None:
    return session.scalar(
        select(CompareRun)
        .where(CompareRun.bureau_id == scope.unit.id, CompareRun.bureau_id.in_(scope.units))
        .order_by(CompareRun.id.desc())
        .limit(1)
    )
