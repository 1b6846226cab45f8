"""What a client's submit_sm asks for, read from its fields (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecosms_gw.core.compose import AccountRules, compose_one
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.core.submit_sm import is_flash, is_ucs2, request, submitted_text, validity_minutes

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("period", "minutes"), [
    ("", None), ("000000013000000R", 90), ("000001000000000R", 24 * 60), ("990000000000000R", 72 * 60),
    ("000000000001000R", 1), ("261203120000000+", 120), ("261203120000008+", 0 + 1),
    ("261203110000004-", 120), ("garbage", None), ("261340120000000+", None),
])
def test_validity_period_relative_and_absolute(period: str, minutes: int | None) -> None:
    assert validity_minutes(period, NOW) == minutes


@pytest.mark.parametrize(("coding", "ucs2", "flash"), [
    (0x00, False, False), (0x08, True, False), (0x10, False, True), (0x18, True, True),
    (0x11, False, False), (0xF0, False, True), (0x03, False, False),
])
def test_data_coding_gives_the_alphabet_and_class_0(coding: int, ucs2: bool, flash: bool) -> None:
    assert (is_ucs2(coding), is_flash(coding)) == (ucs2, flash)


def test_an_international_destination_keeps_its_country_and_the_text_its_coding() -> None:
    asked = request("33612345678", 1, "Ça 😀".encode("utf-16-be"), 0x08, "ACME", "", NOW)
    assert (asked.recipient, asked.text, asked.mode, asked.sender) == ("+33612345678", "Ça 😀", "ucs2", "ACME")
    national = request("0612345678", 0, b"hi \x00", 0x00, "", "", NOW)
    assert (national.recipient, national.text, national.sender) == ("0612345678", "hi @", None)


def test_one_message_follows_the_rules_of_a_body() -> None:
    rules = AccountRules(country="33", international=False)
    message = compose_one("0612345678", "Très « bien »", rules)
    assert (message.recipient, message.encoding, message.segments) == ("+33612345678", "gsm7", 1)
    assert message.text == "Très  bien "  # the same reduction as a mail's (« » deleted in text mode)
    for recipient, text, opted_out, reason in [("12", "x", (), "invalid_number"),
                                                ("+4420", "x", (), "invalid_number"),
                                                ("+447911123456", "x", (), "international_not_allowed"),
                                                ("0612345678", "  ", (), "empty_text"),
                                                ("0612345678", "x" * 2000, (), "text_too_long"),
                                                ("0612345678", "x", ("+33612345678",), "opted_out")]:
        with pytest.raises(Rejected) as refused:
            compose_one(recipient, text, rules, frozenset(opted_out))
        assert refused.value.reason == reason


def test_ia5_with_control_characters_is_read_as_gsm() -> None:
    assert submitted_text(b"caf\x05 \x00 10\x02", 0x01) == "café @ 10$"  # node-smpp's GSM under 0x01
    assert submitted_text(b"plain $ [text]\r\n", 0x01) == "plain $ [text]\r\n"  # true IA5
    assert submitted_text("d\xe9j\xe0".encode("latin-1"), 0x03) == "déjà"
