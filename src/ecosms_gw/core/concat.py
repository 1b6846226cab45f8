"""Messages from phones that come in parts: a part's place (from its UDH or its SAR
TLVs), and the text of parts put back together. Pure: the parts wait in the store."""

from __future__ import annotations

from typing import NamedTuple

from ecosms_gw.core import gsm

UDHI = 0x40  # esm_class: the short message starts with a user data header
_IEI_REF8, _IEI_REF16 = 0x00, 0x08  # concatenated short messages, 8- and 16-bit reference


class Place(NamedTuple):
    """Where a part goes: its message's reference, how many parts, which one (1-based)."""
    reference: int
    total: int
    seq: int


def split_header(short_message: bytes, esm_class: int) -> tuple[Place | None, bytes]:
    """A part's place from its UDH (8- or 16-bit reference), if it has one, and the
    payload after the header."""
    if not esm_class & UDHI or not short_message:
        return None, short_message
    length = short_message[0]
    header, payload = short_message[1:1 + length], short_message[1 + length:]
    place, at = None, 0
    while at + 2 <= len(header):
        iei, size = header[at], header[at + 1]
        data = header[at + 2:at + 2 + size]
        if iei == _IEI_REF8 and size == 3:
            place = Place(data[0], data[1], data[2])
        elif iei == _IEI_REF16 and size == 4:
            place = Place(int.from_bytes(data[:2], "big"), data[2], data[3])
        at += 2 + size
    return place if place and 1 <= place.seq <= place.total else None, payload


def sar_place(reference: int | None, total: int | None, seq: int | None) -> Place | None:
    """A part's place from the SAR TLVs (sar_msg_ref_num, sar_total_segments,
    sar_segment_seqnum), when all three are there."""
    if reference is None or total is None or seq is None or not 1 <= seq <= total:
        return None
    return Place(reference, total, seq)


def text_of(payload: bytes, data_coding: int) -> str:
    """The text of a whole message from a phone (its parts' payloads joined in order):
    UCS-2 (0x08, or 0x18-0x1B with a message class), GSM septets (0x00, or 0x10-0x13),
    else Latin-1 (IA5, Latin-1, 8-bit data)."""
    if (data_coding & 0xEC) == 0x08:
        return payload.decode("utf-16-be", "replace")
    if data_coding == 0x00 or (data_coding & 0xEC) == 0x00 and data_coding & 0x10:
        return gsm.decode_gsm(payload)
    return payload.decode("latin-1")
