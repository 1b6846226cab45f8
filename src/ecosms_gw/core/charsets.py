"""Bytes to text by the format's rule 1: BOM, else valid UTF-8, else Windows-1252."""

from __future__ import annotations

import codecs

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Windows-1252 with its five undefined bytes read as their Latin-1 code points, the way
# browsers do; one translate over a latin-1 decode keeps it a C-level pass.
_CP1252 = str.maketrans({
    byte: bytes([byte]).decode("cp1252")
    for byte in range(0x80, 0xA0)
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
})
_READ_AS_CP1252 = {"ascii", "iso8859_1", "cp1252"}


def decode_cp1252(data: bytes) -> str:
    """Windows-1252 that never fails."""
    return data.decode("latin-1").translate(_CP1252)


def decode(data: bytes, declared: str | None = None) -> str:
    """Text of a body: a declared MIME charset is honoured when Python knows it and the
    bytes fit it; `us-ascii` and `iso-8859-1` labels are read as Windows-1252."""
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM):].decode("utf-8", errors="replace")
    if declared:
        try:
            codec = codecs.lookup(declared.strip().strip('"')).name.replace("-", "_")
        except LookupError:
            codec = None
        if codec in _READ_AS_CP1252:
            return decode_cp1252(data)
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_cp1252(data)


def looks_like_utf16(data: bytes) -> bool:
    """A UTF-16 file (Notepad's "Unicode") is not a body format: worth a hint to the user."""
    return data.startswith(UTF16_BOMS)
