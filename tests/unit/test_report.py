"""The submission report: one value, rendered as JSON for files and `check --json`, as
text for people, and as the SMTP reply."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from ecosms_gw.core import report
from ecosms_gw.core.compose import AccountRules

TWO_BODIES = (b"From: a@b\r\nTo: sms@localhost\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
              b"--X\r\nContent-Type: text/plain\r\n\r\nU-ACME\r\nT-one\r\n#-+33612345678\r\n"
              b"--X\r\nContent-Type: text/plain\r\n\r\nU-ACME\r\nT-two\r\n#-+33612345679\r\n--X--\r\n")


def test_an_accepted_body_in_json_and_text() -> None:
    checked = report.check(b"U-ACME\nD-2030-01-02T10:00\nT-Hello\n#-+33612345678\n#-12\n", AccountRules())
    document = json.loads(report.as_json(checked))
    assert document["rejected"] is False and document["send_at"] == "2030-01-02T09:00:00Z"
    assert document["dropped"] == [{"line": 5, "recipient": "12", "reason": "invalid_number"}]
    text = report.as_text(checked, ZoneInfo("Europe/Paris"))
    assert text.startswith("Account ACME, send at 2030-01-02T09:00:00Z (2030-01-02 10:00:00 Europe/Paris)")
    assert "line     5  12                   invalid_number" in text


def test_a_refusal_in_json_and_text() -> None:
    checked = report.check(b"T-Hello\n#-+33612345678\n", AccountRules())
    assert checked.refusal is not None and checked.composition is None
    assert checked.document() == {"rejected": True, "reason": "missing_account", "line": None,
                                  "detail": checked.refusal.detail}
    assert report.as_text(checked, ZoneInfo("UTC")).startswith("REJECTED: missing_account")


def test_several_bodies_are_numbered() -> None:
    checked = report.check(TWO_BODIES, AccountRules())
    assert checked.several
    assert [m["body"] for m in checked.document()["messages"]] == [1, 2]
    assert report.as_text(checked, ZoneInfo("UTC")).splitlines()[2].startswith("body  line")


def test_a_utf16_file_is_told_to_be_saved_as_utf8() -> None:
    checked = report.check("U-ACME\nT-x\n#-+33612345678\n".encode("utf-16"), AccountRules())
    assert checked.refusal is not None and "save it as UTF-8" in checked.refusal.detail


def test_auto_mode_says_which_encoding_was_chosen_and_why() -> None:
    checked = report.check(b"U-X\nT-Bonjour\n#-0612345678\nT-\xd0\x9f\xd1\x80\xd0\xb8\n#-0612345679\n",
                    AccountRules(encoding="auto"))
    assert checked.document()["encoding"] == {"mode": "auto", "gsm7": 1, "ucs2": 1, "no_gsm_form": ["П", "р", "и"]}
    assert ("Encoding auto: 1 messages in GSM 7-bit (every character has a GSM form), "
            "1 in UCS-2 (no GSM form for 'П', 'р', 'и')") in report.as_text(checked, ZoneInfo("UTC"))
    assert "encoding" not in report.check(b"U-X\nT-Bonjour\n#-0612345678\n", AccountRules()).document()
