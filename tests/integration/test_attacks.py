"""A determined attacker on each door, with real clients: SMTP relaying and password
guessing, FTP bounces and SITE commands (the FTP jail: test_ftp.py; tokens:
test_api_rules.py), and our calls steered to a private address (pings: test_ping.py). Each
attempt is refused, and the refusal is what a user would see."""

from __future__ import annotations

import asyncio
import dataclasses
import ftplib
import smtplib
from pathlib import Path

import pytest
from aiohttp import web

from ecosms_gw.config import PingConfig
from ecosms_gw.core.accounts import LOGIN_FAILURES_PER_MINUTE, Account
from ecosms_gw.notify.webhooks import WebhookSender
from ecosms_gw.store import Store
from tests.support.ftp_drop import Drop
from tests.support.gateway import BODY, Gateway, plain, start_gateway, stored
from tests.support.mail import in_thread
from tests.support.net import http_server, self_signed
from tests.support.smsc import queue_mailing

RELAY_ATTEMPTS = [
    "<victim@elsewhere.example>",  # plainly outside
    "<sms%elsewhere.example@localhost>",  # the percent hack
    "<@localhost:victim@elsewhere.example>",  # a source route through us
    "<elsewhere.example!victim@localhost>",  # a bang path
    '<"victim@elsewhere.example"@localhost>',  # a quoted local part carrying a domain
    "<victim@elsewhere.example@localhost>",  # two at signs
]


@pytest.mark.parametrize("recipient", RELAY_ATTEMPTS)
async def test_no_relay_through_any_address_form(gateway: Gateway, dsn: str, recipient: str) -> None:
    def attempt() -> tuple[int, int]:
        with gateway.client() as client:
            client.ehlo()
            assert client.mail("office@acme.example")[0] == 250
            code = client.docmd("RCPT", f"TO:{recipient}")[0]
            data = client.docmd("DATA")[0]
            return code, data

    rcpt, data = await in_thread(attempt)
    assert rcpt in (501, 550, 553) and data == 503  # refused; nothing to send data for
    assert await stored(dsn) == []


async def test_guessing_smtp_passwords_is_stopped_per_address(dsn: str, tmp_path: Path) -> None:
    """After LOGIN_FAILURES_PER_MINUTE wrong passwords from one address, no password is
    checked from it (the right one neither) for a minute; mail from allowed senders
    still gets through."""
    cert, key = self_signed(tmp_path)
    gw, server, handler = await start_gateway(dsn, tls_cert=str(cert), tls_key=str(key))

    def plain_auth(client: smtplib.SMTP, password: str) -> int:
        client.user, client.password = "ACME", password
        try:
            return client.auth("PLAIN", client.auth_plain)[0]
        except smtplib.SMTPAuthenticationError as error:
            return error.smtp_code

    def guesses() -> tuple[list[int], int, tuple[int, str]]:
        with gw.client(starttls=True) as client:
            codes = [plain_auth(client, f"guess-{guess}") for guess in range(LOGIN_FAILURES_PER_MINUTE + 2)]
        with gw.client(starttls=True) as client:
            right = plain_auth(client, "acme-pass")
        return codes, right, gw.send(plain(BODY))

    try:
        codes, right, mail = await in_thread(guesses)
    finally:
        server.close()
        await handler.drain()
        await gw.store.close()
    assert codes == [535] * LOGIN_FAILURES_PER_MINUTE + [454, 454]
    assert right == 454
    assert mail[0] == 250


async def test_ftp_bounces_and_site_commands_are_refused(drop: Drop) -> None:
    def attempts() -> dict[str, str]:
        seen = {}
        with drop.client() as client:
            for label, command in (("PORT to another host", "PORT 10,0,0,1,0,80"),
                                   ("PORT to a privileged port", "PORT 127,0,0,1,0,25"),
                                   ("EPRT to another host", "EPRT |1|10.0.0.1|80|"),
                                   ("SITE CHMOD", "SITE CHMOD 777 done"),
                                   ("SITE on a path outside", "SITE CHMOD 777 ../OTHER")):
                try:
                    seen[label] = client.sendcmd(command)[:3]
                except ftplib.error_perm as error:
                    seen[label] = str(error)[:3]
        return seen

    seen = await in_thread(attempts)
    assert all(code.startswith("5") for code in seen.values()), seen


@pytest.mark.parametrize("steer", ["redirect", "localhost"])
async def test_a_webhook_steered_to_an_internal_service_never_reaches_it(store: Store, account: Account,
                                                                          steer: str) -> None:
    """The account's webhook answers 302 to a service on the gateway's own network, or
    names it as `localhost`: the service is never called, the webhook shows as failing."""
    reached: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(text="internal")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(inside + "/admin")

    async with http_server(internal) as inside, http_server(redirect) as outside:
        url = outside + "/hook" if steer == "redirect" else inside.replace("127.0.0.1", "localhost") + "/hook"
        await store.accounts.update(dataclasses.replace(account, webhook_url=url, webhook_secret="k"))
        sender = WebhookSender(store, PingConfig(allow_private=steer == "redirect"))  # a test's first hop is local
        task = asyncio.create_task(sender.run())
        try:
            await queue_mailing(store, account, ["U-ACME\nT-x\n#-33600000001"])
            for _ in range(200):
                if failing := await store.webhooks.failing():
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert reached == []
    assert [(f.account, f.attempts) for f in failing] == [("ACME", 1)]
    expected = "HTTP 302" if steer == "redirect" else "private address"
    assert expected in (failing[0].last_error or "")
