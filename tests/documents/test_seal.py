"""The ink a drawn signature must have before it is put on a document."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from service.documents.errors import ImageInvalid, SignatureTooSmall
from service.documents.seal import check_signature_ink
from tests.documents.test_sign import handwriting


def pad_png(draw: str, ratio: int = 2, width: int = 343) -> bytes:
    """What the signing pad (180 CSS px tall) sends at a screen density, transparent like the pad."""
    img = Image.new("RGBA", (width * ratio, 180 * ratio), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    ink = (17, 17, 17, 255)
    if draw == "tap":  # one tap: a dot of the pen's average width
        d.ellipse([(150 * ratio, 90 * ratio), (154.4 * ratio, 94.4 * ratio)], fill=ink)
    elif draw == "flick":  # a 20 px flick
        d.line([(150 * ratio, 90 * ratio), (170 * ratio, 92 * ratio)], fill=ink, width=2 * ratio)
    elif draw == "name":  # a quick, thin signature: three strokes
        for stroke in ([(30, 120), (60, 50), (90, 130)], [(110, 60), (150, 120), (190, 55)], [(210, 90), (290, 95)]):
            d.line([(x * ratio, y * ratio) for x, y in stroke], fill=ink, width=int(1.4 * ratio))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_a_tap_or_a_flick_is_not_a_signature(ratio: int) -> None:
    for draw in ("tap", "flick"):
        with pytest.raises(SignatureTooSmall) as err:
            check_signature_ink(pad_png(draw, ratio))
        assert "签名太短" in err.value.message and err.value.code == "SIGNATURE_TOO_SMALL"


@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_a_thin_quick_signature_passes_at_any_density(ratio: int) -> None:
    check_signature_ink(pad_png("name", ratio))
    check_signature_ink(pad_png("name", ratio, width=640))


def test_a_scanned_signature_passes_and_a_blank_one_is_refused() -> None:
    check_signature_ink(handwriting())
    with pytest.raises(ImageInvalid, match="空白"):
        check_signature_ink(pad_png("none"))
