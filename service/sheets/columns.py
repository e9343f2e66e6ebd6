"""What a caller declares (the columns it reads) and what it gets back (the rows, their problems)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["text", "code", "id_number", "phone", "date"]


@dataclass(frozen=True)
class Column:
    """A column the caller reads: its key, the header spellings it accepts (the first is its title)."""

    key: str
    names: tuple[str, ...]
    required: bool = False
    #: A blank cell takes the value above it where the format does not say which cells are merged (CSV).
    fill_down: bool = False
    kind: Kind = "text"

    @property
    def title(self) -> str:
        return self.names[0]


@dataclass
class SheetRow:
    """One data row: its number as the spreadsheet shows it, the normalised values (every declared
    column's key, ``""`` when blank or absent), what the person typed, and problems found in reading."""

    number: int
    values: dict[str, str]
    typed: dict[str, str]
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Sheet:
    name: str
    header_row: int
    #: key -> the header as written in the sheet, for the columns found.
    headers: dict[str, str]
    rows: list[SheetRow]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [p for r in self.rows for p in r.problems]


def row_error(row: int, column: str, value: str, message: str, *, field: str | None = None) -> dict[str, Any]:
    """The shape of every row error an import reports: where, what was typed, and what to do."""
    out: dict[str, Any] = {"row": row, "column": column, "value": value, "message": message}
    if field is not None:  # the CLI prints title（field） for errors that carry them
        out["title"] = column
        out["field"] = field
    return out
