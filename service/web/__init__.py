"""The pages face: Jinja2 pages by domain over the same use cases as the API."""

from service.web import (
    accounts,
    assignments,
    audit,
    campaigns,
    cases,
    compare,
    deadlines,
    district,
    exchange,
    ledgers,
    notify,
    reports,
    rosters,
    units,
    verification,
)

ROUTERS = [
    m.router
    for m in (
        verification,
        accounts,
        campaigns,
        assignments,
        units,
        cases,
        rosters,
        ledgers,
        deadlines,
        reports,
        district,
        exchange,
        compare,
        notify,
        audit,
    )
]
