from __future__ import annotations

import pytest

from service.documents.errors import LayoutError
from service.documents.placement import Anchor, place_all, place_slot, placement_in_box
from service.documents.registry import KINDS
from service.documents.seal import SEAL_DIAMETER


def test_dated_seal_is_centred_on_the_unit_name_over_the_date() -> None:
    kind = KINDS["enrollment_notice"]
    (p,) = place_all(kind, {"sigissuer": Anchor(0, 300.0, 200.0)}, {"issuer_name": "某某局"})
    x0, y0, x1, y1 = p.box  # type: ignore[misc]
    assert x1 - x0 == pytest.approx(SEAL_DIAMETER) and y1 - y0 == pytest.approx(SEAL_DIAMETER)
    assert (x0 + x1) / 2 == pytest.approx(300 + 24)  # three 16 pt characters
    assert y0 < 200 - 29 < y1  # the seal covers the name line and the date line below


def test_a_later_signer_field_is_rebuilt_from_its_rectangle() -> None:
    slot = KINDS["pledge"].later_signers[0]
    placed = place_slot(slot, {"sigschool": Anchor(1, 280.0, 330.0)}, {})
    again = placement_in_box(slot, placed.box, 1)  # type: ignore[arg-type]
    assert again.box == pytest.approx(placed.box)
    assert again.seal_at == pytest.approx(placed.seal_at)
    assert again.signature_box == pytest.approx(placed.signature_box)


def test_missing_bookmark_is_a_clear_error() -> None:
    with pytest.raises(LayoutError) as exc:
        place_all(KINDS["dropout_register"], {}, {"school_name": "某校"})
    assert "sigissuer" in exc.value.message


def test_invisible_issuer_of_the_pledge() -> None:
    issuer, unit = place_all(KINDS["pledge"], {"sigschool": Anchor(0, 280.0, 330.0)}, {})
    assert issuer.box is None and unit.box is not None
