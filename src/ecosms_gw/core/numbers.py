"""Recipient numbers to E.164, by the format's rule 9.

The rule is deliberately simpler than a numbering plan: 7 to 15 digits after the country
code, no letters. `phonenumbers` would refuse numbers the contract accepts (test ranges,
new ranges it does not know yet), so it is not used to validate.
"""

from __future__ import annotations

import re
from typing import Literal

DropReason = Literal["invalid_number", "international_not_allowed"]

_SPACES = re.compile(r"\s+")  # Unicode whitespace, NBSP and thin spaces included
_PUNCTUATION = re.compile(r"[.\-()/]+")
_E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")


def to_e164(raw: str, country: str, international: bool) -> str | DropReason:
    """`+digits` for a valid number, else the reason it is dropped.

    `+…` and `00…` are international (where `(0)` is dropped first), one leading `0` is
    national and takes `country`, bare digits are already international.
    """
    number = raw if raw.isascii() and raw.isdigit() else _cleaned(raw)
    if number.startswith("+"):
        digits = number[1:]
    elif number.startswith("00"):
        digits = number[2:]
    elif number.startswith("0"):
        digits = country + number[1:]
    else:
        digits = number
    if not _E164_DIGITS.fullmatch(digits):
        return "invalid_number"
    if not international and not digits.startswith(country):
        return "international_not_allowed"
    return "+" + digits


def _cleaned(raw: str) -> str:
    number = _SPACES.sub("", raw)
    if number.startswith(("+", "00")):
        number = number.replace("(0)", "")
    return _PUNCTUATION.sub("", number)
