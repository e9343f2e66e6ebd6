from __future__ import annotations

from service.errors import InvalidInput


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
