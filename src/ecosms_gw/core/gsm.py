"""GSM 03.38 and UCS-2: what a text becomes on the air, and how long it is.

Written by hand because the libraries get it wrong (smpplib's table has a backtick where
GSM has `§`, and its splitter cuts escape pairs). Every hot function here is a chain of
C-level string operations: a composed mailing runs them once per recipient.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]
Choice = Literal["gsm7", "ucs2", "auto"]  # `auto`: GSM when nothing would be deleted, else UCS-2
MODES: dict[str, Choice] = {"text": "gsm7", "ucs2": "ucs2", "auto": "auto"}  # account and API names

# 3GPP TS 23.038 default alphabet, index = septet value (0x1B is the escape, not a char).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: sent as ESC + code, two septets each.
EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
             "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
ESCAPE = 0x1B
CEDILLA_SMALL = "ç"  # not in the table, but sent as 0x09 (Ç) and kept as ç in stored text

# The seed's appendix A, exactly: everything else outside GSM is deleted.
TRANSLITERATION = {
    "Â": "A", "â": "a", "Ê": "E", "ê": "e", "Î": "I", "î": "i", "Ô": "O", "ô": "o",
    "Û": "U", "û": "u", "Ë": "E", "ë": "e", "Ï": "I", "ï": "i", "°": "o", "œ": "oe",
    "`": "", "’": "", "…": "...",
}

# `auto` mode only (text mode keeps the seed's table exactly): characters that look like
# GSM ones are sent as those rather than forcing the whole message into UCS-2.
LOOK_ALIKES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2039": "'", "\u203a": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\u200a": " ", "\u2002": " ", "\u2003": " ",
    "\t": " ", "\u2026": "...", "\u2022": "*", "\u00b7": ".", "\u200b": "", "\ufeff": "",
}

GSM_CHARS = frozenset(BASIC.replace("\x1b", "")) | frozenset(EXTENSION) | {CEDILLA_SMALL}

_TRANSLITERATE = str.maketrans(TRANSLITERATION)
_LOOK_ALIKE = str.maketrans(LOOK_ALIKES)
_NOT_GSM = re.compile("[^" + re.escape("".join(sorted(GSM_CHARS))) + "]+")
_EXTENSION_CHAR = re.compile("[" + re.escape("".join(EXTENSION)) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# char -> its septets as latin-1 chars, so that encoding is one translate + one encode.
_TO_SEPTETS = str.maketrans(
    {c: chr(i) for i, c in enumerate(BASIC) if i != ESCAPE}
    | {c: chr(ESCAPE) + chr(code) for c, code in EXTENSION.items()}
    | {CEDILLA_SMALL: chr(BASIC.index("Ç"))}
)
_FROM_EXTENSION = {code: c for c, code in EXTENSION.items()}

GSM_SINGLE_LIMIT, GSM_PART_LIMIT, GSM_PART_LIMIT_REF16 = 160, 153, 152
UCS2_SINGLE_LIMIT, UCS2_PART_LIMIT, UCS2_PART_LIMIT_REF16 = 70, 67, 66


def is_nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


def normalize(text: str) -> str:
    """Unicode NFC, skipped when the text already is (the common case costs one scan)."""
    return text if is_nfc(text) else unicodedata.normalize("NFC", text)


def to_gsm_text(text: str) -> str:
    """Apply the seed's transliterations and delete every other non-GSM character."""
    return _NOT_GSM.sub("", text.translate(_TRANSLITERATE))


def transliterations(text: str) -> dict[str, str]:
    """What `to_gsm_text` changes in `text`: char -> replacement ('' when deleted)."""
    return {c: TRANSLITERATION.get(c, "") for c in set(text) if c not in GSM_CHARS}


def auto_gsm_text(text: str) -> str | None:
    """`auto` mode: the text in GSM (look-alikes, then the seed's transliterations) when
    that deletes nothing, else None (the text goes as UCS-2)."""
    reduced = text.translate(_LOOK_ALIKE).translate(_TRANSLITERATE)
    return None if _NOT_GSM.search(reduced) else reduced


def auto_changes(text: str) -> dict[str, str]:
    """What `auto_gsm_text` changes in `text`: char -> replacement."""
    return {c: LOOK_ALIKES.get(c, TRANSLITERATION.get(c, "")) for c in set(text) if c not in GSM_CHARS}


