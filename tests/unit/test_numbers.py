"""Rule 9: recipient numbers to E.164."""

from __future__ import annotations

import pytest

from ecosms_gw.core.numbers import to_e164


@pytest.mark.parametrize(("raw", "expected"), [
    ("447123456789", "+447123456789"),  # bare digits are international
    ("+44 7123 456789", "+447123456789"),
    ("0044 (0)7123-456.789", "+447123456789"),  # (0) removed in an international number
    ("+33 (0)6 12 34 56 78", "+33612345678"),
    ("06 12 34 56 78", "+33612345678"),  # national: one leading 0 takes the default country
    ("06.12.34.56.78", "+33612345678"),
    ("(06) 12/34-56\xa078", "+33612345678"),  # NBSP is whitespace too
    ("\u202f0612345678\u2009", "+33612345678"),
    ("1234567", "+1234567"),  # 7 digits: the shortest accepted
    ("123456789012345", "+123456789012345"),  # 15 digits: the longest
])
def test_valid_numbers(raw: str, expected: str) -> None:
    assert to_e164(raw, "33", international=True) == expected


@pytest.mark.parametrize("raw", [
    "", "06x", "+33 6 12 34 56 7A", "123456", "1234567890123456", "+0612345678",
    "000612345678", "+", "٠٦١٢٣٤٥٦٧٨",  # Arabic-Indic digits are not ASCII digits
    "+33 6 12 34 56 78 ext 9", "33612345678;",
])
def test_invalid_numbers_are_named(raw: str) -> None:
    assert to_e164(raw, "33", international=True) == "invalid_number"


def test_without_international_option_only_the_own_country_passes() -> None:
    assert to_e164("0612345678", "33", international=False) == "+33612345678"
    assert to_e164("+33612345678", "33", international=False) == "+33612345678"
    assert to_e164("+447123456789", "33", international=False) == "international_not_allowed"
    assert to_e164("07123456789", "44", international=False) == "+447123456789"
