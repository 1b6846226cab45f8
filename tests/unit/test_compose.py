"""Rules 7 to 19: what a body finally sends, what it leaves out and why, what it refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ecosms_gw.core.compose import AccountRules, Composition, compose
from ecosms_gw.core.mail2sms import Rejected, parse_all
from tests.support.samples import ADVANCED, VENDOR_EXAMPLE

RULES = AccountRules(country="33", timezone="Europe/Paris", international=True)


def run(*texts: str, opted_out: frozenset[str] = frozenset(), **rules: object) -> Composition:
    return compose(parse_all(texts), replace(RULES, **rules), opted_out)


def refused(*texts: str, **rules: object) -> Rejected:
    with pytest.raises(Rejected) as caught:
        run(*texts, **rules)
    return caught.value


def sent(composition: Composition) -> list[tuple[str, str]]:
    return [(m.recipient, m.text) for m in composition.messages]


def reasons(composition: Composition) -> list[tuple[int, str, str]]:
    return [(d.line, d.recipient, d.reason) for d in composition.dropped]


# ---------------------------------------------------------------- the vendor's examples

def test_vendor_example_sends_eight_messages_at_the_local_time() -> None:
    result = run(VENDOR_EXAMPLE)
    assert result.account == "code"
    assert [m.recipient for m in result.messages] == [
        "+447123456789", "+441234567891", "+441234567892", "+441234567893",
        "+441234567894", "+441234567895", "+441234567896", "+441234567897"]
    assert result.messages[3].text == "second text message\nfor 2 recipients"
    # 12:30 in Paris in August is CEST, UTC+2.
    assert result.send_at == datetime(2017, 8, 4, 10, 30, tzinfo=UTC)
    assert {m.send_at for m in result.messages} == {result.send_at}
    assert result.parts == 8




@pytest.mark.parametrize("body", [ADVANCED, ADVANCED.replace("#1# #2#", "(%1) (%2)")])
def test_vendor_advanced_mode_substitutes_fields(body: str) -> None:
    assert sent(run(body)) == [
        ("+447123456789", "Hello M SMITH,\nYou car is ready.\nBest regards"),
        ("+441234567891", "Hello Mrs JONES,\nYou car is ready.\nBest regards"),
    ]


# ---------------------------------------------------------------- rule 5: time zones

@pytest.mark.parametrize(("date", "zone", "utc"), [
    ("2017-01-04T12:30", "Europe/Paris", datetime(2017, 1, 4, 11, 30)),  # CET in winter
    ("2017-08-04", "Europe/Paris", datetime(2017, 8, 3, 22, 0)),  # a date alone is 00:00 local
    ("2017-08-04T12:30", "America/New_York", datetime(2017, 8, 4, 16, 30)),
    ("2017-08-04T12:30+02:00", "America/New_York", datetime(2017, 8, 4, 10, 30)),
    ("2017-08-04T12:30Z", "Asia/Tokyo", datetime(2017, 8, 4, 12, 30)),
])
def test_dates_without_offset_are_in_the_accounts_zone(date: str, zone: str, utc: datetime) -> None:
    result = run(f"U-A\nD-{date}\nT-x\n#-33612345678", timezone=zone)
    assert result.send_at == utc.replace(tzinfo=UTC)


def test_a_past_date_is_accepted() -> None:
    assert run("U-A\nD-2001-01-01\nT-x\n#-33612345678").send_at.year == 2000


# ---------------------------------------------------------------- rules 7 and 8

def test_placeholders_one_pass_missing_fields_empty_and_literal_hashes_kept() -> None:
    result = run("U-A\nT-#1#|(%2)|#3#|#0#|Call #1 now|#x#|{0}|#01#\n#-33612345678;#2#;(%1)\n")
    assert sent(result) == [("+33612345678", "#2#|(%1)||#0#|Call #1 now|#x#|{0}|#2#")]


def test_recipient_before_text_and_text_without_recipient_are_reported() -> None:
    result = run("U-A\n#-33612345600\nT-x\n#-33612345678\nT-nobody\n")
    assert reasons(result) == [(2, "33612345600", "recipient_before_text")]
    assert result.warnings == ["line 5: text without recipient, ignored"]


# ---------------------------------------------------------------- rule 9 in context

def test_invalid_numbers_drop_only_that_recipient() -> None:
    result = run("U-A\nT-x\n#-06x\n#-0612345678\n#-+4471234567890123\n")
    assert sent(result) == [("+33612345678", "x")]
    assert reasons(result) == [(3, "06x", "invalid_number"), (5, "+4471234567890123", "invalid_number")]


def test_accounts_without_international_option_keep_their_own_country() -> None:
    result = run("U-A\nT-x\n#-+447123456789\n#-0612345678\n", international=False)
    assert sent(result) == [("+33612345678", "x")]
    assert reasons(result) == [(3, "+447123456789", "international_not_allowed")]


# ---------------------------------------------------------------- rules 10 to 14: text

def test_nfc_then_transliteration_in_text_mode() -> None:
    decomposed = "e\u0302te\u0301 c\u0327a"  # ê, é, ç as combining sequences
    result = run(f"U-A\nT-{decomposed} «ok»…\n#-33612345678")
    assert sent(result) == [("+33612345678", "eté ça ok...")]
    assert result.messages[0].units == 12
    assert result.transliterated == {"ê": "e", "«": "", "»": "", "…": "..."}


def test_substituted_fields_are_transliterated_too() -> None:
    assert sent(run("U-A\nT-Bonjour #1#\n#-33612345678;Hélène Œ"))[0][1] == "Bonjour Hélène "


def test_ucs2_mode_keeps_everything_and_counts_utf16_units() -> None:
    result = run("U-A\nT-Ça «va» 😀\n#-33612345678", encoding="ucs2")
    message = result.messages[0]
    assert (message.text, message.encoding, message.units, message.segments) == (
        "Ça «va» 😀", "ucs2", 10, 1)
    assert result.transliterated == {}


@pytest.mark.parametrize(("text", "units", "segments"), [
    ("a" * 160, 160, 1),
    ("a" * 161, 161, 2),
    ("a" * 159 + "€", 161, 2),
    ("a" * 158 + "€", 160, 1),
    ("€" * 80, 160, 1),
])
def test_gsm_160_and_161_septets_and_euro_at_the_boundary(text: str, units: int, segments: int) -> None:
    message = run(f"U-A\nT-{text}\n#-33612345678").messages[0]
    assert (message.units, message.segments) == (units, segments)


def test_1024_characters_pass_1025_reject_the_whole_body() -> None:
    assert run("U-A\nT-" + "a" * 1024 + "\n#-33612345678").messages[0].segments == 7
    refusal = refused("U-A\nT-ok\n#-33612345678\nT-" + "a" * 1025 + "\n#-33612345679")
    assert (refusal.reason, refusal.line) == ("text_too_long", 4)
    assert "1025" in refusal.detail


def test_length_is_checked_on_the_final_text_after_substitution_and_deletion() -> None:
    assert run("U-A\nT-" + "«" * 2000 + "x\n#-33612345678").messages[0].text == "x"
    refusal = refused("U-A\nT-#1#\n#-33612345678;" + "b" * 1025)
    assert refusal.reason == "text_too_long"


def test_final_text_is_not_trimmed_but_blank_text_is_not_sent() -> None:
    result = run("U-A\nT-#1#\n#-33612345678;\n#-33612345679; x \nT-«»\n#-33612345670")
    assert sent(result) == [("+33612345679", "x")]  # fields are trimmed; text is not
    assert reasons(result) == [(3, "+33612345678", "empty_text"), (6, "+33612345670", "empty_text")]
    assert sent(run("U-A\nT- x\nT-\n#-33612345678"))[0][1] == " x\n"


# ---------------------------------------------------------------- rules 15 to 17

def test_duplicates_are_sent_once_per_submission_across_bodies() -> None:
    body = "U-A\nT-x\n#-33612345678\n#-0612345678\nT-y\n#-33612345678\n"
    result = run(body, body)
    assert sent(result) == [("+33612345678", "x"), ("+33612345678", "y")]
    assert [(d.body, d.line, d.reason) for d in result.dropped] == [
        (1, 4, "duplicate"), (2, 3, "duplicate"), (2, 4, "duplicate"), (2, 6, "duplicate")]


def test_same_text_at_another_time_is_not_a_duplicate() -> None:
    result = run("U-A\nD-2030-01-01\nT-x\n#-33612345678", "U-A\nT-x\n#-33612345678")
    assert len(result.messages) == 2


def test_opted_out_recipients_are_left_out() -> None:
    result = run("U-A\nT-x\n#-33612345678\n#-33612345679", opted_out=frozenset({"+33612345679"}))
    assert reasons(result) == [(4, "+33612345679", "opted_out")]


@pytest.mark.parametrize("body", [
    "U-A\n", "U-A\nT-orphan text\n", "U-A\n#-33612345678\n", "U-A\nT-x\n#-bad\n#-06\n",
])
def test_nothing_left_to_send_is_refused(body: str) -> None:
    assert refused(body).reason == "no_messages"


def test_2000_messages_pass_2001_reject() -> None:
    recipients = "".join(f"#-336{n:08d}\n" for n in range(2001))
    assert len(run("U-A\nT-x\n" + recipients[:-13]).messages) == 2000
    refusal = refused("U-A\nT-x\n" + recipients)
    assert refusal.reason == "too_many_messages"
    assert refusal.detail == "more than 2000 messages"
    assert len(run("U-A\nT-x\n" + recipients, max_messages=2001).messages) == 2001


def test_the_cap_counts_the_whole_email_and_ignores_dropped_recipients() -> None:
    half = "".join(f"#-336{n:08d}\n" for n in range(1000))
    assert refused("U-A\nT-x\n" + half, "U-A\nT-y\n" + half + "#-33699999999\n").reason == "too_many_messages"
    assert len(run("U-A\nT-x\n" + half + "#-bad\n" * 1500).messages) == 1000


# ---------------------------------------------------------------- rule 19: first reason wins

@pytest.mark.parametrize(("body", "reason"), [
    ("D-bad\nT-" + "a" * 2000 + "\n#-bad", "missing_account"),
    ("U-A\nD-bad\nT-" + "a" * 2000 + "\n#-bad", "invalid_date"),
    ("U-A\nT-" + "a" * 2000 + "\n#-bad", "text_too_long"),
    ("U-A\nT-x\n#-bad\n", "no_messages"),
])
def test_first_reason_wins(body: str, reason: str) -> None:
    assert refused(body).reason == reason


def test_text_too_long_wins_over_too_many_messages() -> None:
    many = "".join(f"#-336{n:08d}\n" for n in range(2001))
    assert refused("U-A\nT-x\n" + many + "T-" + "a" * 1025 + "\n#-33612345678").reason == "text_too_long"


def test_one_email_names_one_account() -> None:
    refusal = refused("U-A\nT-x\n#-33612345678", "U-B\nT-x\n#-33612345678")
    assert (refusal.reason, refusal.body, refusal.line) == ("multiple_accounts", 2, 1)


def test_a_field_too_long_after_the_cap_still_wins() -> None:
    many = "".join(f"#-336{n:08d};x\n" for n in range(2001))
    refusal = refused("U-A\nT-#1#\n" + many + "#-33699999999;" + "b" * 1025)
    assert (refusal.reason, refusal.line) == ("text_too_long", 2)


# ---------------------------------------------------------------- auto mode (issue 16)

@pytest.mark.parametrize(("text", "encoding", "final"), [
    ("Привет", "ucs2", "Привет"),
    ("café", "gsm7", "café"),
    ("l’été – “ok”…", "gsm7", "l'été - \"ok\"..."),  # look-alikes map into GSM
    ("Île «fête»", "gsm7", "Ile \"fete\""),  # the seed's transliterations delete nothing
    ("À bientôt", "ucs2", "À bientôt"),  # À would be deleted: the text goes whole, as UCS-2
    ("ok 👍", "ucs2", "ok 👍"),
])
def test_auto_sends_gsm_when_nothing_is_deleted_else_ucs2(text: str, encoding: str, final: str) -> None:
    [message] = run(f"U-X\nT-{text}\n#-0612345678", encoding="auto").messages
    assert (message.encoding, message.text) == (encoding, final)


def test_auto_chooses_per_recipient_and_says_why() -> None:
    result = run("U-X\nT-Hello #1#\n#-0612345678;Jean\n#-0612345679;Дмитрий", encoding="auto")
    assert [(m.text, m.encoding, m.segments) for m in result.messages] == [
        ("Hello Jean", "gsm7", 1), ("Hello Дмитрий", "ucs2", 1)]
    assert list(result.no_gsm) == ["Д", "м", "и", "т", "р", "й"]


def test_text_mode_keeps_the_seeds_table_exactly() -> None:
    [message] = run("U-X\nT-l’été – “ok”\n#-0612345678").messages
    assert (message.encoding, message.text) == ("gsm7", "lété  ok")
