"""CSV cells a spreadsheet opens as text, never as a formula."""

from __future__ import annotations

import pytest

from ecosms_gw.core.cells import cell


@pytest.mark.parametrize(("value", "written"), [
    ('=HYPERLINK("http://evil.test")', '\'=HYPERLINK("http://evil.test")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("+33612345678", "+33612345678"),  # a number, signed
    ("-5", "-5"),
    ("-2.5", "-2.5"),
    ("Spring sale", "Spring sale"),
    ("", ""),
    (42, 42),
    (None, None),
])
def test_text_that_would_start_a_formula_is_shown_as_text(value: object, written: object) -> None:
    assert cell(value) == written
