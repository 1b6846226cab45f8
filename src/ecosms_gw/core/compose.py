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
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ecosms_gw.core import gsm
from ecosms_gw.core.mail2sms import Body, Rejected
from ecosms_gw.core.numbers import to_e164

# `#n#` and `(%n)` with n >= 1; anything else with a `#` stays as written.
_PLACEHOLDER = re.compile(r"#0*([1-9][0-9]*)#|\(%0*([1-9][0-9]*)\)")
MAX_FIELD_INDEX = 999  # a placeholder beyond it is always empty (no real list has that many)


@dataclass(frozen=True, slots=True)
class AccountRules:
    """What composition needs to know of the account a body names."""

    country: str = "33"
    timezone: str = "Europe/Paris"
    international: bool = True
    encoding: gsm.Choice = "gsm7"
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
    encoding: gsm.Choice = "gsm7"
    no_gsm: dict[str, None] = field(default_factory=dict)  # `auto`: the characters that chose UCS-2

    @property
    def parts(self) -> int:
        return sum(message.segments for message in self.messages)


class _Final(NamedTuple):
    text: str
    units: int
    segments: int
    empty: bool
    encoding: gsm.Encoding


_new_final = tuple.__new__  # _Final(...) without the Python-level namedtuple __new__


class _Texts:
    """Rule 10's order for every text of one submission: (substituted) text -> NFC ->
    GSM reduction (recording what it changed) -> length -> units and parts. In `auto`
    mode the reduction waits for the final text: GSM when it deletes nothing, else UCS-2."""

    def __init__(self, rules: AccountRules) -> None:
        self.encoding = rules.encoding
        self.max_chars = rules.max_text_chars
        self.transliterated: dict[str, str] = {}  # char -> replacement
        self.no_gsm: dict[str, None] = {}  # `auto`: the characters that chose UCS-2

    def reduce(self, text: str) -> str:
        """NFC, then in text mode the seed's transliterations and the deletions."""
        text = gsm.normalize(text)
        if self.encoding == "gsm7":
            reduced = gsm.to_gsm_text(text)
            if reduced != text:
                self.transliterated.update(gsm.transliterations(text))
            return reduced
        return text

    def unchanged_by_reduce(self, fields: str) -> bool:
        """Fields (joined) that NFC and GSM reduction leave as they are, in a few C-level
        checks: ASCII, and in text mode printable without a backtick."""
        if self.encoding == "gsm7":
            return fields.isascii() and fields.isprintable() and "`" not in fields
        return fields.isascii()

    def final(self, text: str, line: int, body: int) -> _Final:
        """A reduced text with its length checked, its encoding chosen, its units and parts
        counted."""
        encoding = self.encoding
        if encoding == "auto":
            text, encoding = self._choose(text)
        if len(text) > self.max_chars:
            raise Rejected("text_too_long",
                           f"{len(text)} characters, at most {self.max_chars}", line, body)
        if encoding == "gsm7":
            units, single_limit = gsm.septet_count(text), gsm.GSM_SINGLE_LIMIT
        else:
            units, single_limit = gsm.utf16_units(text), gsm.UCS2_SINGLE_LIMIT
        segments = 1 if units <= single_limit else gsm.segment_count(text, encoding, units)
        return _new_final(_Final, (text, units, segments, not text.strip(), encoding))

    def _choose(self, text: str) -> tuple[str, gsm.Encoding]:
        """`auto`: the GSM form when nothing is deleted, else the text as UCS-2."""
        reduced = gsm.auto_gsm_text(text)
        if reduced is None:
            self.no_gsm.update(dict.fromkeys(gsm.not_gsm(text)))
            return text, "ucs2"
        if reduced != text:
            self.transliterated.update(gsm.auto_changes(text))
        return reduced, "gsm7"


