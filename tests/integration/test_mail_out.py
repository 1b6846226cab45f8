"""Outgoing mail through a relay that wants STARTTLS and AUTH (aiosmtpd as the relay)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ecosms_gw.config import MailOutConfig
from ecosms_gw.config_values import Address
from ecosms_gw.notify.mail_out import Mailer
from ecosms_gw.store import Store
from ecosms_gw.store.notifications import Mail
from tests.support.net import free_port, self_signed


class Relay:
    """Takes mail only after STARTTLS and AUTH as relay-user / relay-pass."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, bytes]] = []
        self.arrived = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append((session.auth_data.login.decode() if session.auth_data else None,
                              envelope.original_content))
        self.arrived.set()
        return "250 OK"

    @staticmethod
    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"relay-user", b"relay-pass")
        return AuthResult(success=ok, auth_data=auth_data if ok else None)


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cert, key = self_signed(tmp_path, "relay")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the gateway checks the relay's certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=Relay.authenticate, auth_required=True)
    controller.start()
    yield handler, controller.port
    controller.stop()


async def run_mailer(store: Store, settings: MailOutConfig, seconds: float) -> None:
    task = asyncio.create_task(Mailer(store, settings).run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_starttls_and_auth_at_the_relay(store: Store, relay) -> None:
    handler, port = relay
    await store.notifications.queue_mail(Mail("office@acme.example", "Replies", "a reply"))
    await run_mailer(store, MailOutConfig(relay=Address("127.0.0.1", port), starttls=True, username="relay-user",
                                          password="relay-pass"), 3)
    assert handler.arrived.is_set()
    [(login, content)] = handler.received
    assert login == "relay-user" and b"a reply" in content
    assert (await store.cluster()).mail_backlog == 0


async def test_a_mail_refused_for_good_is_given_up_and_shown(store: Store, relay) -> None:
    handler, port = relay
    await store.notifications.queue_mail(Mail("nobody@acme.example", "Replies", "a reply"))
    await run_mailer(store, MailOutConfig(relay=Address("127.0.0.1", port), starttls=True, username="relay-user",
                                          password="relay-pass"), 3)
    cluster = await store.cluster()
    assert not handler.received
    assert (cluster.mail_backlog, cluster.mail_failed) == (0, 1)  # 550 is final: given up, kept to be seen
