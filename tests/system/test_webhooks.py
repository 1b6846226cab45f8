"""Signed event webhooks (issue 17), received by a real HTTP server that checks each
signature the way the README's receiver does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ecosms_gw.core import webhook
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, daemon
from tests.support.net import free_port
from tests.support.smsc import Peer

KEY = "whsec-test-key"


def signed_by_us(headers: dict[str, str], raw: bytes, secret: bytes = KEY.encode()) -> bool:
    """The README's receiver check: our HMAC over `t.body`, at most 5 minutes old."""
    fields = dict(part.split("=", 1) for part in headers["X-Ecosms-Signature"].split(","))
    mac = hmac.new(secret, fields["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"]) and abs(time.time() - int(fields["t"])) <= 300


class Receiver:
    """A customer's endpoint: answers 500 until `failing_until`, then takes every batch
    whose signature is good."""

    def __init__(self, failing_until: float = 0.0) -> None:
        self.failing_until = failing_until
        self.events: list[dict] = []
        self.refused = self.failed = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if time.monotonic() < self.failing_until:
            self.failed += 1
            return web.Response(status=500)
        if not signed_by_us(dict(request.headers), raw):
            self.refused += 1
            return web.Response(status=401)
        batch = (await request.json())["events"]
        assert request.headers["X-Ecosms-Event-Ids"] == ",".join(str(event["id"]) for event in batch)
        self.events += batch
        return web.Response(status=204)


async def test_every_event_arrives_once_signed_and_in_order_after_the_receiver_was_down(
        dsn: str, store: Store, tmp_path: Path) -> None:
    receiver = Receiver(failing_until=time.monotonic() + 10)
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     webhook_url=f"http://127.0.0.1:{port}/events", webhook_secret=KEY))
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "200")
    count = 100
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port, ECOSMS_PING_ALLOW_PRIVATE="true") as base, \
                aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            status, created = await client.call("POST", "/rest/mailing", json={
                "text": "Hello", "contacts": [{"recipient": f"+336{n:08d}"} for n in range(count)]})
            assert status == 201
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                statuses = [e for e in receiver.events if e["type"] == "status"]
                if len(statuses) >= 2 * count and any(e.get("status") == "ended" for e in receiver.events):
                    break
                await asyncio.sleep(0.2)
    finally:
        peer.stop()
        await runner.cleanup()
    assert receiver.failed >= 1 and receiver.refused == 0
    ids = [event["id"] for event in receiver.events]
    assert len(ids) == len(set(ids))  # each once
    by_message: dict[int, list[str]] = {}
    for event in receiver.events:
        if event["type"] == "status":
            by_message.setdefault(event["smsId"], []).append(event["status"])
    assert len(by_message) == count
    assert {tuple(statuses) for statuses in by_message.values()} == {("on", "ok")}  # in order
    assert [(e["mailingId"], e["status"]) for e in receiver.events if e["type"] == "mailing"] == [
        (created["id"], "created"), (created["id"], "ended")]


def test_a_tampered_body_or_an_old_signature_fails_the_check() -> None:
    raw = webhook.body([7], ['{"type": "status", "smsId": 1, "status": "ok"}'])
    now = int(time.time())
    good = {"X-Ecosms-Signature": webhook.signature(KEY, now, raw)}
    old = {"X-Ecosms-Signature": webhook.signature(KEY, now - 600, raw)}
    assert signed_by_us(good, raw) and webhook.verify(KEY, good["X-Ecosms-Signature"], raw, now)
    assert not signed_by_us(good, raw.replace(b'"ok"', b'"ko"'))
    assert not signed_by_us(old, raw) and not webhook.verify(KEY, old["X-Ecosms-Signature"], raw, now)
    assert not signed_by_us(good, raw, secret=b"another key")
    assert raw.startswith(b'{"events":[{"id":7,"type":"status"')
