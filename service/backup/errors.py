"""What a backup or a restore refuses, each with a stable code."""

from __future__ import annotations

from service.errors import DocsignError, InvalidInput


class BackupPassphraseWrong(InvalidInput):
    code = "BACKUP_PASSPHRASE_WRONG"
    default_message = (
        "备份口令（或密钥文件）不对，无法打开这份备份；没有恢复任何内容。请使用创建备份时的口令或密钥文件。"
    )


class BackupTampered(DocsignError):
    code = "BACKUP_TAMPERED"
    http_status = 422
    default_message = "备份文件未通过校验：已被改动、损坏或不完整；没有恢复任何内容。请换一份完好的备份。"


class BackupTargetNotEmpty(InvalidInput):
    code = "BACKUP_TARGET_NOT_EMPTY"
    default_message = "只能恢复到全新的空安装中；没有恢复任何内容。"


class BackupIncompatible(InvalidInput):
    """The backup cannot go where the settings point (another database kind, a newer version)."""

    code = "BACKUP_INCOMPATIBLE"
    default_message = "这份备份不能恢复到当前配置的安装中；没有恢复任何内容。"


class BackupToolMissing(DocsignError):
    code = "BACKUP_TOOL_MISSING"
    http_status = 500
    default_message = "备份 PostgreSQL 数据库需要与服务器版本相符的 pg_dump 和 pg_restore，本机没有找到。"


class BackupTargetExists(InvalidInput):
    code = "BACKUP_TARGET_EXISTS"
    default_message = "备份目录已存在且不是空的；请指定一个新的目录。"


class BackupFailed(DocsignError):
    """A step of a backup or a restore failed for a reason its message names."""

    code = "BACKUP_FAILED"
    http_status = 500
    default_message = "备份或恢复未能完成；已写入的部分已删除。"
