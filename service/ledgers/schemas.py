"""The ledgers, due items, district figures and reports as JSON (the API's answers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from service.campaigns.models import Assignment
from service.campaigns.service import period_label, state_label
from service.ledgers.district import District, Figures
from service.ledgers.models import ReportVersion
from service.ledgers.reports import Draft, PeriodKind, differences, period_text
from service.ledgers.service import Change, Ledger
from service.units.models import Unit


def unit_brief(unit: Unit) -> dict[str, Any]:
    return {"id": unit.id, "name": unit.name, "type": unit.type}


def _change(c: Change | None) -> dict[str, Any] | None:
    return None if c is None else {"at": c.at, "actor": c.actor, "what": c.what}


def ledger_view(ledger: Ledger) -> dict[str, Any]:
    """A ledger's rows as the page shows them: open entries (flagged when not updated for a month)
    and those that left it by 销号 this school year, or the 适龄儿童台账's children."""

    def row(r: Any) -> dict[str, Any]:
        out = dataclasses.asdict(r)
        out["changed"] = _change(r.changed)
        return out

    return {
        "key": ledger.key,
        "title": ledger.title,
        "unit": unit_brief(ledger.unit),
        "stale": ledger.stale,
        "rows": [row(r) for r in ledger.rows],
        "closed": [row(r) for r in ledger.closed],
        "children": [dataclasses.asdict(c) for c in ledger.children],
    }


def _figures(f: Figures) -> dict[str, Any]:
    return {
        "unit_id": f.unit_id,
        "name": f.name,
        "kind": f.kind,
        "suspected": f.suspected,
        "dropped": f.dropped,
        "persuading": f.persuading,
        "open": f.open,
        "overdue": f.overdue,
        "reports_late": f.reports_late,
        "reports_missing": f.reports_missing,
        "students": f.students,
        "retention": f.retention,
        "below_target": f.below_target,
        "schools": [_figures(c) for c in f.children],
    }


def district_view(district: District) -> dict[str, Any]:
    return {
        "unit": unit_brief(district.unit),
        "year": district.year,
        "retention_target": district.target,
        "retention_target_source": district.target_source,
        "total": _figures(district.total),
        "groups": [_figures(g) for g in district.offices],
        "weeks": [{"week_end": end, "open": n, "dropped": d} for end, n, d in district.weeks],
    }


def report_row(a: Assignment, latest: ReportVersion | None, now: dt.datetime, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """One period of a unit's report: its deadline, where it stands, the latest signed version."""
    label, tone = state_label(a, now)
    return {
        "period": a.period,
        "label": period_label(a.period),
        "assignment_id": a.id,
        "deadline": a.deadline.astimezone(tz).isoformat(),
        "state": label,
        "tone": tone,
        "version": latest.version if latest else None,
        "document_id": latest.document_id if latest else None,
    }


def draft_view(draft: Draft, versions: list[ReportVersion], tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """The report as it would be signed now, and the versions signed so far with what each changed."""
    kind: PeriodKind = draft.kind
    return {
        "unit": unit_brief(draft.unit),
        "period": draft.period,
        "period_text": period_text(draft.period),
        "kind": kind.assignment,
        "title": kind.title,
        "start": draft.start,
        "end": draft.end,
        "rows": [
            {"key": k, "title": t, "count": draft.figures[k], "behind": draft.behind.get(k, [])} for k, t in kind.rows
        ],
        "figures": draft.figures,
        "parts": draft.parts,
        "missing": draft.missing,
        "digest": draft.digest,
        "changes": draft.changes,
        "versions": [
            {
                "version": v.version,
                "document_id": v.document_id,
                "actor": v.actor,
                "at": v.created_at.astimezone(tz).isoformat(),
                "changes": differences(versions[i - 1].figures, v.figures, kind) if i else [],
            }
            for i, v in enumerate(versions)
        ],
    }
