"""What an SMPP client's submit_sm asks for, from its fields: the text (by its data
coding), the mode it is composed in, flash, the number, the sender and the validity.
Pure: the server decodes the PDU and sends the answer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from ecosms_gw.core import gsm
from ecosms_gw.core.concat import text_of

TON_INTERNATIONAL = 1
MAX_VALIDITY_MIN = 72 * 60  # as an account's --validity-hours
_RELATIVE = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)\d00R")
_CONTROL = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f]")  # in IA5 text: none but CR and LF
_ABSOLUTE = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)\d(\d\d)([+-])")


class SubmitRequest(NamedTuple):
    """A submit as the pipeline takes it."""
    recipient: str  # as to_e164 reads it: `+` for an international number
    text: str
    mode: str  # "ucs2" when the client coded it so, else "text" (GSM, transliterated)
    flash: bool  # message class 0
    sender: str | None  # asked for; None: the account's default
    validity_min: int | None  # None: the account's


def is_ucs2(data_coding: int) -> bool:
    """UCS-2: 0x08, or 0x18-0x1B (the same with a message class)."""
    return data_coding & 0xEC == 0x08


def is_flash(data_coding: int) -> bool:
    """Message class 0, in the general data coding group (0x10-0x1F, class bits valid)
    or the data coding / message class group (0xF0-0xFF)."""
    return (data_coding & 0xF0 == 0x10 or data_coding & 0xF0 == 0xF0) and data_coding & 0x03 == 0


def request(destination: str, dest_ton: int, payload: bytes, data_coding: int, source: str,
            validity_period: str, now: datetime) -> SubmitRequest:
    recipient = destination.strip()
    if dest_ton == TON_INTERNATIONAL and recipient.isdigit():
        recipient = "+" + recipient
    return SubmitRequest(recipient, submitted_text(payload, data_coding), "ucs2" if is_ucs2(data_coding) else "text",
                         is_flash(data_coding), source.strip() or None, validity_minutes(validity_period, now))


def submitted_text(payload: bytes, data_coding: int) -> str:
    """As a phone's text is read, but IA5 (0x01) with control characters is GSM 03.38:
    clients such as node-smpp send GSM there, which its @ (0x00), é (0x05) or escape
    (0x1B) give away; true IA5 text has none but CR and LF."""
    if data_coding == 0x01 and _CONTROL.search(payload):
        return gsm.decode_gsm(payload)
    return text_of(payload, data_coding)


def validity_minutes(period: str, now: datetime) -> int | None:
    """SMPP's validity_period in whole minutes (at least 1, at most 72 h): relative
    (`YYMMDDhhmmss000R`) or absolute (`YYMMDDhhmmsstnn±`, nn quarter hours from UTC).
    Empty or unreadable: None (the account's)."""
    if match := _RELATIVE.fullmatch(period):
        years, months, days, hours, minutes, seconds = map(int, match.groups())
        total = ((years * 365 + months * 30 + days) * 24 + hours) * 60 + minutes + (seconds + 59) // 60
    elif match := _ABSOLUTE.fullmatch(period):
        year, month, day, hour, minute, second, quarters = map(int, match.groups()[:7])
        offset = timedelta(minutes=15 * quarters) * (1 if match[8] == "+" else -1)
        try:
            local = datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            return None
        total = int(((local - offset) - now).total_seconds() // 60)
    else:
        return None
    return min(max(total, 1), MAX_VALIDITY_MIN)


def cancel_sm_message_id(body: bytes) -> str:
    """A cancel_sm's message_id, its body's second C-string (after service_type): smpplib
    has no cancel_sm to read it with."""
    fields = body.split(b"\0", 2)
    return fields[1].decode("latin-1") if len(fields) > 2 else ""
