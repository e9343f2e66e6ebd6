"""The JSON API face: routes that parse a request, call one domain use case, and shape the answer."""

from service.api import (
    accounts,
    assignments,
    audit,
    campaigns,
    cases,
    compare,
    documents,
    ledgers,
    notify,
    pki,
    rosters,
    units,
)

ROUTERS = [
    m.router
    for m in (accounts, units, campaigns, assignments, documents, cases, rosters, ledgers, compare, pki, notify, audit)
]
