from __future__ import annotations

from service.errors import InvalidInput


class RosterInvalid(InvalidInput):
    code = "ROSTER_INVALID"
    default_message = "名单中有错误，未导入任何学生。请按提示逐行修改后重新上传，或选择只导入无误的行。"
