"""SMTP under load and faults: limits, the database stopped mid-run, fifty clients at once, and the submission report mailed back."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import time
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from ecosms_gw.config import MailOutConfig
from ecosms_gw.config_values import Address
from ecosms_gw.notify.mail_out import Mailer
from tests.support.gateway import BODY, Gateway, mailing_id, plain, start_gateway, stored
from tests.support.mail import Sink, in_thread
from tests.support.samples import HTML_BODY, alternative


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
    gw, server, handler = await start_gateway(dsn, mail_out=MailOutConfig(relay=Address("127.0.0.1", sink.port),
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
