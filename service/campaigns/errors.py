from __future__ import annotations

from service.errors import DocsignError, InvalidInput, NotFound


class SheetInvalid(InvalidInput):
    code = "SHEET_INVALID"
    default_message = "表格中有错误，未导入任何数据。请按提示逐行修改后重新上传。"


class UnitNotFound(NotFound):
    code = "UNIT_NOT_FOUND"
    default_message = "未找到该单位。"


class CampaignInvalid(InvalidInput):
    code = "CAMPAIGN_INVALID"
    default_message = "任务设置有误。"


class DeadlinePassed(InvalidInput):
    code = "DEADLINE_PASSED"
    default_message = "截止时间已经过去，请设置一个将来的时间。"


class CampaignNotReady(InvalidInput):
    code = "CAMPAIGN_NOT_READY"
    http_status = 409
    default_message = "任务当前状态不允许此操作。"


class UnitDataMissing(InvalidInput):
    code = "UNIT_DATA_MISSING"
    default_message = "部分单位缺少填写文书所需的信息（如负责人姓名），请先补全单位信息。"


class NothingToForward(InvalidInput):
    code = "NOTHING_TO_FORWARD"
    http_status = 409
    default_message = "没有可以转交的已签署文书。"


class AssignmentNotSignable(InvalidInput):
    code = "ASSIGNMENT_NOT_SIGNABLE"
    http_status = 409
    default_message = "该文书当前不能签署。"


class DocumentRevoked(InvalidInput):
    code = "DOCUMENT_REVOKED"
    http_status = 409
    default_message = "该文书已被撤回，不能再签署。"


class NotFoundForUser(NotFound):
    """What every object outside a user's units answers: it does not exist for them."""

    code = "NOT_FOUND"
    default_message = "未找到请求的对象，或您无权查看。"


class UploadInvalid(InvalidInput):
    code = "UPLOAD_INVALID"
    default_message = "上传的文件无效。"


class UploadTooLarge(DocsignError):
    code = "UPLOAD_TOO_LARGE"
    http_status = 413
    default_message = "上传的文件过大。"
