"""四查三比对: the lists a bureau receives, compared by rules, and what the comparison finds.

- **Source lists** (``SourceList``, ``SourceChild``): a bureau uploads each list it gets (公安户籍,
  the 学籍 export, the schools' 在校学生名单, 脱贫户/低保, 残疾儿童, the platform's 疑似辍学) through
  its saved column mapping (``Exchange.mapping``, kind ``list_<kind>``). Each upload is a new dated
  version; a bad row stops the whole upload with every bad row listed. A 身份证号 that is well
  formed but fails its check (a digit mistyped or transposed) is kept, marked, and never matched.
- **The rules** run over the latest version of each list and the children reported at school in
  the 适龄儿童台账, matching by the 身份证号's blind index only (``RULES``). Children with an open
  case are already on the 疑似辍学台账 and are not found again. A finding is stored once per
  (rule, blind index): a later run finds it again (``current``) and never reopens one that was
  answered; one the data no longer shows stays open until someone answers it.
- **Speed**: rows go in as batches of plain INSERTs (sealed here, not by the ORM's per-object
  flush), and the run streams the latest lists once into a dictionary by blind index, so a
  county's lists compare without a query per child (``bench/compare.py``).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from stdnum.cn import ric

from service.accounts.models import Role
from service.accounts.scope import Scope
from service.archive.service import Archive
from service.audit.service import record
from service.cases.checks import parse_date
from service.cases.models import OPEN_STATUSES, Case
from service.db.sealed import Sealed, blind_index, field_aad, new_row_key, session_keyring
from service.errors import DocsignError, InvalidInput
from service.ledgers.exchange import LIST_KINDS, SCHOOL_LISTS, Exchange, list_fields
from service.ledgers.models import ChildEntry, CompareRun, Finding, SourceChild, SourceList
from service.sheets import Column, Limits, UnreadableSheet, read_sheet, row_error
from service.units.models import Unit, UnitType

#: The lists a finding may name as its sources: the uploaded kinds, and the 适龄儿童台账's
#: children who reported at school.
SOURCE_TITLES = {
    "huji": "户籍",
    "xueji": "学籍",
    "enrolled": "在校名单",
    "ledger": "适龄儿童台账",
    "poverty": "脱贫/低保",
    "disabled": "残疾",
    "platform": "平台疑似辍学",
}
#: The rules, in the order a summary shows them: the finding's reason.
RULES = {
    "id_checksum": "身份证号校验不符",
    "no_xueji": "可能失学（有户籍、无学籍、不在校）",
    "not_enrolled": "可能辍学或空挂学籍（有学籍、不在校）",
    "no_register": "人籍不一致（在校、无学籍）",
    "priority": "重点关注（脱贫/低保/残疾儿童不在校）",
    "platform": "平台疑似辍学、本地无记录",
}
#: How a finding is answered (closed): the reason, as the 核销 reasons name them.
ANSWERS = {
    "transfer": "转学",
    "abroad": "出国",
    "death": "死亡",
    "elsewhere": "在外地就读",
    "at_school": "已在校",
    "other": "其他",
}
#: Where a finding goes: the school the first of these lists names (人籍不一致: the school the
#: child is at), else the 街道教育办 of its 乡镇, else the bureau.
ROUTE_ORDER = ("xueji", "enrolled", "ledger", "platform", "disabled", "poverty", "huji")
ID_FORM = re.compile(r"\d{17}[\dX]")
ALIASES = {
    "name": ("学生姓名", "儿童姓名"),
    "id_number": ("身份证件号", "身份证件号码", "身份证号码", "公民身份号码"),
    "birth_date": ("出生年月日",),
    "school": ("学校", "就读学校"),
    "township": ("乡镇", "街道", "乡镇街道"),
    "village": ("村", "社区", "村居"),
}
#: A county's lists are larger than a school's roster: up to 150,000 children in one file (the
#: sheet reader's other limits grow with it; the 50,000 rows of the defaults are a roster's).
LIST_LIMITS = Limits(max_rows=150_000, max_cells=2_000_000, max_unpacked_bytes=192 * 1024 * 1024, max_strings=2_000_000)
#: Rows written by one INSERT.
BATCH = 2000


class ListInvalid(InvalidInput):
    code = "COMPARE_LIST_INVALID"
    default_message = "名单中有错误，未保存任何一行。请按逐行列出的原因修改后重新上传。"


class NothingToCompare(InvalidInput):
    code = "COMPARE_NO_LISTS"
    default_message = "尚未上传任何名单，无法比对。请先上传户籍、学籍等名单。"


class AnswerInvalid(InvalidInput):
    code = "FINDING_ANSWER_INVALID"
    default_message = "答复有误，请选择原因后重试。"


class FindingAnswered(DocsignError):
    code = "FINDING_ALREADY_ANSWERED"
    http_status = 409
    default_message = "该线索已答复，不能重复答复。"


def school_year(today: dt.date) -> int:
    """The school year by the year it starts in (September)."""
    return today.year if today.month >= 9 else today.year - 1


def compulsory_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """Birth dates of compulsory age this school year: 6 by 31 August for 一年级, nine grades."""
    year = school_year(today)
    return dt.date(year - 15, 9, 1), dt.date(year - 6, 8, 31)


class _Seen:
    """One child as the lists show it: which lists, the school each names, where it lives, and
    the first row's name and sealed 身份证号 (opened only if the child becomes a new finding)."""

    __slots__ = ("birth", "field", "kinds", "name", "row_key", "schools", "sealed", "township", "village")

    def __init__(self, field: Sealed[str], name: str, birth: dt.date | None, sealed: bytes, row_key: str) -> None:
        self.kinds: set[str] = set()
        self.schools: dict[str, int] = {}
        self.township = ""
        self.village = ""
        self.field = field
        self.name = name
        self.birth = birth
        self.sealed = sealed
        self.row_key = row_key

    def add(self, kind: str, school_id: int | None, township: str, village: str, birth: dt.date | None) -> None:
        self.kinds.add(kind)
        if school_id is not None:
            self.schools.setdefault(kind, school_id)
        self.township = self.township or township
        self.village = self.village or village
        self.birth = self.birth or birth


