"""The SMTP door on the test loop, real PostgreSQL behind it, and smtplib as the client."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import smtplib
import ssl
from collections.abc import AsyncIterator
from email.message import EmailMessage

import asyncpg
import pytest

from ecosms_gw.config import Config, DatabaseConfig, MailOutConfig, SmtpConfig
from ecosms_gw.config_values import Address
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.ingest import smtp
from ecosms_gw.store import Store
from tests.support.mail import in_thread
from tests.support.net import free_port

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
                    smtp=dataclasses.replace(SmtpConfig(listen=Address("127.0.0.1", port),
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
