"""The archive stores: files kept under their SHA-256, written once (``base.ArchiveStore``).

:func:`open_store` picks the implementation from the settings alone: a local folder (the default,
``local.LocalArchive``, its files sealed with the keyring unless ``DOCSIGN_ARCHIVE_ENCRYPTION`` is
off) or an S3-compatible object store (``s3.S3Archive``, the scale-out profile, its objects
encrypted by the store unless ``DOCSIGN_S3_SERVER_SIDE_ENCRYPTION`` is off).
"""

from __future__ import annotations

from pathlib import Path

from service.crypto import keyring_for
from service.errors import ConfigurationError
from service.settings import Settings
from service.storage.base import ArchiveStore, OnRetry, StoreName
from service.storage.local import LocalArchive


def open_store(settings: Settings, name: StoreName, *, on_retry: OnRetry | None = None) -> ArchiveStore:
    """The store ``name`` of the configured archive: a local folder (the default, or ``file:``
    URLs), or an object store (``s3://bucket[/prefix]``, the scale-out profile), which calls
    ``on_retry`` while it waits for the object store to come back."""
    url = settings.archive_url
    if not url or url.startswith("file:"):
        root = Path(url.removeprefix("file://").removeprefix("file:")) if url else settings.archive_dir
        keyring = keyring_for(settings) if settings.archive_encryption else None
        if name == "documents":
            return LocalArchive(root, keyring=keyring, temp_root=settings.temp_dir)
        return LocalArchive(root / name, suffix="", keyring=keyring, temp_root=settings.temp_dir)
    if url.startswith("s3://"):
        from service.storage.s3 import S3Archive  # boto3 is loaded only by the scale-out profile

        return S3Archive.from_settings(settings, name, on_retry=on_retry)
    raise ConfigurationError(
        f"归档地址「{url}」无法识别：请留空（本地目录），或写成 file:///路径 或 s3://存储桶/前缀。"
    )
