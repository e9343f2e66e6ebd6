"""Errors of the key and certificate store."""

from __future__ import annotations

from service.errors import DocsignError, InvalidInput, NotFound


class PkiNotInitialized(DocsignError):
    code = "PKI_NOT_INITIALIZED"
    http_status = 503
    default_message = "本地证书尚未创建，请先运行 docsign init。"


class PkiPassphraseWrong(DocsignError):
    code = "PKI_PASSPHRASE_WRONG"
    http_status = 500
    default_message = "无法解开私钥：证书口令（DOCSIGN_PKI_PASSPHRASE）与创建证书时的口令不一致。"


class UnitCertificateMissing(NotFound):
    code = "UNIT_CERTIFICATE_MISSING"
    default_message = "该单位还没有签章证书，请先为其签发或导入证书。"


class CertificateRevoked(DocsignError):
    code = "CERTIFICATE_REVOKED"
    http_status = 409
    default_message = "该单位的签章证书已吊销，不能再用于签署。请重新签发证书。"


class CertificateExpired(DocsignError):
    code = "CERTIFICATE_EXPIRED"
    http_status = 409
    default_message = "该单位的签章证书已过期，请重新签发或导入证书。"


class Pkcs12Invalid(InvalidInput):
    code = "PKCS12_INVALID"
    default_message = "无法读取 PKCS#12 证书文件：文件已损坏或密码不正确。"


class UnitKeyInvalid(InvalidInput):
    code = "UNIT_KEY_INVALID"
    default_message = "单位标识只能包含小写字母、数字、短横线和下划线，长度不超过64个字符。"


class UnitNameMismatch(InvalidInput):
    code = "UNIT_NAME_MISMATCH"
    http_status = 409
    default_message = "该单位标识已有证书，但证书上的单位名称与本次提供的不一致。"


class CertificateNotRenewable(DocsignError):
    code = "CERTIFICATE_NOT_RENEWABLE"
    http_status = 409
    default_message = "该单位使用导入的证书，本地证书中心不能为其续期。请向发证机构申请新证书后重新导入。"


class IssuingCaExpiring(DocsignError):
    code = "ISSUING_CA_EXPIRING"
    http_status = 409
    default_message = "签发中心证书即将到期，新签发的证书不能比它有效更久。请联系系统管理员更换签发中心证书。"


class RevocationInvalid(DocsignError):
    code = "REVOCATION_INVALID"
    http_status = 422
    default_message = "吊销参数无效。"


class RootKeyOffline(DocsignError):
    code = "ROOT_KEY_OFFLINE"
    http_status = 409
    default_message = (
        "根证书私钥已离线保存（docsign init --export-root-key 导出后已从本机删除），此操作需要它："
        "请带上导出的根证书私钥文件，用 --root-key 文件 重新运行。"
    )


class RootKeyInvalid(InvalidInput):
    code = "ROOT_KEY_INVALID"
    default_message = "无法使用所给的根证书私钥文件：文件已损坏、口令不正确，或它不是本证书中心根证书的私钥。"


class TokenNotConfigured(DocsignError):
    code = "PKCS11_NOT_CONFIGURED"
    http_status = 409
    default_message = (
        "未配置 PKCS#11 令牌：请设置 DOCSIGN_PKCS11_MODULE（模块路径）、DOCSIGN_PKCS11_TOKEN（令牌标签）"
        "和 DOCSIGN_PKCS11_PIN 或 DOCSIGN_PKCS11_PIN_FILE（PIN）。"
    )


class TokenUnavailable(DocsignError):
    code = "PKCS11_UNAVAILABLE"
    http_status = 503
    default_message = (
        "无法使用 PKCS#11 令牌：令牌未插入、标签不对、PIN 不正确或已锁定。请检查令牌和 DOCSIGN_PKCS11_* 设置。"
    )


class TokenKeyNotExportable(DocsignError):
    code = "PKCS11_KEY_NOT_EXPORTABLE"
    http_status = 409
    default_message = "该私钥保存在 PKCS#11 令牌中，不能导出，只能由令牌完成签名。"
