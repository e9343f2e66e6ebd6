"""Uploads with size limits, and images given as data URLs (what a signature pad produces)."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import UploadFile  # FastAPI's UploadFile is a subclass: both are read here

from service.errors import UploadInvalid, UploadTooLarge


async def read_upload(file: UploadFile, limit: int, what: str) -> bytes:
    """The whole upload, refusing it as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        chunk = await file.read(1024 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"{what}过大：最大 {limit // (1024 * 1024) or 1} MB。")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise UploadInvalid(f"{what}是空的。")
    return data


def decode_image(data_url: str, limit: int, what: str) -> bytes:
    """A PNG/JPEG given as a data URL (what a signature pad produces) or bare base64."""
    text = data_url.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header or not header.startswith(("data:image/png", "data:image/jpeg")):
            raise UploadInvalid(f"{what}应为 PNG 或 JPEG 图片。")
    if len(text) > limit * 4 // 3 + 8:
        raise UploadTooLarge(f"{what}过大：最大 {limit // 1024} KB。")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadInvalid(f"{what}的编码无效（应为 base64）。") from None
    if not data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        raise UploadInvalid(f"{what}应为 PNG 或 JPEG 图片。")
    return data
