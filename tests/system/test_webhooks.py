"""Signed event webhooks (issue 17), received by the README's own receiver, run as a
customer would copy it, behind an endpoint that first answers 500 for a minute."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ecosms_gw.core import webhook
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, daemon
from tests.support.browser import chromium
from tests.support.daemon import COMMAND, environment
from tests.support.net import free_port
from tests.support.smsc import Peer

KEY = "whsec-test-key"
README = Path(__file__).parents[2] / "README.md"
FAILING_S = 60
MESSAGES = 300
REPLY_EVERY = 3


def readme_receiver(port: int) -> str:
    """The README's receiver as a customer copies it, with the account's secret and a port."""
    text = README.read_text()
    start = text.index("    import hashlib, hmac, time\n")
    end = text.index("web.run_app(app, port=9000)", start) + len("web.run_app(app, port=9000)")
    code = textwrap.dedent(text[start:end])
    return code.replace("b\"the account's --webhook-secret\"", repr(KEY.encode())).replace("9000", str(port))


class Receiver:
    """The README's receiver in its own process; `events` are what it printed, in order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: list[dict] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-u", "-c", readme_receiver(self.port), stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        while b"Running on" not in await asyncio.wait_for(self.process.stdout.readline(), 30):
            pass
        asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            if line.startswith(b"{"):
                self.events.append(ast.literal_eval(line.decode()))

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


class Front:
    """The customer's endpoint: 500 until `failing_until`, then the receiver behind it."""

    def __init__(self, behind: str, failing_until: float) -> None:
        self.behind = behind
        self.failing_until = failing_until
        self.failed = 0
        self.answers: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if time.monotonic() < self.failing_until:
            self.failed += 1
            return web.Response(status=500)
        headers = {name: request.headers[name] for name in ("Content-Type", "X-Ecosms-Signature")}
        async with aiohttp.ClientSession() as session, session.post(self.behind, data=raw, headers=headers) as answer:
            self.answers.append(answer.status)
            return web.Response(status=answer.status)


async def shown_while_failing(base: str, dsn: str) -> tuple[dict, str, str, str]:
    """The failing webhook as an operator sees it: /monitor/data, /metrics, `ecosms-gw
    status` and the monitor page in Chromium."""
    operator = {"Authorization": "Bearer op-secret"}
    async with aiohttp.ClientSession(headers=operator) as session:
        async with session.get(base + "/monitor/data") as response:
            data = await response.json()
        async with session.get(base + "/metrics") as response:
            scraped = await response.text()
    status = await asyncio.to_thread(subprocess.run, [COMMAND, "status"], env=environment(ECOSMS_DATABASE_DSN=dsn),
                                     capture_output=True, text=True, timeout=60)
    page = await chromium("--dump-dom", f"{base}/monitor#token=op-secret")
    return data["notifications"], scraped, status.stdout, page


async def test_every_event_arrives_once_signed_and_in_order_after_the_receiver_failed_a_minute(
        dsn: str, store: Store, tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    front = Front(f"http://127.0.0.1:{receiver.port}/events", time.monotonic() + FAILING_S)
    app = web.Application()
    app.router.add_post("/events", front.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     webhook_url=f"http://127.0.0.1:{port}/events", webhook_secret=KEY))
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "200", "--reply-every", str(REPLY_EVERY))
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port, ECOSMS_PING_ALLOW_PRIVATE="true",
                          ECOSMS_HTTP_OPERATOR_TOKEN="op-secret") as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            created = []
            for first in range(0, MESSAGES, 150):  # at most 200 contacts a call
                status, mailing = await client.call("POST", "/rest/mailing", json={
                    "text": "Table for four at 8?",
                    "contacts": [{"recipient": f"+336{n:08d}"} for n in range(first, first + 150)]})
                assert status == 201, mailing
                created.append(mailing["id"])
            while not front.failed:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # the failure is written
            notifications, scraped, status_text, page = await shown_while_failing(base, dsn)
            deadline = time.monotonic() + FAILING_S + 120
            while time.monotonic() < deadline and sum(e.get("status") == "ended" for e in receiver.events) < 2:
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # replies come 1.5 s after their SMS
            async with session.get(base + "/monitor/data", headers={"Authorization": "Bearer op-secret"}) as response:
                after = (await response.json())["notifications"]
            tampered, old = await refused_by_the_receiver(session, receiver.port)
    finally:
        peer.stop()
        await receiver.stop()
        await runner.cleanup()
    [failing] = notifications["failing"]
    assert (failing["account"], failing["last_error"], failing["attempts"]) == ("ACME", "HTTP 500", 1)
    assert "ecosms_webhook_failing_accounts 1.0" in scraped
    assert "webhook of ACME failing: 1 failed attempts" in status_text and "HTTP 500" in status_text
    assert ">HTTP 500<" in page  # the failing receiver on the page, in its table
    assert after["failing"] == [] and after["webhooks"] == 0
    assert front.failed >= 2 and set(front.answers) == {204}  # the README's check took every batch
    assert (tampered, old) == (401, 401)
    ids = [event["id"] for event in receiver.events]
    assert len(ids) == len(set(ids))  # each once
    by_message: dict[int, list[str]] = {}
    for event in receiver.events:
        if event["type"] == "status":
            by_message.setdefault(event["smsId"], []).append(event["status"])
    assert len(by_message) == MESSAGES
    replied = sorted("+" + line["reply"] for line in peer.lines() if "reply" in line)
    replies = [event for event in receiver.events if event["type"] == "reply"]
    assert len(replied) == MESSAGES // REPLY_EVERY
    assert sorted(event["recipient"] for event in replies) == replied
    assert all(event["response"] == "Yes" for event in replies)
    answered = {event["smsId"] for event in replies}
    assert {message: tuple(statuses) for message, statuses in by_message.items()} == {  # in order
        message: ("on", "ok", "rep") if message in answered else ("on", "ok") for message in by_message}
    mailings = [(e["mailingId"], e["status"]) for e in receiver.events if e["type"] == "mailing"]
    assert sorted(mailings) == [(mailing, status) for mailing in created for status in ("created", "ended")]
    assert all(mailings.index((mailing, "created")) < mailings.index((mailing, "ended")) for mailing in created)


async def refused_by_the_receiver(session: aiohttp.ClientSession, port: int) -> tuple[int, int]:
    """The README's receiver given a tampered body, then a signature 10 minutes old."""
    raw = webhook.body([7], ['{"type": "status", "smsId": 1, "status": "ok"}'])
    now = int(time.time())
    url = f"http://127.0.0.1:{port}/events"
    async with session.post(url, data=raw.replace(b'"ok"', b'"ko"'),
                            headers={"X-Ecosms-Signature": webhook.signature(KEY, now, raw)}) as tampered:
        pass
    async with session.post(url, data=raw, headers={"X-Ecosms-Signature": webhook.signature(KEY, now - 600, raw)}) as old:
        pass
    return tampered.status, old.status


def test_our_own_check_refuses_a_tampered_body_an_old_signature_and_another_key() -> None:
    raw = webhook.body([7], ['{"type": "status", "smsId": 1, "status": "ok"}'])
    now = int(time.time())
    good = webhook.signature(KEY, now, raw)
    assert webhook.verify(KEY, good, raw, now)
    assert not webhook.verify(KEY, good, raw.replace(b'"ok"', b'"ko"'), now)
    assert not webhook.verify(KEY, webhook.signature(KEY, now - 600, raw), raw, now)
    assert not webhook.verify("another key", good, raw, now)
    assert raw.startswith(b'{"events":[{"id":7,"type":"status"')
