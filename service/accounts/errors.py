from __future__ import annotations

from service.errors import DocsignError, InvalidInput


class AuthFailed(DocsignError):
    code = "AUTH_FAILED"
    http_status = 401
    default_message = "用户名或密码错误。"


class NotAuthenticated(DocsignError):
    code = "NOT_AUTHENTICATED"
    http_status = 401
    default_message = "请先登录。"


class Forbidden(DocsignError):
    code = "FORBIDDEN"
    http_status = 403
    default_message = "您的账号没有进行此操作的权限。"


class TooManyRequests(DocsignError):
    code = "TOO_MANY_REQUESTS"
    http_status = 429
    default_message = "请求过于频繁，请稍后再试。"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message or f"请求过于频繁，请 {retry_after} 秒后再试。", details={"retry_after": retry_after})
        self.retry_after = retry_after


class UserInvalid(InvalidInput):
    code = "USER_INVALID"
    default_message = "账号信息有误。"


class TotpRequired(DocsignError):
    code = "TOTP_REQUIRED"
    http_status = 401
    default_message = "请输入动态口令（手机验证器中的 6 位数字）或一个恢复码。"


class TotpNotEnrolled(DocsignError):
    code = "TOTP_NOT_ENROLLED"
    http_status = 403
    default_message = (
        "您的账号须使用动态口令登录，但尚未开通。请联系教体局管理员运行 docsign user totp <用户名> 为您开通。"
    )


class PasswordChangeRequired(DocsignError):
    code = "PASSWORD_CHANGE_REQUIRED"
    http_status = 403
    default_message = "管理员已重置您的密码：请先修改密码（页面 /password，接口 POST /api/auth/password）。"


class TotpReplayed(DocsignError):
    code = "TOTP_REPLAYED"
    http_status = 401
    default_message = (
        "这个动态口令已经用过（每个 6 位数字只能使用一次）。请等手机验证器显示下一个数字后再输入；"
        "如非本人刚刚登录，请立即联系管理员。"
    )


class ActivationInvalid(DocsignError):
    code = "ACTIVATION_INVALID"
    http_status = 404
    default_message = "激活链接无效或已经用过。请向教体局的系统管理员或安全管理员索取新的激活链接。"


class ActivationExpired(DocsignError):
    code = "ACTIVATION_EXPIRED"
    http_status = 410
    default_message = "激活链接已过期。请向教体局的系统管理员或安全管理员索取新的激活链接。"


class ActivationSignedIn(DocsignError):
    code = "ACTIVATION_SIGNED_IN"
    http_status = 409
    default_message = "激活链接须由账号本人打开：请先退出当前登录的账号，或在本人的手机或电脑上打开激活链接。"


class TokenReadOnly(DocsignError):
    code = "TOKEN_READ_ONLY"
    http_status = 403
    default_message = "这个 API 令牌只能读取（access=read），不能提交修改。"


class TokenOutOfScope(DocsignError):
    code = "TOKEN_OUT_OF_SCOPE"
    http_status = 403
    default_message = "这个 API 令牌不能用于该接口。"


class AccountDisabled(DocsignError):
    """The right password of an account that is disabled or past its end: its holder is told why
    (an intruder who knows the password learns nothing they could use)."""

    code = "ACCOUNT_DISABLED"
    http_status = 403
    default_message = "账号已停用，请联系教体局的系统管理员。"