def not_gsm(text: str) -> list[str]:
    """The characters of `text` that have no GSM form, even in `auto` mode, in order."""
    reduced = text.translate(_LOOK_ALIKE).translate(_TRANSLITERATE)
    return list(dict.fromkeys("".join(_NOT_GSM.findall(reduced))))


def septet_count(gsm_text: str) -> int:
    """Septets of a text already reduced to GSM: extension characters count two."""
    return len(gsm_text) + len(_EXTENSION_CHAR.findall(gsm_text))


def utf16_units(text: str) -> int:
    """UTF-16 code units: an astral character (emoji) is a surrogate pair, two units."""
    return len(text) + len(_ASTRAL.findall(text))


def encode_gsm(gsm_text: str) -> bytes:
    """Unpacked septets, one per octet, as SMPP carries data_coding=0."""
    return gsm_text.translate(_TO_SEPTETS).encode("latin-1")


def decode_gsm(septets: bytes) -> str:
    """Septets back to text (0x09 reads as Ç; an unknown escape reads as its base char)."""
    out: list[str] = []
    escaped = False
    for septet in septets:
        if escaped:
            out.append(_FROM_EXTENSION.get(septet, BASIC[septet & 0x7F]))
            escaped = False
        elif septet == ESCAPE:
            escaped = True
        else:
            out.append(BASIC[septet & 0x7F])
    return "".join(out)


def encode_ucs2(text: str) -> bytes:
    """UTF-16BE, the 'UCS-2' of SMPP data_coding=8 as handsets really decode it."""
    return text.encode("utf-16-be")


def units(text: str, encoding: Encoding) -> int:
    """Length that counts against the part limits: septets or UTF-16 units."""
    return septet_count(text) if encoding == "gsm7" else utf16_units(text)


def split(text: str, encoding: Encoding, *, ref16: bool = False) -> list[str]:
    """Cut a final text into parts: one if it fits, else the fewest parts that fit with a
    concatenation header, never separating an escape pair or a surrogate pair.

    Greedy filling is optimal here: every character costs 1 or 2 units and a part only
    ever ends early by one unit to keep a pair whole.
    """
    if encoding == "gsm7":
        single, limit = GSM_SINGLE_LIMIT, (GSM_PART_LIMIT_REF16 if ref16 else GSM_PART_LIMIT)
        wide = EXTENSION
    else:
        single, limit = UCS2_SINGLE_LIMIT, (UCS2_PART_LIMIT_REF16 if ref16 else UCS2_PART_LIMIT)
        wide = None
    total = units(text, encoding)
    if total <= single:
        return [text]
    if total == len(text):  # no two-unit character: plain slicing
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    parts: list[str] = []
    start = used = 0
    for i, char in enumerate(text):
        cost = 2 if (char in wide if wide is not None else char > "\uffff") else 1
        if used + cost > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


def segment_count(text: str, encoding: Encoding, text_units: int) -> int:
    """Number of parts for a text whose units are already known (cheap when it fits)."""
    single = GSM_SINGLE_LIMIT if encoding == "gsm7" else UCS2_SINGLE_LIMIT
    if text_units <= single:
        return 1
    limit = GSM_PART_LIMIT if encoding == "gsm7" else UCS2_PART_LIMIT
    if text_units == len(text):
        return -(-text_units // limit)
    return len(split(text, encoding))


def concatenation_header(reference: int, total: int, sequence: int, *, ref16: bool = False) -> bytes:
    """User data header of one part: IEI 0x00 (8-bit reference) or 0x08 (16-bit)."""
    if not 1 <= sequence <= total <= 255:
        raise ValueError(f"part {sequence} of {total}")
    if ref16:
        return bytes((6, 0x08, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, sequence))
    return bytes((5, 0x00, 3, reference & 0xFF, total, sequence))


def encode(text: str, encoding: Encoding) -> bytes:
    """Short message payload of a text or of one part of it."""
    return encode_gsm(text) if encoding == "gsm7" else encode_ucs2(text)


def encode_parts(text: str, encoding: Encoding, reference: int, *, ref16: bool = False) -> list[bytes]:
    """The short_message octets of every part, with its header when there are several."""
    parts = split(text, encoding, ref16=ref16)
    if len(parts) == 1:
        return [encode(text, encoding)]
    return [concatenation_header(reference, len(parts), n, ref16=ref16) + encode(part, encoding)
            for n, part in enumerate(parts, 1)]
