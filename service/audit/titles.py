"""What the audit page calls each action of the audit log and each kind of read of the access log,
in Chinese. An action without a title here is shown by its name."""

from __future__ import annotations

ACTION_TITLES = {
    "access.denied": "拒绝访问",
    "auth.login": "登录",
    "auth.login_failed": "登录失败",
    "auth.login_disabled": "停用账号尝试登录",
    "auth.password_change": "修改密码",
    "auth.token_create": "创建 API 令牌",
    "auth.token_revoke": "吊销 API 令牌",
    "auth.totp_enable": "开通动态口令",
    "auth.totp_failed": "动态口令错误",
    "auth.totp_replay": "动态口令重复使用",
    "user.create": "创建账号",
    "user.activate": "激活账号",
    "user.activation_refused": "拒绝激活",
    "user.password_reset": "重置账号",
    "user.disabled": "停用账号",
    "user.disabled_dormant": "停用长期未登录账号",
    "user.enabled": "启用账号",
    "user.role_changed": "修改角色",
    "user.expiry_set": "设置账号到期时间",
    "user.totp_enroll": "开通动态口令（命令行）",
    "delegation.create": "委托签署",
    "delegation.revoke": "撤销委托",
    "unit.import": "导入单位",
    "unit.import_failed": "导入单位失败",
    "campaign.create": "新建任务",
    "campaign.issue": "下发任务",
    "campaign.forward": "转交",
    "campaign.receive": "接收",
    "campaign.urge": "催办",
    "campaign.export_archive": "导出签署件",
    "campaign.export_ledger": "导出台账",
    "document.issue": "签发文书（使用单位证书）",
    "document.sign": "签章（使用单位证书）",
    "document.view": "查看文书",
    "document.revoke": "撤销文书",
    "document.timestamp": "加盖时间戳",
    "report.sign": "报表签章（使用单位证书）",
    "report.file": "报送材料",
    "case.create": "登记个案",
    "case.attempt": "记录劝返",
    "case.register": "生成一生一表",
    "case.status": "个案状态变更",
    "case.home_visit": "记录送教上门",
    "roster.import": "导入名单",
    "roster.import_failed": "导入名单失败",
    "roster.issue": "批量签发通知书",
    "retention.erase": "按期删除个人信息",
    "pki.maintain": "证书维护",
    "pki.rewrap": "重新加密私钥",
    "audit.checkpoint": "审计检查点",
    "audit.export": "导出审计日志",
    "notify.resend": "重发通知",
    "notify.contacts": "修改联系方式",
    "compare.upload": "上传比对名单",
    "compare.run": "四查三比对",
    "compare.answer": "答复比对线索",
    "webhook.subscribe": "订阅事件推送",
    "webhook.test": "测试事件推送",
    "webhook.replay": "重发事件推送",
}

#: The prefixes the audit page offers as quick filters.
ACTION_FILTERS = (
    ("", "全部"),
    ("access.denied", "拒绝访问"),
    ("auth.", "登录与令牌"),
    ("user.", "账号管理"),
    ("document.", "文书与签章"),
    ("audit.export", "导出审计日志"),
)

SUBJECT_TITLES = {
    "case": "个案",
    "case_list": "个案列表",
    "document": "文书",
    "roster": "名单",
    "ledger": "台账",
    "due_list": "到期事项",
    "campaign_archive": "签署件导出",
    "compare_findings": "比对线索",
    "exchange_compare": "学籍比对",
    "exchange_import": "平台名单导入",
    "info_report": "信息报告",
    "print_bundle": "打印包",
    "report_summary": "报表汇总",
}


def action_title(action: str) -> str:
    return ACTION_TITLES.get(action, action)


def subject_title(subject: str) -> str:
    return SUBJECT_TITLES.get(subject, subject)
