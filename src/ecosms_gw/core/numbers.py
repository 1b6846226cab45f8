"""Recipient numbers to E.164, by the format's rule 9.

The rule is deliberately simpler than a numbering plan: 7 to 15 digits after the country
code, no letters. `phonenumbers` would refuse numbers the contract accepts (test ranges,
new ranges it does not know yet), so it does not decide what is sent: it only says, when
a number is checked, whether the plan knows it and of what type it is.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Container, Iterable
from typing import Literal, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType, timezone

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


def listed(lines: Iterable[str]) -> list[str]:
    """The numbers of a list as people export them: CSV with the number first (a header
    line naming it is skipped), or one number a line."""
    return [row[0].strip() for row in csv.reader(lines)
            if row and row[0].strip() and row[0].strip().lower() not in ("number", "recipient", "phone")]


def e164_all(raws: Iterable[str], country: str) -> tuple[list[str], list[str]]:
    """The distinct E.164 forms of a list, sorted (any country: an opt-out list may hold
    numbers the account cannot send to), and the items that are not phone numbers."""
    found, bad = set(), []
    for raw in raws:
        number = to_e164(raw, country, international=True)
        if number[0] == "+":
            found.add(number)
        else:
            bad.append(raw)
    return sorted(found), bad


class Checked(NamedTuple):
    """A number as the `number` resource and `ecosms-gw numbers check` show it."""
    number: str  # as given
    valid: bool  # in the numbering plan (phonenumbers' metadata)
    e164: str | None  # its E.164 form by rule 9, None when it has none
    country: str | None  # ISO 3166 region, e.g. FR
    dialing_code: str | None  # e.g. 33
    type: str  # mobile, fixed_line, ... unknown
    opted_out: bool
    reason: str | None  # why a mailing to it would leave it out; None: it would be sent

    def document(self) -> dict[str, object]:
        return dict(zip(PROPERTIES, self, strict=True))


def zones(e164: str) -> tuple[str, ...]:
    """The time zones a number may be in (phonenumbers' geographic data); none when unknown."""
    try:
        found = timezone.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(zone for zone in found if zone != "Etc/Unknown")


PROPERTIES = ("number", "valid", "e164", "country", "dialingCode", "type", "optedOut", "reason")  # as shown
HISTORY = "history"  # the number's opt-out changes: read only when asked


_TYPES = {PhoneNumberType.MOBILE: "mobile", PhoneNumberType.FIXED_LINE: "fixed_line",
          PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile", PhoneNumberType.VOIP: "voip",
          PhoneNumberType.TOLL_FREE: "toll_free", PhoneNumberType.PREMIUM_RATE: "premium_rate"}


def check(raw: str, country: str, international: bool, opted_out: Container[str] = frozenset()) -> Checked:
    """What a mailing to `raw` would do (the same rules as composition: rule 9, then the
    opt-out list), and what the numbering plan says of it."""
    e164 = to_e164(raw, country, international=True)
    if e164[0] != "+":
        return Checked(raw, False, None, None, None, "unknown", False, e164)
    reason = to_e164(raw, country, international)
    parsed = phonenumbers.parse(e164)
    opted = e164 in opted_out
    return Checked(raw, phonenumbers.is_valid_number(parsed), e164, phonenumbers.region_code_for_number(parsed),
                   str(parsed.country_code), _TYPES.get(phonenumbers.number_type(parsed), "unknown"), opted,
                   reason if reason[0] != "+" else "opted_out" if opted else None)
