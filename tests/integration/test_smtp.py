"""SMTP ingestion against real PostgreSQL, driven by smtplib as mail clients do."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import smtplib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import asyncpg
import pytest

from ecosms_gw.config import Config, DatabaseConfig, MailOutConfig, SmtpConfig
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.ingest import smtp
from ecosms_gw.notify.mail_out import Mailer
from ecosms_gw.store import Store
from tests.support.mail import Sink, in_thread
from tests.support.net import free_port
from tests.support.samples import ADVANCED, HTML_BODY, VENDOR_EXAMPLE, alternative

PHP_BODY = """U-ACME
T-first text message for 3 recipients
#-447123456789
#-441234567891
#-441234567892
T-second text message
T-for 2 recipients
#-441234567893
#-441234567894
T-last text message for 4
#-441234567895
#-441234567896
#-441234567897
#-441234567898;
"""
BODY = "U-ACME\nT-Hello\n#-+33612345678\n#-+33612345679\n"






class Gateway:
    def __init__(self, config: Config, store: Store, port: int) -> None:
        self.config, self.store, self.port = config, store, port

    def client(self, *, starttls: bool = False) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
        client.ehlo("client.example")
        if starttls:
            client.starttls(context=_insecure_context())
            client.ehlo("client.example")
        return client

    def send(self, message: str | bytes | EmailMessage, sender: str = "office@acme.example",
             to: str = "sms@localhost", **options: bool) -> tuple[int, str]:
        """The reply to DATA (or the refusal at MAIL/RCPT)."""
        with self.client(**options) as client:
            return self.transact(client, message, sender, to)

    @staticmethod
    def transact(client: smtplib.SMTP, message: str | bytes | EmailMessage, sender: str,
                 to: str = "sms@localhost", mail_options: tuple[str, ...] = ()) -> tuple[int, str]:
        if isinstance(message, str):
            message = plain(message)
        data = message.as_bytes() if isinstance(message, EmailMessage) else message
        data = re.sub(rb"\r?\n", b"\r\n", data)  # smtplib sends bytes as they are; SMTP wants CRLF
        code, text = client.mail(sender, list(mail_options))
        if code != 250:
            return code, text.decode()
        code, text = client.rcpt(to)
        if code != 250:
            client.rset()
            return code, text.decode()
        code, text = client.data(data)
        return code, text.decode()

    async def asend(self, *args: object, **kwargs: object) -> tuple[int, str]:
        return await in_thread(self.send, *args, **kwargs)


# Mail clients get threads of their own: the gateway's worker threads (asyncio.to_thread)
# must not be taken by clients that wait for it.




def plain(body: str, message_id: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "office@acme.example", "sms@localhost", "SMS"
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def start_gateway(dsn: str, **smtp_options: object) -> tuple[Gateway, asyncio.Server, smtp.Handler]:
    mail_out = smtp_options.pop("mail_out", MailOutConfig())
    port = free_port()
    config = Config(database=DatabaseConfig(dsn=dsn), mail_out=mail_out,
                    smtp=dataclasses.replace(SmtpConfig(listen=f"127.0.0.1:{port}",
                                                        addresses=("sms@localhost", "SMS@gw.example")),
                                             **smtp_options))
    store = await Store.open(dsn, max_connections=20)
    await store.accounts.add(Account(id=None, code="ACME", senders=("office@acme.example", "@branch.example"),
                                    smtp_password=hash_secret("acme-pass"), international=True))
    server, handler = await smtp.serve(config, store)
    return Gateway(config, store, port), server, handler


@pytest.fixture
async def gateway(dsn: str) -> AsyncIterator[Gateway]:
    gw, server, handler = await start_gateway(dsn)
    yield gw
    server.close()
    await handler.drain()
    await gw.store.close()


async def stored(dsn: str) -> list[tuple[int, int, int]]:
    """(mailing id, messages column, message rows) of every mailing."""
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT g.id, g.messages, (SELECT count(*) FROM messages m "
                                  "WHERE m.mailing_id = g.id) AS rows FROM mailings g ORDER BY g.id")
    await connection.close()
    return [(row["id"], row["messages"], row["rows"]) for row in rows]


def mailing_id(text: str) -> int:
    return int(text.split("mailing ")[1].split()[0].rstrip(","))


# ---------------------------------------------------------------- accepted

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
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
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


# ---------------------------------------------------------------- refused

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


async def test_limits_on_connections_and_mails_per_minute(dsn: str) -> None:
    gw, server, handler = await start_gateway(dsn, max_connections_per_ip=2, max_mails_per_minute=2)

    def scenario() -> tuple[int, list[int]]:
        first, second = gw.client(), gw.client()
        third = smtplib.SMTP()
        greeting = third.connect("127.0.0.1", gw.port)[0]
        for client in (first, second):
            client.quit()
        return greeting, [gw.send(plain(BODY + f"#-3361234567{n}\n"))[0] for n in range(3)]

    try:
        greeting, codes = await in_thread(scenario)
    finally:
        server.close()
        await handler.drain()
        await gw.store.close()
    assert greeting == 421
    assert codes == [250, 250, 452]


# ---------------------------------------------------------------- faults of ours

async def test_database_stopped_mid_run_every_mail_is_250_and_stored_or_451_and_not(
        pg_server, dsn: str) -> None:
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    gw, server, handler = await start_gateway(dsn)
    replies: list[tuple[int, str]] = []

    def run() -> None:
        for n in range(60):
            replies.append(gw.send(plain(f"U-ACME\nT-mail {n}\n#-3361234{n:04d}\n#-3361235{n:04d}\n",
                                         message_id=f"<run-{n}@acme.example>")))
            time.sleep(0.02)

    sender = asyncio.create_task(in_thread(run))
    while len(replies) < 10:
        await asyncio.sleep(0.01)
    await in_thread(cluster.stop, "immediate")
    await asyncio.sleep(1.0)
    await in_thread(cluster.start)
    await sender
    server.close()
    await handler.drain()
    await gw.store.close()

    codes = [code for code, _ in replies]
    assert set(codes) == {250, 451}, codes
    assert all(text == "4.3.0 database unavailable, retry later" for code, text in replies if code == 451)
    accepted = sorted(mailing_id(text) for code, text in replies if code == 250)
    assert [(row[0], row[1], row[2]) for row in await stored(dsn)] == [(m, 2, 2) for m in accepted]


async def test_fifty_clients_twenty_mails_each(dsn: str) -> None:
    gw, server, handler = await start_gateway(dsn, max_connections_per_ip=100, max_mails_per_minute=5000)

    def client(number: int) -> list[tuple[int, str, int]]:
        results = []
        with gw.client() as connection:
            for mail in range(20):
                count = 1 + (number + mail) % 3
                body = "U-ACME\nT-load\n" + "".join(f"#-336{number:02d}{mail:02d}{r:04d}\n" for r in range(count))
                code, text = gw.transact(connection, plain(body), "office@acme.example")
                results.append((code, text, count))
        return results

    try:
        results = await asyncio.gather(*(in_thread(client, n) for n in range(50)))
    finally:
        server.close()
        await handler.drain()
        await gw.store.close()
    replies = [reply for result in results for reply in result]
    assert len(replies) == 1000 and {code for code, _, _ in replies} == {250}
    expected = sorted((mailing_id(text), count, count) for _, text, count in replies)
    assert await stored(dsn) == expected


async def test_submission_report_reaches_the_sender(dsn: str, sink: Sink) -> None:
    gw, server, handler = await start_gateway(dsn, mail_out=MailOutConfig(relay=f"127.0.0.1:{sink.port}",
                                                                          from_="gw@gw.example"))
    account = await gw.store.accounts.get("ACME")
    await gw.store.accounts.update(dataclasses.replace(account, submission_report="sender"))
    mailer = asyncio.create_task(Mailer(gw.store, gw.config.mail_out).run())
    try:
        code, text = await gw.asend(BODY + "#-06x\n")
        refused = await gw.asend(BODY, sender="stranger@evil.example")
        await handler.drain()
        assert await in_thread(sink.received.wait, 10)
        await asyncio.sleep(1.5)  # a second report would be sent by now
    finally:
        mailer.cancel()
        await asyncio.gather(mailer, return_exceptions=True)
        server.close()
        await gw.store.close()
    assert code == 250 and refused[0] == 550
    assert len(sink.messages) == 1  # never to a refused sender
    report = sink.messages[0]
    assert report["To"] == "office@acme.example" and report["From"] == "gw@gw.example"
    assert report["Subject"] == f"SMS mailing {mailing_id(text)} queued: 2 messages, 2 parts"
    content = report.get_content()
    assert "+33612345679" in content and "invalid_number" in content


def _html_only_alternative() -> bytes:
    message = alternative("Your client cannot show HTML.", HTML_BODY)
    message["From"], message["To"] = "office@acme.example", "sms@localhost"
    return message.as_bytes()


def _octet_stream_attachment() -> bytes:
    message = MIMEMultipart()
    message["From"], message["To"] = "office@acme.example", "sms@localhost"
    message.attach(MIMEText("see attachment", "plain"))
    message.attach(MIMEApplication(BODY.encode("cp1252"), "octet-stream", Name="sms.txt"))
    return message.as_bytes()


def _forwarded_only() -> bytes:
    message = MIMEMultipart()
    message["From"], message["To"] = "office@acme.example", "sms@localhost"
    message.attach(MIMEText("forwarding", "plain"))
    message.attach(MIMEMessage(MIMEText(BODY, "plain")))
    return message.as_bytes()


@pytest.mark.parametrize(("build", "code", "start"), [
    (_html_only_alternative, 250, "2.0.0 mailing"),
    (_octet_stream_attachment, 250, "2.0.0 mailing"),
    (_forwarded_only, 554, "5.6.0 no_body"),
])
async def test_email_shapes_of_the_format(gateway: Gateway, build, code: int, start: str) -> None:
    reply_code, text = await gateway.asend(build())
    assert (reply_code, text[:len(start)]) == (code, start)
