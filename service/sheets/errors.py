"""Why a sheet cannot be read, each with a stable code and a Chinese message that says what to do."""

from __future__ import annotations

from service.errors import InvalidInput

UNSUPPORTED = "只支持 .xlsx 或 .csv 格式的表格（也可以是旧版 Excel 的 .xls、WPS 的 .et 或 .ods）。"
PASSWORD = "文件设置了打开密码，请在 Excel 或 WPS 中取消密码后另存，再上传。"
UNREADABLE_EXCEL = "无法读取该 Excel 文件：它可能已损坏。请用 Excel 或 WPS 打开后另存为 .xlsx 再上传。"


class UnreadableSheet(InvalidInput):
    """The file is not a sheet we can read; the message says why and what to do, in Chinese."""

    code = "SHEET_UNREADABLE"
    default_message = "无法读取该表格。"


class SheetTooLarge(UnreadableSheet):
    """The file is over one of the hard ``Limits``; refused before it is read."""

    code = "SHEET_TOO_LARGE"
    default_message = "表格过大，无法读取。"


class HiddenRows(UnreadableSheet):
    """Rows with content that the sheet hides: they would be imported although nobody sees them."""

    code = "SHEET_HIDDEN_ROWS"
    default_message = "表格中有隐藏的行。"


class HeaderNotFound(UnreadableSheet):
    """No row near the top names the required columns; ``details["errors"]`` lists each missing one."""

    code = "SHEET_HEADER_NOT_FOUND"
    default_message = "表格中没有找到表头。"
