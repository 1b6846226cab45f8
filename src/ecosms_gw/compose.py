"""Parsed bodies to the final messages of one submission (an e-mail or a file).

Rules 7 to 17 of the format: numbers, placeholders, NFC, GSM or UCS-2, parts, empty
texts, duplicates, the cap, and the reason for every recipient left out. The hot loop
runs once per recipient, so a text without placeholders is processed once per block and
every step is a C-level string operation.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

from . import gsm
from .mail2sms import Body, Rejected
from .numbers import to_e164

# `#n#` and `(%n)` with n >= 1; anything else with a `#` stays as written.
_PLACEHOLDER = re.compile(r"#0*([1-9][0-9]*)#|\(%0*([1-9][0-9]*)\)")
MAX_FIELD_INDEX = 999  # a placeholder beyond it is always empty (no real list has that many)


@dataclass(frozen=True, slots=True)
class AccountRules:
    """What composition needs to know of the account a body names."""

    country: str = "33"
    timezone: str = "Europe/Paris"
    international: bool = True
    encoding: gsm.Encoding = "gsm7"
    max_messages: int = 2000
    max_text_chars: int = 1024


class Message(NamedTuple):
    recipient: str  # E.164
    text: str  # final text as stored (ç kept in GSM mode)
    encoding: gsm.Encoding
    units: int  # septets or UTF-16 units
    segments: int
    send_at: datetime | None  # UTC; None: now
    line: int  # of the recipient, in its body
    body: int  # 1-based index of the body in the e-mail


class Dropped(NamedTuple):
    line: int
    recipient: str  # E.164 when the number was valid, else as written
    reason: str
    body: int


@dataclass(frozen=True, slots=True)
class Composition:
    account: str
    send_at: datetime | None  # of the first body
    messages: list[Message]
    dropped: list[Dropped]
    warnings: list[str]
    transliterated: dict[str, str] = field(default_factory=dict)  # char -> replacement

    @property
    def parts(self) -> int:
        return sum(message.segments for message in self.messages)


class _Final(NamedTuple):
    text: str
    units: int
    segments: int
    empty: bool


class _Template:
    """A text with placeholders, compiled once into a `str.format` pattern: one C-level
    pass per recipient, and field values are never scanned for placeholders again."""

    def __init__(self, text: str) -> None:
        pieces: list[str] = []
        self.width = position = 0
        for match in _PLACEHOLDER.finditer(text):
            pieces.append(_escape(text[position:match.start()]))
            index = int(match[1] or match[2])
            if index <= MAX_FIELD_INDEX:
                pieces.append("{%d}" % (index - 1))
                self.width = max(self.width, index)
            position = match.end()
        pieces.append(_escape(text[position:]))
        self.pattern = "".join(pieces)

    def render(self, fields: tuple[str, ...]) -> str:
        if len(fields) < self.width:
            fields += ("",) * (self.width - len(fields))
        return self.pattern.format(*fields)


def _escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


class _TextProcessor:
    """Rule 10's order: (substituted) text -> NFC -> GSM reduction -> length -> parts."""

    def __init__(self, rules: AccountRules, transliterated: dict[str, str]) -> None:
        self.encoding = rules.encoding
        self.max_chars = rules.max_text_chars
        self.transliterated = transliterated
        self.cache: dict[str, _Final] = {}

    def __call__(self, text: str, line: int, body: int) -> _Final:
        final = self.cache.get(text)
        if final is None:
            final = self.cache[text] = self._process(text, line, body)
        return final

    def _process(self, text: str, line: int, body: int) -> _Final:
        result = gsm.normalize(text)
        if self.encoding == "gsm7":
            reduced = gsm.to_gsm_text(result)
            if reduced != result:
                self.transliterated.update(gsm.transliterations(result))
            result = reduced
        if len(result) > self.max_chars:
            raise Rejected("text_too_long",
                           f"{len(result)} characters, at most {self.max_chars}", line, body)
        units = gsm.units(result, self.encoding)
        return _Final(result, units, gsm.segment_count(result, self.encoding, units),
                      not result.strip())


def send_time(date: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A body's date in UTC: a wall-clock date is read in the account's zone, with the
    offset in force on that date."""
    if date is None:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=zone)
    return date.astimezone(timezone.utc)


def compose(bodies: Sequence[Body], rules: AccountRules,
            opted_out: Container[str] = frozenset()) -> Composition:
    """All final messages of one e-mail or file, or `Rejected` for the whole of it."""
    zone = ZoneInfo(rules.timezone)
    account = bodies[0].account
    messages: list[Message] = []
    dropped: list[Dropped] = []
    warnings: list[str] = []
    transliterated: dict[str, str] = {}
    process = _TextProcessor(rules, transliterated)
    seen: set[tuple[str, str, datetime | None]] = set()
    encoding, country, international = rules.encoding, rules.country, rules.international

    for index, body in enumerate(bodies, 1):
        where = f"body {index}, " if len(bodies) > 1 else ""
        if body.account != account:
            raise Rejected("multiple_accounts",
                           f"body {index} names {body.account}, body 1 names {account}",
                           body.account_line, index)
        send_at = send_time(body.date, zone)
        for recipient in body.recipients_before_text:
            dropped.append(Dropped(recipient.line, recipient.number, "recipient_before_text", index))
        for line in body.texts_without_recipient:
            warnings.append(f"{where}line {line}: text without recipient, ignored")
        for block in body.blocks:
            template = _Template(block.text) if _PLACEHOLDER.search(block.text) else None
            final = None if template else process(block.text, block.line, index)
            for recipient in block.recipients:
                if template:
                    final = process(template.render(recipient.fields), block.line, index)
                number = to_e164(recipient.number, country, international)
                if number[0] != "+":
                    dropped.append(Dropped(recipient.line, recipient.number, number, index))
                    continue
                if final.empty:
                    dropped.append(Dropped(recipient.line, number, "empty_text", index))
                    continue
                if number in opted_out:
                    dropped.append(Dropped(recipient.line, number, "opted_out", index))
                    continue
                key = (number, final.text, send_at)
                if key in seen:
                    dropped.append(Dropped(recipient.line, number, "duplicate", index))
                    continue
                seen.add(key)
                messages.append(Message(number, final.text, encoding, final.units,
                                        final.segments, send_at, recipient.line, index))

    if not messages:
        raise Rejected("no_messages", "no recipient left to send to")
    if len(messages) > rules.max_messages:
        raise Rejected("too_many_messages",
                       f"{len(messages)} messages, at most {rules.max_messages}")
    return Composition(account, send_time(bodies[0].date, zone), messages, dropped,
                       warnings, transliterated)
