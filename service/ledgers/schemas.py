"""The ledgers, due items, district figures and reports as JSON (the API's answers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from service.audit.service import mask_id_number
from service.campaigns.models import Assignment
from service.campaigns.service import period_label, state_label
from service.ledgers.compare import ANSWERS, RULES, SOURCE_TITLES
from service.ledgers.district import District, Figures
from service.ledgers.exchange import LIST_KINDS
from service.ledgers.models import CompareRun, Finding, ReportVersion, SourceList
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


def finding_view(f: Finding, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """A finding as the list and the API show it: the 身份证号 masked."""
    return {
        "id": f.id,
        "rule": f.rule,
        "reason": RULES.get(f.rule, f.rule),
        "unit": unit_brief(f.unit),
        "township": f.township,
        "village": f.village,
        "student_name": f.student_name,
        "id_number": mask_id_number(f.id_number or ""),
        "birth_date": f.birth_date.isoformat() if f.birth_date else None,
        "sources": [SOURCE_TITLES.get(k, k) for k in f.sources],
        "status": f.status,
        "current": f.current,
        "found_at": f.found_at.astimezone(tz).isoformat(),
        "answer": ANSWERS.get(f.answer or "", None),
        "answer_note": f.answer_note,
        "answered_at": f.answered_at.astimezone(tz).isoformat() if f.answered_at else None,
        "answered_by": f.answered_by,
        "evidence": f.evidence_filename,
    }


def source_list_view(x: SourceList, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "id": x.id,
        "kind": x.kind,
        "title": LIST_KINDS.get(x.kind, x.kind),
        "version": x.version,
        "filename": x.filename,
        "children": x.children,
        "invalid_ids": x.invalid_ids,
        "uploaded_at": x.uploaded_at.astimezone(tz).isoformat(),
        "uploaded_by": x.uploaded_by,
    }


def run_view(run: CompareRun, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "id": run.id,
        "trigger": run.trigger,
        "started_at": run.started_at.astimezone(tz).isoformat(),
        "seconds": run.seconds,
        "lists": run.lists,
        "counts": {RULES.get(k, k): v for k, v in run.counts.items()},
        "new_findings": run.new_findings,
    }
