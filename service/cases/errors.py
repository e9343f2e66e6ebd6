from __future__ import annotations

from service.errors import InvalidInput


class CaseInvalid(InvalidInput):
    code = "CASE_INVALID"
    default_message = "个案信息有误。"


class CaseClosed(InvalidInput):
    code = "CASE_CLOSED"
    http_status = 409
    default_message = "该个案已结案（已复学、延缓入学/休学或核销），不能再做此操作。"


class DuplicateCase(InvalidInput):
    code = "DUPLICATE_CASE"
    http_status = 409
    default_message = "该学生已有未结案的辍学个案。"


class NoticeNotDue(InvalidInput):
    code = "NOTICE_NOT_DUE"
    http_status = 409
    default_message = "现在还不能发这份通知书。"


class CaseFileUnavailable(InvalidInput):
    code = "CASE_FILE_UNAVAILABLE"
    http_status = 409
    default_message = "现在还不能生成该个案的案卷。"