class _Template:
    """A text with placeholders, compiled once into `str.format` patterns: one C-level
    pass per recipient, and field values are never scanned for placeholders again.

    Reduction works character by character, so when NFC cannot join a field to the text
    around it (plain ASCII fields, NFC literals, no literal starting with a non-ASCII
    character after a field) the literals are reduced once here and only the fields are
    looked at per recipient.
    """

    def __init__(self, text: str, texts: _Texts) -> None:
        self.texts = texts
        literals: list[str] = []
        slots: list[str] = []
        self.width = position = 0
        for match in _PLACEHOLDER.finditer(text):
            index = int(match[1] or match[2])
            literals.append(text[position:match.start()])
            slots.append(f"{{{index - 1}}}" if index <= MAX_FIELD_INDEX else "")
            self.width = max(self.width, index if index <= MAX_FIELD_INDEX else 0)
            position = match.end()
        literals.append(text[position:])
        slots.append("")
        self.pattern = "".join(_escape(lit) + slot for lit, slot in zip(literals, slots, strict=True))
        self.joinable = all(gsm.is_nfc(lit) for lit in literals) and all(
            not lit or lit[0].isascii() for lit in literals[1:])
        self.reduced_pattern = "".join(
            _escape(texts.reduce(lit)) + slot for lit, slot in zip(literals, slots, strict=True)
        ) if self.joinable else ""

    def render(self, fields: tuple[str, ...]) -> str:
        """The reduced text for one recipient's fields."""
        if len(fields) < self.width:
            fields += ("",) * (self.width - len(fields))
        if self.joinable and self.texts.unchanged_by_reduce("".join(fields)):
            return self.reduced_pattern.format(*fields)
        return self.texts.reduce(self.pattern.format(*fields))


def _escape(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


def send_time(date: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A body's date in UTC: a wall-clock date is read in the account's zone, with the
    offset in force on that date."""
    if date is None:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=zone)
    return date.astimezone(UTC)


def compose(bodies: Sequence[Body], rules: AccountRules,
            opted_out: Container[str] = frozenset()) -> Composition:
    """All final messages of one e-mail or file, or `Rejected` for the whole of it."""
    zone = ZoneInfo(rules.timezone)
    account = bodies[0].account
    messages: list[Message] = []
    dropped: list[Dropped] = []
    warnings: list[str] = []
    texts = _Texts(rules)
    seen: set[tuple[str, str, datetime | None]] = set()
    country, international = rules.country, rules.international
    new_message, final_of = tuple.__new__, texts.final  # Message(...) without namedtuple's __new__
    max_messages, over_cap = rules.max_messages, False

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
            template = _Template(block.text, texts) if _PLACEHOLDER.search(block.text) else None
            final = None if template else final_of(texts.reduce(block.text), block.line, index)
            for line, raw_number, fields in block.recipients:
                if template:
                    final = final_of(template.render(fields), block.line, index)
                elif over_cap:
                    break  # refused anyway; only a text too long could still win
                if over_cap:
                    continue
                assert final is not None  # a template renders each recipient's text, else it is known
                number = to_e164(raw_number, country, international)
                if number[0] != "+":
                    dropped.append(Dropped(line, raw_number, number, index))
                    continue
                text = final.text
                if final.empty:
                    dropped.append(Dropped(line, number, "empty_text", index))
                elif number in opted_out:
                    dropped.append(Dropped(line, number, "opted_out", index))
                elif (key := (number, text, send_at)) in seen:
                    dropped.append(Dropped(line, number, "duplicate", index))
                else:
                    seen.add(key)
                    messages.append(new_message(Message, (
                        number, text, final.encoding, final.units, final.segments, send_at, line, index)))
                    over_cap = len(messages) > max_messages

    if not messages:
        raise Rejected("no_messages", "no recipient left to send to")
    if over_cap:
        raise Rejected("too_many_messages", f"more than {max_messages} messages")
    return Composition(account, send_time(bodies[0].date, zone), messages, dropped,
                       warnings, texts.transliterated, rules.encoding, texts.no_gsm)


def compose_one(recipient: str, text: str, rules: AccountRules, opted_out: Container[str] = frozenset()) -> Message:
    """One message given whole, as an SMPP submit gives it: the rules of a body's (number,
    NFC, GSM or UCS-2, length, parts, empty text, opt-outs) without placeholders, which
    belong to the body format. `Rejected` says why it cannot be sent."""
    texts = _Texts(rules)
    final = texts.final(texts.reduce(text), 0, 1)
    number = to_e164(recipient, rules.country, rules.international)
    if number[0] != "+":
        raise Rejected(number, f"{recipient!r} cannot be sent to")
    if final.empty:
        raise Rejected("empty_text", "nothing to send")
    if number in opted_out:
        raise Rejected("opted_out", f"{number} asked to receive no more messages")
    return Message(number, final.text, final.encoding, final.units, final.segments, None, 0, 1)
