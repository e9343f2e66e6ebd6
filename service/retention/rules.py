"""When each kind of record is due for removal: dates only, no database.

The notices fix no retention periods; these rules follow the purposes the records serve. A case
serves until the child has finished compulsory education and the years of checks after it; a
roster serves its school year's 报到 and the next term's comparison; a cached page image serves a
signing session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: The school year ends on 8月31日; the new one starts on 9月1日.
YEAR_END_MONTH, YEAR_END_DAY = 8, 31
#: 义务教育 is nine school years (the law: 九年义务教育), entered at six (a child who turns six by
#: 8月31日 starts that September).
SCHOOL_YEARS = 9
ENTRY_AGE = 6


@dataclass(frozen=True)
class RetentionRules:
    case_years: int = 3
    roster_days: int = 365
    children_years: int = 3
    page_cache_days: int = 7


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` ``years`` later; 2月29日 becomes 2月28日 in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def year_end(year: int) -> dt.date:
    return dt.date(year, YEAR_END_MONTH, YEAR_END_DAY)


def school_year_end(day: dt.date) -> dt.date:
    """The last day of the school year ``day`` falls in."""
    return year_end(day.year if (day.month, day.day) <= (YEAR_END_MONTH, YEAR_END_DAY) else day.year + 1)


def compulsory_end(birth_date: dt.date) -> dt.date:
    """The end of the school year in which a child who entered at the usual age finishes nine years."""
    entry = birth_date.year + ENTRY_AGE
    if (birth_date.month, birth_date.day) > (YEAR_END_MONTH, YEAR_END_DAY):
        entry += 1
    return year_end(entry + SCHOOL_YEARS)


def case_due(closed_on: dt.date, birth_date: dt.date, rules: RetentionRules) -> dt.date:
    """A closed case: ``case_years`` after the later of its closing and the end of compulsory age."""
    return add_years(max(closed_on, compulsory_end(birth_date)), rules.case_years)


def roster_due(issue_date: dt.date, rules: RetentionRules) -> dt.date:
    return school_year_end(issue_date) + dt.timedelta(days=rules.roster_days)


def child_due(intake_year: int, birth_date: dt.date | None, rules: RetentionRules) -> dt.date:
    """A row of the 适龄儿童台账 (an intake of ``intake_year``)."""
    end = compulsory_end(birth_date) if birth_date is not None else year_end(intake_year + SCHOOL_YEARS)
    return add_years(max(end, year_end(intake_year + SCHOOL_YEARS)), rules.children_years)
