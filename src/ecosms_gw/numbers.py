"""Recipient numbers to E.164, by the format's rule 9.

The rule is deliberately simpler than a numbering plan: 7 to 15 digits after the country
code, no letters. `phonenumbers` would refuse numbers the contract accepts (test ranges,
new ranges it does not know yet), so it is not used to validate.
"""

from __future__ import annotations

import re
from typing import Literal

DropReason = Literal["invalid_number", "international_not_allowed"]

_WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_DROP_SPACES = str.maketrans("", "", _WHITESPACE)
_DROP_PUNCTUATION = str.maketrans("", "", ".-()/")
_E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")


def to_e164(raw: str, country: str, international: bool) -> str | DropReason:
    """`+digits` for a valid number, else the reason it is dropped.

    `+…` and `00…` are international (where `(0)` is dropped first), one leading `0` is
    national and takes `country`, bare digits are already international.
    """
    number = raw.translate(_DROP_SPACES)
    if number.startswith(("+", "00")):
        number = number.replace("(0)", "").translate(_DROP_PUNCTUATION)
        digits = number[1:] if number.startswith("+") else number[2:]
    else:
        number = number.translate(_DROP_PUNCTUATION)
        digits = country + number[1:] if number.startswith("0") else number
    if not _E164_DIGITS.fullmatch(digits):
        return "invalid_number"
    if not international and not digits.startswith(country):
        return "international_not_allowed"
    return "+" + digits
