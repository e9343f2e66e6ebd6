from __future__ import annotations

from service.errors import InvalidInput, NotFound


class SheetInvalid(InvalidInput):
    code = "SHEET_INVALID"
    default_message = "表格中有错误，未导入任何数据。请按提示逐行修改后重新上传。"


class UnitNotFound(NotFound):
    code = "UNIT_NOT_FOUND"
    default_message = "未找到该单位。"
