""".xls: its declared dimensions checked before calamine reserves them, and calamine run in a child."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import olefile
import pytest

from service.sheets import SheetTooLarge, UnreadableSheet, read_sheet
from service.sheets.errors import HiddenRows
from service.sheets.xls import calamine_in_child
from tests.sheets.samples import ROSTER, probe


def test_an_xls_declaring_a_huge_dimension_is_refused_before_calamine_reserves_it(
    tmp_path: Path, roster_corpus: dict[tuple[str, str], tuple[str, bytes]]
) -> None:
    _, data = roster_corpus[("plain", "xls")]
    record = _xls_dimensions(data)
    first_row, _, first_col, _ = struct.unpack_from("<IIHH", record, 4)
    bomb = data.replace(record, record[:4] + struct.pack("<IIHH", first_row, 0xFFFFFF00, first_col, 0xFF) + record[16:])
    result = probe(tmp_path, bomb, "名单.xls")
    assert result["outcome"].startswith("SHEET_TOO_LARGE"), result
    assert result["seconds"] < 1.0 and result["rss_mb"] < 200, result


def _wrapped_dimension(data: bytes) -> bytes:
    """The .xls with its sheet's first row declared past its last: calamine's 32-bit arithmetic
    makes that four billion rows to reserve, and the failed allocation aborts the process."""
    record = _xls_dimensions(data)
    return data.replace(record, record[:4] + struct.pack("<IIHH", 7, 1, 0, 8) + record[16:])


def test_an_xls_whose_dimension_wraps_round_is_refused(roster_corpus: dict[tuple[str, str], tuple[str, bytes]]) -> None:
    _, data = roster_corpus[("plain", "xls")]
    with pytest.raises(SheetTooLarge, match="声明的数据区域过大（4294967290 行 × 8 列）"):
        read_sheet(_wrapped_dimension(data), "名单.xls", ROSTER)


def test_calamine_reads_an_xls_in_a_child_whose_death_is_only_a_refusal(
    roster_corpus: dict[tuple[str, str], tuple[str, bytes]],
) -> None:
    _, data = roster_corpus[("plain", "xls")]
    assert [g.name for g in calamine_in_child(data)] == ["名单"]
    # the file above, past the checks that refuse it: calamine aborts the child; this process carries on
    aborted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import io, sys, python_calamine; python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(sys.stdin.buffer.read()))",
        ],
        input=_wrapped_dimension(data),
        capture_output=True,
        check=False,
    )
    assert aborted.returncode < 0  # killed by a signal (SIGABRT), not an exception
    with pytest.raises(UnreadableSheet, match="无法读取该 Excel 文件"):
        calamine_in_child(_wrapped_dimension(data))


def _xls_dimensions(data: bytes) -> bytes:
    """The first sheet's DIMENSIONS record, as it sits in the file."""
    ole = olefile.OleFileIO(data)
    stream = ole.openstream("Workbook").read()
    ole.close()
    pos, dimensions = 0, []
    while pos + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, pos)
        if kind == 0x0200:
            dimensions.append(stream[pos : pos + 4 + size])
        pos += 4 + size
    assert data.count(dimensions[0]) == 1
    return dimensions[0]


def test_hidden_rows_of_an_xls_are_named_and_nothing_is_imported(
    roster_corpus: dict[tuple[str, str], tuple[str, bytes]],
) -> None:
    """A ROW record's fDyZero flag (a row hidden in Excel or WPS) on the second data row."""
    _, data = roster_corpus[("plain", "xls")]
    assert read_sheet(data, "名单.xls", ROSTER).rows  # as saved, it imports
    at = data.index(struct.pack("<HHH", 0x0208, 16, 2))  # the ROW record of the sheet's third row
    flags = struct.unpack_from("<H", data, at + 4 + 12)[0]
    hidden = data[: at + 16] + struct.pack("<H", flags | 0x20) + data[at + 18 :]
    with pytest.raises(HiddenRows) as caught:
        read_sheet(hidden, "名单.xls", ROSTER)
    assert caught.value.details == {"rows": [3]}
