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
