"""Cells of the CSV files we write (API reads, opt-out exports), safe to open in a
spreadsheet: text someone else chose (a mailing's name, a reply) must never run there."""

from __future__ import annotations

import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet takes as a formula (OWASP)
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def cell(value: object) -> object:
    """The value, or for text that would start a formula the same text after an apostrophe,
    which a spreadsheet shows as text. A plain number (+33612345678, -5) stays as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
