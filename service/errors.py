"""The error tree: one base with a Chinese message for people and a stable code for programs.

Domain errors live next to the code that raises them and subclass :class:`DocsignError`.
One handler turns them into HTTP responses, one place (``cli.py``) into CLI messages.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DocsignError(Exception):
    """Base of every error a user or a program may see.

    ``code`` is stable (programs match on it), ``message`` is Chinese and says what to do next,
    ``details`` carries structured data (for example every invalid field).
    """

    code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "服务内部错误，请稍后重试；如果反复出现，请联系管理员。"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


class InvalidInput(DocsignError):
    code = "INVALID_INPUT"
    http_status = 422
    default_message = "输入有误，请检查后重试。"


class NotFound(DocsignError):
    code = "NOT_FOUND"
    http_status = 404
    default_message = "未找到请求的对象。"


class ConfigurationError(DocsignError):
    code = "CONFIGURATION_ERROR"
    http_status = 500
    default_message = "服务配置有误，请联系管理员检查配置。"


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
