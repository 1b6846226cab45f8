"""Parts of messages from phones: where each goes (UDH with an 8- or 16-bit reference,
or SAR TLVs), and the text of the parts put together."""

from __future__ import annotations

import pytest

from ecosms_gw.core.concat import Place, sar_place, split_header, text_of


def test_udh_with_an_8_bit_and_a_16_bit_reference() -> None:
    assert split_header(bytes([5, 0x00, 3, 0xA7, 3, 2]) + b"abc", 0x40) == (Place(0xA7, 3, 2), b"abc")
    assert split_header(bytes([6, 0x08, 4, 0xA7, 0xC3, 3, 1]) + b"x", 0x40) == (Place(0xA7C3, 3, 1), b"x")


def test_other_header_elements_are_skipped_and_a_bad_place_is_none() -> None:
    # a port-addressing element (0x05) before the concatenation one
    header = bytes([11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 3, 7, 2, 2])
    assert split_header(header + b"hi", 0x40) == (Place(7, 2, 2), b"hi")
    assert split_header(bytes([5, 0x00, 3, 7, 2, 3]) + b"hi", 0x40) == (None, b"hi")  # part 3 of 2
    assert split_header(bytes([2, 0x00, 9]), 0x40) == (None, b"")  # cut short


def test_without_udhi_the_message_is_all_text() -> None:
    assert split_header(bytes([5, 0x00, 3, 7, 2, 1]), 0x00) == (None, bytes([5, 0x00, 3, 7, 2, 1]))


def test_sar_needs_all_three_values() -> None:
    assert sar_place(0xA7C3, 3, 2) == Place(0xA7C3, 3, 2)
    assert sar_place(0xA7C3, None, 2) is None
    assert sar_place(1, 2, 0) is None


@pytest.mark.parametrize(("payload", "data_coding", "text"), [
    ("Привет 🙂".encode("utf-16-be"), 0x08, "Привет 🙂"),
    ("Привет".encode("utf-16-be"), 0x18, "Привет"),  # UCS-2, message class 0
    (bytes([0x48, 0x69, 0x05]), 0x00, "Hié"),  # GSM septets, one per octet
    (bytes([0x48, 0x69]), 0x10, "Hi"),
    ("café".encode("latin-1"), 0x03, "café"),
])
def test_text_by_data_coding(payload: bytes, data_coding: int, text: str) -> None:
    assert text_of(payload, data_coding) == text


def test_a_surrogate_pair_cut_between_parts_is_whole_once_joined() -> None:
    raw = "ok 🙂".encode("utf-16-be")
    parts = [raw[:8], raw[8:]]  # the pair's two halves in two parts
    assert text_of(b"".join(parts), 0x08) == "ok 🙂"
