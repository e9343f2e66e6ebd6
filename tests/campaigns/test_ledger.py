from __future__ import annotations

from service.campaigns.ledger import safe_cell


def test_text_a_spreadsheet_would_run_stays_text() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for risky in ("+1", "-2", "@SUM(A1)", "\tx"):
        assert str(safe_cell(risky)).startswith("'")
    assert safe_cell("历城区石河小学") == "历城区石河小学"
    assert safe_cell(12) == 12
