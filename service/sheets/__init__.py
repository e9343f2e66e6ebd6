"""Reading the sheets people upload, as school offices really keep them.

One reader for every upload (unit trees, rosters, later reports): ``read_sheet`` takes the file's
bytes and the columns the caller needs, and returns the rows below the header, numbered as the
spreadsheet numbers them, each cell both as the person typed it and normalised.

- Formats: .xlsx/.xlsm, .xls (and WPS .et, which is the same BIFF inside), .ods, read by
  python-calamine; .csv in UTF-8 (with or without BOM) or GBK/GB18030. The content decides, not
  the file's name, so an .xlsx renamed .xls still reads.
- The header is the first row, within the first ``table.HEADER_SEARCH_ROWS`` non-empty rows, that names
  every required column (a title row such as "2025年XX小学一年级新生名单" above it is skipped), on
  the first sheet that has one (visible sheets before hidden ones).
- Merged cells are filled down (xlsx, xls and ods say which cells are merged); a CSV has no
  merges, so a blank cell in a column the caller marks ``fill_down`` takes the value above.
- Text is normalised: NFKC (full-width digits and letters), invisible characters removed, a
  身份证号's check letter upper-cased, phones in one form (``13805310001``, ``0531-88120000``),
  dates as ``2025-09-01``. A cell that starts with ``=`` is text, never evaluated: a formula
  comes back as the value Excel saved with it, or as its text when there is none.
- A number that lost digits (a 身份证号 typed as a number keeps 15 significant digits) is
  reported on its row with what to do, and so is a phone whose leading 0 was lost.
- Hard limits (``Limits``) on rows, columns, cells, strings and unpacked size are checked on the
  file's own structure before calamine allocates anything (zip entries unzipped here within the
  limit and checked against their CRC, cell positions scanned, declared sizes compared), so memory
  stays flat whatever a file declares. calamine's .xls parser still aborts the process on some
  damaged files, so .xls is parsed in a child process with its memory capped.

Where each part lives: ``read`` picks the reader by the file's content; ``xlsx``, ``xls``, ``ods``
and ``csv`` turn a file into grids of cells (``grid.Grid``), ``parts`` unzipping an .xlsx or .ods
for the first and the third; ``limits`` holds the ``Limits`` and the ``Extent`` every scanner checks
them with; ``table`` finds the header and makes the rows; ``normalize`` gives each cell its text and
normal form; ``columns`` holds what a caller declares and gets back; ``errors`` says why a file is
refused. Each layer imports only the ones below it: ``read``; ``xlsx``, ``xls``, ``ods``, ``csv``;
``parts``, ``table``; ``grid``; ``limits``, ``normalize``; ``columns``, ``errors``.
"""

from service.sheets.columns import Column, Kind, Sheet, SheetRow, row_error
from service.sheets.errors import HeaderNotFound, SheetTooLarge, UnreadableSheet
from service.sheets.limits import DEFAULT_LIMITS, Limits
from service.sheets.normalize import CellValue, clean_text, normalize_date, normalize_phone, shown
from service.sheets.read import read_sheet, read_table

__all__ = [
    "DEFAULT_LIMITS",
    "CellValue",
    "Column",
    "HeaderNotFound",
    "Kind",
    "Limits",
    "Sheet",
    "SheetRow",
    "SheetTooLarge",
    "UnreadableSheet",
    "clean_text",
    "normalize_date",
    "normalize_phone",
    "read_sheet",
    "read_table",
    "row_error",
    "shown",
]
