"""Rule 18: which parts of an e-mail are bodies, built with Python's `email` package."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from ecosms_gw.core import report
from ecosms_gw.core.compose import AccountRules
from ecosms_gw.core.htmltext import html_to_text
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.core.mime import looks_like_email, read_email
from tests.support.samples import BODY, HTML_BODY, alternative, headers, plain


def check(data: bytes, rules: AccountRules) -> dict:
    """The `check --json` document."""
    return report.check(data, rules).document()


def body_texts(raw: bytes) -> list[str]:
    return read_email(raw).texts






@pytest.mark.parametrize(("charset", "cte"), [
    ("utf-8", "quoted-printable"), ("utf-8", "base64"), ("iso-8859-1", "quoted-printable"),
    ("windows-1252", "8bit"),
])
def test_single_part_plain_in_any_transfer_encoding(charset: str, cte: str) -> None:
    message = EmailMessage()
    message.set_content(BODY, charset=charset, cte=cte)
    assert body_texts(headers(message)) == [BODY]


def test_inline_text_without_body_and_body_as_text_attachment() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText("Please find the campaign attached.\n-- \nJane", "plain"))
    attachment = MIMEText(BODY, "plain", "utf-8")
    attachment.add_header("Content-Disposition", "attachment", filename="campaign.txt")
    message.attach(attachment)
    assert body_texts(headers(message)) == [BODY]


def test_octet_stream_attachment_in_windows_1252_without_charset() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText("see attachment", "plain"))
    message.attach(MIMEApplication(BODY.encode("cp1252"), "octet-stream", Name="sms.txt"))
    assert body_texts(headers(message)) == [BODY]


def test_images_pdf_and_other_types_are_ignored_even_when_they_hold_u_lines() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText(BODY, "plain"))
    for maintype, subtype in (("image", "png"), ("application", "pdf"), ("text", "csv")):
        part = MIMEBase(maintype, subtype)
        part.set_payload("U-OTHER\nT-x\n#-33612345678")
        message.attach(part)
    assert body_texts(headers(message)) == [BODY]


def test_forwarded_message_is_not_opened() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText("forwarding this", "plain"))
    message.attach(MIMEMessage(MIMEText(BODY, "plain")))
    with pytest.raises(Rejected) as caught:
        body_texts(headers(message))
    assert caught.value.reason == "no_body"






def test_alternative_uses_the_plain_part_when_it_holds_a_body() -> None:
    assert body_texts(headers(alternative(BODY, HTML_BODY))) == [BODY]


def test_alternative_falls_back_to_html_when_plain_has_no_body() -> None:
    texts = body_texts(headers(alternative("Your mail client cannot show HTML", HTML_BODY)))
    assert len(texts) == 1
    report = check(headers(alternative("no body here", HTML_BODY)), AccountRules())
    assert report["account"] == "ACME"
    assert [m["text"] for m in report["messages"]] == ["Hello  été"]


def test_alternative_inside_mixed_with_an_attachment_gives_two_bodies_and_dedupes() -> None:
    message = MIMEMultipart()
    message.attach(alternative(BODY, HTML_BODY))
    message.attach(MIMEApplication(BODY.encode(), "octet-stream", Name="same.txt"))
    raw = headers(message)
    assert body_texts(raw) == [BODY, BODY]
    report = check(raw, AccountRules())
    assert len(report["messages"]) == 1
    assert [(d["body"], d["reason"]) for d in report["dropped"]] == [(2, "duplicate")]


def test_one_bad_body_rejects_the_whole_email() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText(BODY, "plain"))
    message.attach(MIMEApplication(b"U-ACME\nD-2017-13-01\nT-x\n#-33612345678", "octet-stream"))
    report = check(headers(message), AccountRules())
    assert report == {"rejected": True, "reason": "invalid_date", "line": 2,
                      "detail": "D-2017-13-01: month 13", "body": 2}


def test_email_without_body_is_refused_as_no_body() -> None:
    assert check(plain("Hello, please send SMS to my clients"), AccountRules())["reason"] == "no_body"


@pytest.mark.parametrize(("html", "text"), [
    ("a<br>b<br/>c", "a\nb\nc"),
    ("<p>one</p><p>two</p>", "\none\n\ntwo\n"),
    ("a   \n  b", "a b"),
    ("<pre>a   b\nc</pre>", "\na   b\nc\n"),
    ("&lt;T&gt; &amp; &eacute; &#8364; &nbsp;x", "<T> & é €  x"),
    ("<head><title>t</title></head>x", "x"),
    ("<head><meta charset=utf-8><body>kept", "kept"),
    ("T&gt;Hello", "T>Hello"),
])
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(("data", "is_email"), [
    (b"U-ACME\nT-x\n#-33612345678\n", False),
    (b"Subject: x\nU-ACME\n", False),  # no blank line: a header line inside a body
    (b"", False),
    (b"\x89PNG\r\n\x1a\n\x00\x00", False),
    (plain(BODY), True),
    (b"Received: from x\r\n\tby y\r\nFrom: a@b\r\nTo: sms@localhost\r\n\r\nU-A\r\n", True),
])
def test_emails_are_told_from_bodies_by_content(data: bytes, is_email: bool) -> None:
    assert looks_like_email(data) is is_email
