"""The corpus of malformed e-mails (tests/support/malformed.py), each sent by smtplib to
the gateway: every one gets a clear reply (accepted with its mailing, or refused with a
reason class), never "internal error, retry later" for a mail that will never get better,
and the session goes on."""

from __future__ import annotations

import re
import smtplib

from tests.support.gateway import Gateway
from tests.support.mail import in_thread
from tests.support.malformed import CORPUS

CLEAR = re.compile(r"(2\.0\.0 mailing \d+ queued|2\.0\.0 .*duplicate|5\.\d\.\d+ [a-z_]+)")


def send(client: smtplib.SMTP, raw: bytes) -> tuple[int, str]:
    code, text = client.mail("office@acme.example")
    if code == 250:
        code, text = client.rcpt("sms@localhost")
    if code == 250:
        try:
            code, text = client.data(raw)
        except smtplib.SMTPDataError as error:
            code, text = error.smtp_code, error.smtp_error
    return code, text.decode("utf-8", "replace")


async def test_every_malformed_mail_gets_a_clear_reply(gateway: Gateway) -> None:
    assert len(CORPUS) >= 50

    def run() -> dict[str, tuple[int, str]]:
        replies = {}
        with gateway.client() as client:
            for name, raw in CORPUS:
                replies[name] = send(client, raw)
                client.rset()
        return replies

    replies = await in_thread(run)
    unclear = {name: reply for name, reply in replies.items()
               if reply[0] not in (250, 550, 552, 554) or not CLEAR.match(reply[1])}
    assert not unclear, unclear
    for accepted in ("multiparts 100 deep", "multiparts 5,000 deep", "5 MB of recipients", "5 MB of HTML",
                     "500 KB of HTML on one line", "8-bit Message-ID"):
        assert replies[accepted][0] == 250, (accepted, replies[accepted])
    assert replies["5 MB on one line"] == (552, "5.3.4 too_large: a line of more than 1 MiB")
