"""mail2sms over SMTP with smtplib and curl against the real server on real PostgreSQL: the shapes of mail, who may send, what is refused and why."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import smtplib
from datetime import UTC, datetime, timedelta
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import asyncpg
import pytest

from ecosms_gw.core.accounts import Account
from tests.support.gateway import BODY, PHP_BODY, Gateway, mailing_id, plain, start_gateway, stored
from tests.support.mail import in_thread
from tests.support.net import self_signed
from tests.support.samples import ADVANCED, VENDOR_EXAMPLE


async def test_bare_lf_line_ends_are_read_as_crlf(gateway: Gateway, dsn: str) -> None:
    """A Unix file sent over a raw socket as it is: 3,000 lines ending in LF alone."""
    lines = ["From: office@acme.example", "To: sms@localhost", "Subject: unix", "",
             "U-ACME"] + [line for n in range(1500) for line in (f"T-hello {n}", f"#-+336{n:08d}")]
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)

    async def say(command: bytes) -> bytes:
        if command:
            writer.write(command)
        reply = b""
        while not reply.endswith(b"\n") or reply.splitlines()[-1][3:4] == b"-":
            chunk = await asyncio.wait_for(reader.read(4096), 30)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
        return reply

    await say(b"")
    for command in (b"EHLO unix\n", b"MAIL FROM:<office@acme.example>\n", b"RCPT TO:<sms@localhost>\n",
                    b"DATA\n"):
        assert (await say(command))[:1] in (b"2", b"3")
    reply = await say(("\n".join(lines) + "\n.\n").encode())
    writer.close()
    assert reply.startswith(b"250 2.0.0 mailing ") and b"1500 messages" in reply
    assert (await stored(dsn))[0][1:] == (1500, 1500)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_readme_curl_example_with_2000_recipients(gateway: Gateway, dsn: str, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("Subject: campaign\n\nU-ACME\nT-hello\n" + "".join(f"#-+336{n:08d}\n" for n in range(2000)))
    result = await asyncio.create_subprocess_exec(
        "curl", "-sS", f"smtp://127.0.0.1:{gateway.port}", "--mail-from", "office@acme.example",
        "--mail-rcpt", "sms@localhost", "--upload-file", str(body), "-v",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await result.communicate())[0].decode()
    assert result.returncode == 0, output
    assert "250 2.0.0 mailing" in output and "2000 messages" in output
    assert (await stored(dsn))[0][1:] == (2000, 2000)


async def test_vendor_example_inline_is_queued_after_commit(gateway: Gateway, dsn: str) -> None:
    code, text = await gateway.asend(VENDOR_EXAMPLE.replace("U-code", "U-ACME"))
    assert code == 250
    assert text.startswith("2.0.0 mailing ") and text.endswith(" queued: 8 messages, 8 parts")
    assert await stored(dsn) == [(mailing_id(text), 8, 8)]
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT recipient, text, due_at FROM messages ORDER BY id")
    await connection.close()
    assert rows[0]["recipient"] == "+447123456789"
    assert rows[3]["text"] == "second text message\nfor 2 recipients"
    # dated 2017 in the vendor's example: a date in the past means now
    assert rows[0]["due_at"] > datetime.now(UTC) - timedelta(minutes=1)


async def test_vendor_example_as_attachment_and_advanced_mode(gateway: Gateway, dsn: str) -> None:
    message = MIMEMultipart()
    message["From"], message["To"], message["Subject"] = "office@acme.example", "sms@localhost", "x"
    message.attach(MIMEText("Campaign attached.", "plain"))
    attachment = MIMEText(ADVANCED.replace("U-DEMO", "U-acme"), "plain", "utf-8")
    attachment.add_header("Content-Disposition", "attachment", filename="sms.txt")
    message.attach(attachment)
    code, text = await gateway.asend(message.as_bytes())
    assert (code, text.split(": ")[1]) == (250, "2 messages, 2 parts")
    connection = await asyncpg.connect(dsn)
    texts = [row["text"] for row in await connection.fetch("SELECT text FROM messages ORDER BY id")]
    await connection.close()
    assert texts == ["Hello M SMITH,\nYou car is ready.\nBest regards",
                     "Hello Mrs JONES,\nYou car is ready.\nBest regards"]


async def test_php_mail_shape_from_an_allowed_domain(gateway: Gateway) -> None:
    raw = ("To: SMS@gw.example\r\nSubject: Send text message\r\nFrom: www@branch.example\r\n\r\n"
           + PHP_BODY.replace("\n", "\r\n")).encode()
    code, text = await gateway.asend(raw, sender="www@branch.example", to="SMS@GW.EXAMPLE")
    assert (code, text.split(": ")[1]) == (250, "9 messages, 9 parts")


async def test_authenticated_sender_after_starttls(dsn: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    gw, server, handler = await start_gateway(dsn, tls_cert=str(cert), tls_key=str(key))

    def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        with gw.client() as client:
            seen["ehlo"] = client.ehlo_resp.decode()
            seen["auth_in_clear"] = client.docmd("AUTH", "PLAIN AEFDTUUAYWNtZS1wYXNz")[0]
        with gw.client(starttls=True) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
                client.login("ACME", "wrong")
            seen["wrong"] = wrong.value.smtp_code
        for mechanism in ("PLAIN", "LOGIN"):
            with gw.client(starttls=True) as client:
                client.user, client.password = "ACME", "acme-pass"
                seen[mechanism] = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))[0]
                seen[f"{mechanism}_data"] = gw.transact(client, BODY, "anyone@elsewhere.example")
        with gw.client(starttls=True) as client:
            client.login("acme", "acme-pass")
            seen["other_account"] = gw.transact(client, BODY.replace("U-ACME", "U-OTHER"), "x@y.example")
        return seen

    await gw.store.accounts.add(Account(id=None, code="OTHER", senders=("boss@other.example",)))
    try:
        seen = await in_thread(scenario)
    finally:
        server.close()
        await handler.drain()
        await gw.store.close()
    assert "STARTTLS" in seen["ehlo"] and "8BITMIME" in seen["ehlo"] and "SMTPUTF8" in seen["ehlo"]
    assert "SIZE 25000000" in seen["ehlo"]
    assert seen["auth_in_clear"] == 538  # AUTH needs STARTTLS first
    assert seen["wrong"] == 535
    assert seen["PLAIN"] == seen["LOGIN"] == 235
    assert seen["PLAIN_data"][0] == seen["LOGIN_data"][0] == 250
    code, text = seen["other_account"]
    assert (code, text.split(":")[0]) == (550, "5.7.1 sender_not_allowed")


async def test_unknown_recipient_address_is_refused_at_rcpt(gateway: Gateway, dsn: str) -> None:
    assert (await gateway.asend(BODY, to="postmaster@localhost"))[0] == 550
    code, text = await gateway.asend(BODY, to="victim@elsewhere.example")
    assert (code, text.split(" ")[0]) == (550, "5.1.1")
    assert await stored(dsn) == []


@pytest.mark.parametrize(("sender", "body", "reason"), [
    ("stranger@evil.example", BODY, "sender_not_allowed"),
    ("", BODY, "sender_not_allowed"),
    ("office@acme.example", BODY.replace("U-ACME", "U-NOBODY"), "unknown_account"),
])
async def test_access_refusals_are_550(gateway: Gateway, dsn: str, sender: str, body: str, reason: str) -> None:
    code, text = await gateway.asend(body, sender=sender)
    assert (code, text.split(":")[0]) == (550, f"5.7.1 {reason}")
    assert await stored(dsn) == []


@pytest.mark.parametrize(("body", "expected"), [
    ("U-\nT-x\n#-33612345678", "missing_account (line 1)"),
    ("U-ACME\nU-ACME\nT-x\n#-33612345678", "multiple_accounts (line 2)"),
    ("U-ACME\nD-2017-13-01\nT-x\n#-33612345678", "invalid_date (line 2): D-2017-13-01: month 13"),
    ("U-ACME\nD-2030-01-01\nD-2030-01-02\nT-x\n#-33612345678", "multiple_dates (line 3)"),
    ("U-ACME\n" + ("T-" + "a" * 100 + "\n") * 11 + "#-33612345678", "text_too_long (line 2)"),
    ("U-ACME\nT-x\n#-06x\n", "no_messages"),
    ("U-ACME\nT-x\n#-33612345678\n#-33612345679\n#-33612345670", "too_many_messages"),
    ("Hello, please send SMS to my customers.", "no_body"),
])
async def test_body_refusals_are_554_with_reason_and_line(gateway: Gateway, dsn: str, body: str,
                                                          expected: str) -> None:
    await gateway.store.accounts.update(dataclasses.replace(await gateway.store.accounts.get("ACME"),
                                                           max_messages=2))
    code, text = await gateway.asend(body)
    assert code == 554, text
    assert text.startswith(f"5.6.0 {expected}")
    assert await stored(dsn) == []


async def test_30_megabytes_are_refused_at_size_and_at_data(gateway: Gateway, dsn: str) -> None:
    def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        with gateway.client() as client:
            announced = gateway.transact(client, BODY, "office@acme.example",
                                         mail_options=("SIZE=30000000",))
        big = plain(BODY + "x" * 30_000_000)
        with gateway.client() as client:
            try:
                unannounced = gateway.transact(client, big, "office@acme.example")
            except smtplib.SMTPServerDisconnected:
                unannounced = (552, "disconnected")
        return announced, unannounced

    announced, unannounced = await in_thread(scenario)
    assert announced[0] == 552
    assert unannounced[0] == 552
    assert await stored(dsn) == []


async def test_a_resent_mail_sends_nothing_twice(gateway: Gateway, dsn: str) -> None:
    first = await gateway.asend(plain(BODY, message_id="<campaign-1@acme.example>"))
    again = await gateway.asend(plain(BODY, message_id="<campaign-1@acme.example>"))
    assert first[0] == again[0] == 250
    assert again[1] == f"2.0.0 duplicate of mailing {mailing_id(first[1])}, nothing re-sent"
    # Without a Message-ID, the same bodies within 10 minutes are the same submission.
    raw = ("From: office@acme.example\r\nTo: sms@localhost\r\n\r\n" + BODY).encode()
    third = await gateway.asend(raw)
    fourth = await gateway.asend(raw)
    assert fourth[1] == f"2.0.0 duplicate of mailing {mailing_id(third[1])}, nothing re-sent"
    assert [row[0] for row in await stored(dsn)] == [mailing_id(first[1]), mailing_id(third[1])]