class Compare:
    def __init__(self, exchange: Exchange, archive: Archive, tz: zoneinfo.ZoneInfo, now: Callable[[], dt.datetime]):
        self.exchange = exchange
        self.archive = archive
        self.tz = tz
        self.now = now

    def today(self) -> dt.date:
        return self.now().astimezone(self.tz).date()

    # --- the lists -----------------------------------------------------------------------------

    def upload(
        self,
        session: Session,
        scope: Scope,
        kind: str,
        data: bytes,
        filename: str,
        mapping: dict[str, str] | None = None,
    ) -> SourceList:
        """A bureau's list as a new version of its kind: every bad row is reported and nothing is
        saved, or every row is. A ``mapping`` given is saved as the bureau's for the kind first."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以上传比对名单。")
        bureau = scope.bureau()
        if kind not in LIST_KINDS:
            raise ListInvalid(f"名单种类应为 {'、'.join(LIST_KINDS.values())} 之一。")
        if mapping:
            self.exchange.set_mapping(session, scope, mapping, f"list_{kind}")
        saved = self.exchange.mapping(session, bureau, f"list_{kind}")
        fields = list_fields(kind)
        columns = [
            Column(
                f.key,
                tuple(dict.fromkeys((saved.get(f.key) or f.title, f.title, *ALIASES[f.key]))),
                required=f.required,
                kind=f.kind,
            )
            for f in fields
        ]
        try:
            sheet = read_sheet(data, filename, columns, limits=LIST_LIMITS)
        except UnreadableSheet as exc:
            raise ListInvalid(exc.message, details=exc.details) from exc
        if not sheet.rows:
            raise ListInvalid("名单中没有儿童。")
        titles = {f.key: sheet.headers.get(f.key) or f.title for f in fields}
        schools: dict[str, int] = {}
        for school in session.scalars(select(Unit).where(Unit.id.in_(scope.units), Unit.type == UnitType.SCHOOL)):
            schools[school.code] = schools[school.name] = school.id
        errors: list[dict[str, Any]] = []
        good: list[tuple[int, str, str, bool, dt.date | None, int | None, str, str]] = []
        first: dict[str, int] = {}
        for line in sheet.rows:
            v, n = line.values, line.number
            problems = list(line.problems)

            def bad(key: str, message: str, n: int = n, v: dict[str, str] = v, out: list[Any] = problems) -> None:
                out.append(row_error(n, titles[key], v.get(key, ""), message))

            name, number = v["name"], v["id_number"]
            if not name:
                bad("name", "必须填写")
            if not number:
                bad("id_number", "必须填写")
            elif not ID_FORM.fullmatch(number):
                bad("id_number", "身份证号应为18位：17位数字加1位数字或X")
            elif number in first:
                bad("id_number", f"与第 {first[number]} 行是同一个身份证号")
            else:
                first[number] = n
            valid = bool(ID_FORM.fullmatch(number)) and ric.is_valid(number)
            birth = ric.get_birth_date(number) if valid else None
            if v["birth_date"]:
                typed = parse_date(v["birth_date"])
                if typed is None:
                    bad("birth_date", "不是有效的日期，应写成 2015-09-01")
                elif birth is not None and typed != birth:
                    bad("birth_date", f"与身份证号中的出生日期（{birth.isoformat()}）不一致")
                birth = birth or typed
            school_id = None
            if v["school"]:
                school_id = schools.get(v["school"])
                if school_id is None:
                    bad("school", "学校不存在，或不在本局管辖范围内")
            elif kind in SCHOOL_LISTS:
                bad("school", "必须填写")
            if problems:
                errors += problems
                continue
            good.append((n, name[:30], number, valid, birth, school_id, v["township"][:30], v["village"][:30]))
        if errors:
            raise ListInvalid(
                f"名单中有 {len(errors)} 处错误，未保存任何一行。请按逐行列出的原因修改后重新上传。",
                details={"errors": errors},
            )
        version = (
            session.scalar(
                select(func.max(SourceList.version)).where(SourceList.bureau_id == bureau.id, SourceList.kind == kind)
            )
            or 0
        ) + 1
        listed = SourceList(
            bureau_id=bureau.id,
            kind=kind,
            version=version,
            filename=filename[:128],
            children=len(good),
            invalid_ids=sum(1 for g in good if not g[3]),
            uploaded_at=self.now(),
            uploaded_by=scope.actor.label[:80],
        )
        session.add(listed)
        session.flush()
        ring = session_keyring(session)
        table = _table(SourceChild)

        def rows() -> Iterator[dict[str, Any]]:
            for n, name, number, valid, birth, school_id, township, village in good:
                row_key = new_row_key()
                yield {
                    "list_id": listed.id,
                    "row": n,
                    "name": name,
                    "id_number_sealed": ring.encrypt(
                        SourceChild.id_number.encode(number), field_aad("source_children", "id_number", row_key)
                    ),
                    "id_number_bidx": blind_index(ring, number, "id_number"),
                    "id_valid": valid,
                    "birth_date": birth,
                    "school_id": school_id,
                    "township": township,
                    "village": village,
                    "row_key": row_key,
                }

        for batch in _batches(rows()):
            session.execute(insert(table), batch)
        record(
            session,
            scope.actor,
            "compare.upload",
            "source_list",
            listed.id,
            self.now(),
            kind=kind,
            version=version,
            children=listed.children,
            invalid_ids=listed.invalid_ids,
            filename=filename[:60],
        )
        session.flush()
        return listed

    # --- the run -------------------------------------------------------------------------------

    def run(self, session: Session, scope: Scope, trigger: str = "manual") -> CompareRun:
        """Compare the latest version of each list (and the children at school in the 适龄儿童台账)
        and store what the rules find; a finding already stored is found again, never reopened."""
        scope.require(Role.BUREAU, message="只有教体局工作人员可以运行比对。")
        bureau = scope.bureau()
        started = time.perf_counter()
        latest: dict[str, int] = {
            kind: list_id
            for kind, list_id in session.execute(
                select(SourceList.kind, func.max(SourceList.id))
                .where(SourceList.bureau_id == bureau.id)
                .group_by(SourceList.kind)
            )
        }
        if not latest:
            raise NothingToCompare()
        kind_of = {list_id: kind for kind, list_id in latest.items()}
        units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(scope.units)))}
        school_ids = [u.id for u in units.values() if u.type == UnitType.SCHOOL]
        children: dict[str, _Seen] = {}
        invalid: dict[str, _Seen] = {}

        def seen(
            into: dict[str, _Seen],
            bidx: str,
            field: Sealed[str],
            name: str,
            birth: dt.date | None,
            sealed: bytes,
            row_key: str,
        ) -> _Seen:
            entry = into.get(bidx)
            if entry is None:
                entry = into[bidx] = _Seen(field, name, birth, sealed, row_key)
            return entry

        listed = select(
            SourceChild.list_id,
            SourceChild.id_number_bidx,
            SourceChild.id_valid,
            SourceChild.school_id,
            SourceChild.township,
            SourceChild.village,
            SourceChild.name,
            SourceChild.birth_date,
            SourceChild.id_number_sealed,
            SourceChild.row_key,
        ).where(SourceChild.list_id.in_(list(kind_of)))
        for list_id, bidx, valid, school_id, township, village, name, birth, sealed, row_key in _stream(
            session, listed
        ):
            entry = seen(children if valid else invalid, bidx, SourceChild.id_number, name, birth, sealed, row_key)
            entry.add(kind_of[list_id], school_id, township, village, birth)
        at_school = select(
            ChildEntry.id_number_bidx,
            ChildEntry.school_id,
            ChildEntry.student_name,
            ChildEntry.birth_date,
            ChildEntry.id_number_sealed,
            ChildEntry.row_key,
        ).where(
            ChildEntry.school_id.in_(school_ids),
            ChildEntry.reported_on.is_not(None),
            ChildEntry.erased_at.is_(None),
            ChildEntry.id_number_bidx.is_not(None),
        )
        for bidx, school_id, name, birth, sealed, row_key in _stream(session, at_school):
            seen(children, bidx, ChildEntry.id_number, name, birth, sealed, row_key).add(
                "ledger", school_id, "", "", birth
            )
        open_cases = set(
            session.scalars(
                select(Case.id_number_bidx).where(
                    Case.school_id.in_(school_ids),
                    Case.status.in_([s.value for s in OPEN_STATUSES]),
                    Case.id_number_bidx.is_not(None),
                )
            )
        )

        found: dict[tuple[str, str], _Seen] = {}
        lo, hi = compulsory_window(self.today())
        for bidx, child in children.items():
            kinds = child.kinds
            if bidx in open_cases:
                continue  # already on the 疑似辍学台账
            if "enrolled" in kinds or "ledger" in kinds:
                if "xueji" not in kinds:
                    found["no_register", bidx] = child
                continue
            of_age = child.birth is None or lo <= child.birth <= hi
            if ("poverty" in kinds or "disabled" in kinds) and of_age:
                found["priority", bidx] = child
            elif "xueji" in kinds:
                found["not_enrolled", bidx] = child
            elif "huji" in kinds:
                if of_age:
                    found["no_xueji", bidx] = child
            elif "platform" in kinds:
                found["platform", bidx] = child
        for bidx, child in invalid.items():
            found["id_checksum", bidx] = child

        now = self.now()
        run = CompareRun(
            bureau_id=bureau.id,
            trigger=trigger,
            lists={kind: list_id for kind, list_id in sorted(latest.items())},
            counts={},
            started_at=now,
            actor=scope.actor.label[:80],
        )
        session.add(run)
        session.flush()
        stored: dict[tuple[str, str], tuple[int, bool]] = {
            (rule, bidx): (finding_id, current)
            for finding_id, rule, bidx, current in _stream(
                session,
                select(Finding.id, Finding.rule, Finding.id_number_bidx, Finding.current).where(
                    Finding.bureau_id == bureau.id
                ),
            )
        }
        offices = [u for u in units.values() if u.type == UnitType.OFFICE]
        route = _router(bureau, offices)
        ring = session_keyring(session)

        def new_rows() -> Iterator[dict[str, Any]]:
            for (rule, bidx), child in found.items():
                if (rule, bidx) in stored:
                    continue
                row_key = new_row_key()
                number = child.field.open(ring, child.sealed, child.row_key)
                yield {
                    "bureau_id": bureau.id,
                    "rule": rule,
                    "unit_id": route(rule, child),
                    "township": child.township,
                    "village": child.village,
                    "student_name": child.name,
                    "id_number_sealed": ring.encrypt(
                        Finding.id_number.encode(number), field_aad("findings", "id_number", row_key)
                    ),
                    "id_number_bidx": bidx,
                    "birth_date": child.birth,
                    "sources": [k for k in SOURCE_TITLES if k in child.kinds],
                    "status": "open",
                    "current": True,
                    "first_run_id": run.id,
                    "last_run_id": run.id,
                    "found_at": now,
                    "last_found_at": now,
                    "row_key": row_key,
                }

        findings = _table(Finding)
        new = 0
        for batch in _batches(new_rows()):
            session.execute(insert(findings), batch)
            new += len(batch)
        # found again: still current, with the lists it is in now (one statement per batch)
        again = (
            {"fid": stored[key][0], "sources": [k for k in SOURCE_TITLES if k in child.kinds]}
            for key, child in found.items()
            if key in stored
        )
        refresh = (
            update(findings)
            .where(findings.c.id == bindparam("fid"))
            .values(current=True, last_run_id=run.id, last_found_at=now, sources=bindparam("sources"))
        )
        for batch in _batches(again):
            session.connection().execute(refresh, batch)
        gone = [finding_id for key, (finding_id, current) in stored.items() if current and key not in found]
        for ids in _batches(gone):
            session.execute(update(findings).where(findings.c.id.in_(ids)).values(current=False))
        counts: dict[str, int] = dict.fromkeys(RULES, 0)
        for rule, _ in found:
            counts[rule] += 1
        run.counts = counts
        run.new_findings = new
        run.seconds = round(time.perf_counter() - started, 3)
        record(
            session,
            scope.actor,
            "compare.run",
            "compare_run",
            run.id,
            now,
            trigger=trigger,
            found=len(found),
            new=new,
            no_longer_found=len(gone),
        )
        session.flush()
        return run

    def monthly(self, session: Session, checkpoint: Callable[[], None]) -> list[CompareRun]:
        """The monthly run (the ``ledgers.compare`` schedule asks daily): each bureau with lists
        that has had no run this month (Beijing time), as the bureau's operator."""
        today = self.today()
        month_start = dt.datetime(today.year, today.month, 1, tzinfo=self.tz)
        bureaus = session.scalars(
            select(Unit).where(Unit.id.in_(select(SourceList.bureau_id).distinct())).order_by(Unit.id)
        ).all()
        runs: list[CompareRun] = []
        for bureau in bureaus:
            ran = session.scalar(
                select(func.count(CompareRun.id)).where(
                    CompareRun.bureau_id == bureau.id, CompareRun.started_at >= month_start
                )
            )
            if ran:
                continue
            runs.append(self.run(session, Scope.operator(session, bureau, "每月自动比对"), "schedule"))
            checkpoint()
        return runs

    # --- answers -------------------------------------------------------------------------------

    def answer(
        self,
        session: Session,
        scope: Scope,
        finding: Finding,
        reason: str,
        note: str = "",
        evidence: tuple[str, bytes] | None = None,
    ) -> Finding:
        """Close a finding with its reason (and evidence, if any): the unit it was routed to, or
        the bureau's staff. It is never closed any other way, and no later run reopens it."""
        bureau_staff = scope.has(Role.BUREAU) and scope.unit.type == UnitType.BUREAU
        if not (scope.acts_for(finding.unit) or (bureau_staff and finding.unit_id in scope.units)):
            raise scope.refuse(f"只有「{finding.unit.name}」自己的账号或教体局工作人员可以答复该线索。")
        if finding.status != "open":
            raise FindingAnswered()
        if reason not in ANSWERS:
            raise AnswerInvalid(f"答复原因应为 {'、'.join(ANSWERS.values())} 之一。")
        note = (note or "").strip()
        if reason == "other" and not note:
            raise AnswerInvalid("答复为“其他”时请写明具体情况。")
        if len(note) > 200:
            raise AnswerInvalid("说明不能超过200字。")
        if evidence is not None:
            filename, data = evidence
            if not data:
                raise AnswerInvalid("证明材料文件是空的。")
            finding.evidence_sha256 = self.archive.keep(session, "files", data)
            finding.evidence_filename = (filename or "证明材料")[:128]
        finding.status = "answered"
        finding.answer = reason
        finding.answer_note = note or None
        finding.answered_at = self.now()
        finding.answered_by = scope.actor.label[:80]
        record(
            session,
            scope.actor,
            "compare.answer",
            "finding",
            finding.id,
            self.now(),
            rule=finding.rule,
            answer=reason,
            evidence=evidence is not None,
        )
        session.flush()
        return finding


def _router(bureau: Unit, offices: list[Unit]) -> Callable[[str, _Seen], int]:
    """Which unit a finding goes to: the school a list names, else the only 街道教育办 whose name
    holds the 乡镇's, else the bureau."""

    def route(rule: str, child: _Seen) -> int:
        order = ("enrolled", "ledger", *ROUTE_ORDER) if rule == "no_register" else ROUTE_ORDER
        for kind in order:
            if kind in child.schools:
                return child.schools[kind]
        if child.township:
            matches = [o.id for o in offices if child.township in o.name]
            if len(matches) == 1:
                return matches[0]
        return bureau.id

    return route


def _table(model: type[SourceChild | Finding]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _stream(session: Session, query: Any) -> Iterable[Any]:
    """Rows fetched in batches rather than all at once."""
    return session.execute(query.execution_options(yield_per=5000))


def _batches(rows: Iterable[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
