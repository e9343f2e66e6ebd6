"""What a repository's ``visible_to`` needs of whoever reads: the ids of the units they may see.

``accounts.scope.Scope`` is one; the domains below ``accounts`` (units, jobs) take it through this
protocol so that they need not import it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

#: Row ids are 64-bit signed integers; a larger number names nothing (and must not reach the driver).
MAX_ID = 2**63 - 1


class Sees(Protocol):
    @property
    def units(self) -> Collection[int]: ...


def valid_id(row_id: int) -> bool:
    return 0 < row_id <= MAX_ID
