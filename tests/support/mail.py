"""An SMTP sink that records what the gateway mails, and running blocking clients off the loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import TypeVar

import pytest
from aiosmtpd.controller import Controller

from tests.support.net import free_port

T = TypeVar("T")
_CLIENTS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="smtp-client")


class Sink:
    """A real SMTP server receiving what the gateway sends out (reports)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelope_senders: list[str] = []
        self.received = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        from email import message_from_bytes, policy
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        self.envelope_senders.append(envelope.mail_from)
        self.received.set()
        return "250 OK"


@pytest.fixture
def sink() -> Sink:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


async def in_thread(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(
        _CLIENTS, functools.partial(function, *args, **kwargs))
