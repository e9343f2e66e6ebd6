"""Errors of the document pipeline, each with a stable code and a Chinese message."""

from __future__ import annotations

from service.errors import DocsignError, InvalidInput, NotFound


class UnknownDocumentKind(NotFound):
    code = "UNKNOWN_TEMPLATE"
    default_message = "没有这种文书模板。运行 docsign templates 查看可用模板。"


class FieldsInvalid(InvalidInput):
    code = "FIELDS_INVALID"
    default_message = "文书字段填写有误，请按提示逐项修改。"


class TemplateInvalid(InvalidInput):
    code = "TEMPLATE_INVALID"
    default_message = "模板文件无法读取，请确认它是用 Word 或 WPS 保存的 .docx 文件。"


class TemplateUnsafe(InvalidInput):
    code = "TEMPLATE_UNSAFE"
    default_message = "模板中含有不允许的表达式（只能使用字段名和简单的格式化），请修改模板后重新上传。"


class TemplateRenderFailed(InvalidInput):
    code = "TEMPLATE_RENDER_FAILED"
    default_message = "模板填充失败，请检查模板中的字段标记是否完整、拼写是否正确。"


class ConversionError(DocsignError):
    code = "CONVERSION_FAILED"
    http_status = 500
    default_message = "文书转换为 PDF 失败，请稍后重试；如果反复出现，请检查模板是否损坏。"


class ConversionTimeout(ConversionError):
    code = "CONVERSION_TIMEOUT"
    http_status = 504
    default_message = "文书转换为 PDF 超时，转换程序已重启，请稍后重试。"


class ConverterCrashed(ConversionError):
    code = "CONVERTER_CRASHED"
    http_status = 503
    default_message = "转换程序（LibreOffice）意外退出，已自动重启，请重新提交。"


class ConverterUnavailable(ConversionError):
    code = "CONVERTER_UNAVAILABLE"
    http_status = 503
    default_message = "未找到可用的 LibreOffice 转换程序，请先运行 scripts/setup 安装系统依赖。"


class LayoutError(DocsignError):
    code = "LAYOUT_ERROR"
    http_status = 500
    default_message = "无法在 PDF 中找到签章位置，请确认模板中的签章书签未被删除。"


class SigningError(DocsignError):
    code = "SIGNING_FAILED"
    http_status = 500
    default_message = "数字签名失败，请检查证书配置后重试。"


class TimestampUnavailable(SigningError):
    code = "TSA_UNAVAILABLE"
    http_status = 503
    default_message = "时间戳服务暂时无法访问，文书没有签署。请稍后重试；如果持续出现，请联系管理员检查时间戳服务地址。"


class AlreadySigned(InvalidInput):
    code = "ALREADY_SIGNED"
    http_status = 409
    default_message = "该文书的这一签署位置已经签过，不能重复签署。"


class NotSignable(InvalidInput):
    code = "NOT_SIGNABLE"
    http_status = 409
    default_message = "该文书没有可供此单位签署的位置。"


class PdfInvalid(InvalidInput):
    code = "PDF_INVALID"
    default_message = "上传的文件不是有效的 PDF 文件。"


class ImageInvalid(InvalidInput):
    code = "IMAGE_INVALID"
    default_message = "签名图片无法读取，请上传 PNG 或 JPEG 图片。"


class SignatureTooSmall(InvalidInput):
    code = "SIGNATURE_TOO_SMALL"
    default_message = "签名太短，像是只点了一下。请在签名框中用手指或鼠标写下完整的签名。"


class VerifierBusy(DocsignError):
    code = "VERIFIER_BUSY"
    http_status = 503
    default_message = "在线验证的人数较多，请稍后再试。"


class VerifierFull(VerifierBusy):
    """Every place in the upload checks' line is taken: answered at once, with when to try again."""

    code = "UPLOADS_BUSY"
    http_status = 429

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after))
        super().__init__(
            f"正在核对的上传文件较多，请 {seconds} 秒后再上传；扫码和输入验证码查询不受影响。",
            details={"retry_after": seconds},
        )
        self.retry_after = seconds
