"""Rules 1 to 8 of the body format: bytes, lines, prefixes, account, date, blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecosms_gw.core import charsets
from ecosms_gw.core.mail2sms import Recipient, Rejected, has_body_mark, parse, parse_all
from tests.support.samples import VENDOR_EXAMPLE


def rejection(text: str) -> Rejected:
    with pytest.raises(Rejected) as caught:
        parse(text)
    return caught.value


# ---------------------------------------------------------------- rule 1: bytes to text

@pytest.mark.parametrize(("data", "declared", "text"), [
    (b"\xef\xbb\xbfU-A\xc3\xa9", None, "U-Aé"),  # BOM: UTF-8, BOM dropped
    ("T-été".encode(), None, "T-été"),  # valid UTF-8
    ("T-été".encode("latin-1"), None, "T-été"),  # not UTF-8: Windows-1252
    (b"T-\x80 \x9c \x85", None, "T-€ œ …"),  # Windows-1252, not Latin-1
    (b"T-\x81\x8d\x8f\x90\x9d", None, "T-\x81\x8d\x8f\x90\x9d"),  # undefined: Latin-1 point
    (b"T-\x80", "iso-8859-1", "T-€"),  # iso-8859-1 read as Windows-1252
    (b"T-\x80", "us-ascii", "T-€"),  # us-ascii too
    ("T-été".encode(), "iso-8859-1", "T-Ã©tÃ©"),  # a declared charset is honoured
    ("T-Ωμέγα".encode("iso-8859-7"), "iso-8859-7", "T-Ωμέγα"),
    ("T-été".encode("latin-1"), "utf-8", "T-été"),  # declared but wrong: detection
    ("T-été".encode(), "x-unknown", "T-été"),  # unknown label: detection
])
def test_bytes_to_text(data: bytes, declared: str | None, text: str) -> None:
    assert charsets.decode(data, declared) == text


# ---------------------------------------------------------------- rules 2 and 3: lines, prefixes

@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_every_line_ending_splits_lines(newline: str) -> None:
    body = parse(newline.join(["U-ACME", "T-hello", "#-33612345678"]))
    assert body.account == "ACME"
    assert body.blocks[0].text == "hello"
    assert body.blocks[0].recipients == (Recipient(3, "33612345678", ()),)


def test_form_feed_and_unicode_separators_do_not_end_lines() -> None:
    body = parse("U-ACME\nT-a\fb\x0bc\x85d\u2028e\n#-33612345678")
    assert body.blocks[0].text == "a\fb\x0bc\x85d\u2028e"


def test_prefixes_match_any_case_and_lines_lose_blanks_at_both_ends() -> None:
    body = parse("  u-ACME \t\n\tt- two  spaces kept inside \nt>second line\n  #-33612345678  ")
    assert body.account == "ACME"
    assert body.blocks[0].text == " two  spaces kept inside\nsecond line"


def test_other_lines_are_ignored_and_do_not_break_a_text_block() -> None:
    body = parse("U-ACME\nT-first\n\n#comment\n-- \nSignature line\nT-second\n#-33612345678\n")
    assert body.blocks[0].text == "first\nsecond"
    assert body.blocks[0].line == 2


# ---------------------------------------------------------------- rule 4: account

@pytest.mark.parametrize(("text", "reason", "line"), [
    ("T-hello\n#-33612345678", "missing_account", None),
    ("U-  \nT-hello\n#-33612345678", "missing_account", 1),
    ("", "missing_account", None),
    ("U-A\nT-hello\nU-B\n#-33612345678", "multiple_accounts", 3),
    ("U-A\nU-A", "multiple_accounts", 2),
])
def test_account_rules(text: str, reason: str, line: int | None) -> None:
    refusal = rejection(text)
    assert (refusal.reason, refusal.line) == (reason, line)


def test_account_code_is_trimmed() -> None:
    assert parse("U-  ACME01\t").account == "ACME01"


# ---------------------------------------------------------------- rule 5: date

@pytest.mark.parametrize(("value", "expected"), [
    ("2017-08-04", datetime(2017, 8, 4)),
    ("2017-08-04T12:30", datetime(2017, 8, 4, 12, 30)),
    ("2017-08-04T12:30:15", datetime(2017, 8, 4, 12, 30, 15)),
    ("2017-08-04T15:19:21+02:00", datetime(2017, 8, 4, 15, 19, 21, tzinfo=timezone(timedelta(hours=2)))),
    ("2017-08-04T15:19:21-05:30", datetime(2017, 8, 4, 15, 19, 21, tzinfo=timezone(-timedelta(hours=5, minutes=30)))),
    ("2017-08-04T15:19Z", datetime(2017, 8, 4, 15, 19, tzinfo=UTC)),
    ("2017-08-04Z", datetime(2017, 8, 4, tzinfo=UTC)),
    ("2024-02-29", datetime(2024, 2, 29)),
])
def test_accepted_dates(value: str, expected: datetime) -> None:
    body = parse(f"U-A\nD-{value}\nT-x\n#-33612345678")
    assert body.date == expected
    assert body.date.tzinfo == expected.tzinfo


@pytest.mark.parametrize(("value", "detail"), [
    ("", "empty date"),
    ("2017-13-01", "month 13"),
    ("2017-00-01", "month 0"),
    ("2017-02-30", "day 30"),
    ("2023-02-29", "day 29"),
    ("2017-08-32", "day 32"),
    ("2017-08-04T24:00", "hour 24"),
    ("2017-08-04T12:60", "minute 60"),
    ("2017-08-04T12:30:60", "second 60"),
    ("2017-08-04T12:30+25:00", "offset +25:00"),
    ("0000-01-01", "year 0"),
    ("04/08/2017", "expected"),
    ("2017-8-4", "expected"),
    ("2017-08-04 12:30", "expected"),
    ("2017-08-04T12", "expected"),
    ("２０１７-08-04", "expected"),  # ASCII digits only
    ("tomorrow", "expected"),
])
def test_invalid_dates_reject_the_body_with_line_and_detail(value: str, detail: str) -> None:
    refusal = rejection(f"U-A\nT-x\n#-33612345678\nD-{value}")
    assert (refusal.reason, refusal.line) == ("invalid_date", 4)
    assert detail in refusal.detail
    assert f"D-{value}" in refusal.detail


def test_date_may_stand_anywhere_but_only_once() -> None:
    assert parse("T-x\n#-33612345678\nD-2017-08-04\nU-A").date == datetime(2017, 8, 4)
    refusal = rejection("U-A\nD-2017-08-04\nT-x\n#-33612345678\nD-2017-08-05")
    assert (refusal.reason, refusal.line) == ("multiple_dates", 5)


def test_account_problems_win_over_date_problems() -> None:
    assert rejection("D-garbage\nT-x\n#-1234567").reason == "missing_account"
    assert rejection("U-A\nU-B\nD-garbage").reason == "multiple_accounts"


# ---------------------------------------------------------------- rules 6 and 7: blocks

def test_the_vendor_example_blocks() -> None:
    body = parse(VENDOR_EXAMPLE)
    assert [(b.line, b.text, [r.number for r in b.recipients]) for b in body.blocks] == [
        (3, "first text message for 3 recipients", ["447123456789", "441234567891", "441234567892"]),
        (7, "second text message\nfor 2 recipients", ["441234567893", "441234567894"]),
        (11, "last text message for 3", ["441234567895", "441234567896", "441234567897"]),
    ]


def test_recipient_fields_are_trimmed_and_a_trailing_semicolon_means_none() -> None:
    body = parse("U-A\nT-x\n#-33612345678; M ;\tSMITH\t\n#-33612345679;\n#-33612345670;;X;\n")
    assert [r.fields for r in body.blocks[0].recipients] == [("M", "SMITH"), (), ("", "X")]


def test_recipients_before_text_and_texts_without_recipient_are_kept_for_the_report() -> None:
    body = parse("U-A\n#-33612345678\nT-x\n#-33612345679\nT-lonely\nT-still lonely\n")
    assert [r.line for r in body.recipients_before_text] == [2]
    assert body.texts_without_recipient == (5,)
    assert len(body.blocks) == 1


def test_parse_all_names_the_body_that_is_refused() -> None:
    with pytest.raises(Rejected) as caught:
        parse_all(["U-A\nT-x\n#-33612345678", "U-A\nD-bad"])
    assert (caught.value.reason, caught.value.body, caught.value.line) == ("invalid_date", 2, 2)


@pytest.mark.parametrize(("text", "mark"), [
    ("U-A", True), ("hello\r  u-A", True), ("hello\n\tU-", True), ("XU-A", False),
    ("hello U-A", False), ("", False),
])
def test_body_mark(text: str, mark: bool) -> None:
    assert has_body_mark(text) is mark


