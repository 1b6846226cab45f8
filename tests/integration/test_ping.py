"""Ping URLs: the calls (pure), and the pinger against real HTTP servers while the
dispatcher sends through the simulator on real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from aiohttp import web

from ecosms_gw.config import PingConfig, SmscConfig
from ecosms_gw.core import ping
from ecosms_gw.core.accounts import Account, InvalidAccount, validate
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.notify.pinger import Pinger
from ecosms_gw.smpp.delivery import Deliveries
from ecosms_gw.smpp.link import Dispatcher
from ecosms_gw.smpp.simulator import Behaviour, Simulator
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.net import http_server
from tests.support.smsc import all_final, run_until, scalar


@pytest.mark.parametrize(("url", "method", "expected"), [
    ("http://h/p", "GET", [("http://h/p?sms_id=7", None), ("http://h/p?sms_id=9", None)]),
    ("http://h/p?key=k", "GET", [("http://h/p?key=k&sms_id=7", None), ("http://h/p?key=k&sms_id=9", None)]),
    ("http://h/p/#id#", "GET", [("http://h/p/7", None), ("http://h/p/9", None)]),
    ("http://h/p?ids=#ids#", "GET", [("http://h/p?ids=7,9", None)]),
    ("http://h/p", "POST", [("http://h/p", "sms_id=7"), ("http://h/p", "sms_id=9")]),
    ("http://h/p?ids=#ids#", "POST", [("http://h/p?ids=7,9", "sms_id=7%2C9")]),
])
def test_the_three_url_forms(url: str, method: str, expected: list) -> None:
    # message 7 changed twice: it is named once
    calls = ping.calls(url, [(1, 7), (2, 9), (3, 7)], method)
    assert [(call.url, call.form) for call in calls] == expected
    assert sorted(i for call in calls for i in call.ping_ids) == [1, 2, 3]


def test_batches_are_bounded() -> None:
    calls = ping.calls("http://h/?ids=#ids#", [(i, i) for i in range(250)], "GET")
    assert [len(call.ping_ids) for call in calls] == [100, 100, 50]


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://h/x", "only http and https URLs are called"), ("file:///etc/passwd", "only http and https URLs are called"),
    ("http:///x", "no host"), ("https://example.com/ping?x=1", None),
])
def test_only_http_urls(url: str, problem: str | None) -> None:
    assert ping.url_problem(url) == problem
    if problem:
        with pytest.raises(InvalidAccount, match="--ping-url"):
            validate(Account(id=None, code="A", ping_url=url))


@pytest.mark.parametrize(("host", "refused"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("169.254.169.254", True),
    ("[::1]", True), ("::ffff:127.0.0.1", True), ("100.64.0.1", True), ("93.184.216.34", False),
    ("example.com", False),  # names are checked when resolved
])
def test_private_addresses_are_refused(host: str, refused: bool) -> None:
    assert ping.address_refused(host, allow_private=False) is refused
    assert ping.address_refused(host, allow_private=True) is False


def test_backoff_grows_to_an_hour() -> None:
    assert [ping.backoff_s(n) for n in (0, 1, 2, 7, 30)] == [30, 60, 120, 3600, 3600]


class Receiver:
    """An HTTP server that records the ping calls it gets, answering `status`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.status = 200
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, request.path_qs, await request.text()))
        self.arrived.set()
        return web.Response(status=self.status)

    def ids(self) -> list[int]:
        return sorted(int(i) for _, path, body in self.calls if self.status == 200
                      for i in (body.partition("=")[2] or path.rpartition("=")[2]).replace("%2C", ",").split(","))


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    async with http_server(found.handle) as base:
        yield found, base


@contextlib.asynccontextmanager
async def running(pinger: Pinger) -> AsyncIterator[None]:
    task = asyncio.create_task(pinger.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def send_all(store: Store, dsn: str, account: Account, count: int, first: int = 0,
                   ping_url: str | None = None) -> list[int]:
    """Queue `count` messages (a mailing with `ping_url`) and dispatch them through the
    simulator until every message has its final receipt; their ids."""
    simulator = Simulator(Behaviour(dlr_delay=0.05))
    host, port = await simulator.start()
    smsc = SmscConfig(name="sim", tps=5000)
    dispatcher = Dispatcher(smsc, store, 1, asyncio.Event(), Deliveries(store).handler(smsc), (host, port))
    body = "U-ACME\n" + "".join(f"T-hi {n}\n#-336{n:08d}\n" for n in range(first, first + count))
    await store.mailings.enqueue(Submission(account.id, "http", ping_url=ping_url), compose(parse_all([body]), AccountRules()), {})

    try:
        await run_until(dispatcher, all_final(dsn))
    finally:
        await simulator.close()
    connection = await asyncpg.connect(dsn)
    ids = [row["id"] for row in await connection.fetch(
        "SELECT id FROM messages WHERE recipient = ANY($1) ORDER BY id", [f"+336{n:08d}" for n in range(first, first + count)])]
    await connection.close()
    return ids


async def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.1)


async def test_each_change_is_pinged_with_the_message_id(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/ping.php"))
        async with running(Pinger(store, PingConfig(allow_private=True))):
            ids = await send_all(store, dsn, account, 20)
            await wait_for(lambda: _nothing_left(dsn))
    # each message went `on` then `ok`: pinged for each change, or once when both came together
    assert set(found.ids()) == set(ids)
    assert all(method == "GET" and path.startswith("/ping.php?sms_id=") for method, path, _ in found.calls)


async def _nothing_left(dsn: str) -> bool:
    return await scalar(dsn, "SELECT count(*) FROM pings") == 0


async def test_a_mailing_with_its_own_ping_url(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/account"))
        async with running(Pinger(store, PingConfig(allow_private=True))):
            own = await send_all(store, dsn, account, 3, ping_url=base + "/mailing/#id#")
            usual = await send_all(store, dsn, account, 2, first=10)
            await wait_for(lambda: _nothing_left(dsn))
    assert {path for _, path, _ in found.calls if path.startswith("/mailing/")} == {f"/mailing/{i}" for i in own}
    assert {path for _, path, _ in found.calls if path.startswith("/account")} == {
        f"/account?sms_id={i}" for i in usual}


async def test_batched_post_pings(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/hook?ids=#ids#"))
        async with running(Pinger(store, PingConfig(allow_private=True, method="POST"))):
            ids = await send_all(store, dsn, account, 30)
            await wait_for(lambda: _nothing_left(dsn))
    assert set(found.ids()) == set(ids)
    assert len(found.calls) < 2 * len(ids)  # batched, not one call per change
    assert all(method == "POST" and body.startswith("sms_id=") for method, _, body in found.calls)


async def test_a_failing_url_is_retried_later(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        found.status = 500
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/#id#"))
        async with running(Pinger(store, PingConfig(allow_private=True))):
            [message_id] = await send_all(store, dsn, account, 1)
            await wait_for(lambda: _attempted(dsn))
            failed_calls = len(found.calls)
            assert await scalar(dsn, "SELECT count(*) FROM pings WHERE due_at > now() + interval '20 seconds'") >= 1
            found.status = 200
            connection = await asyncpg.connect(dsn)
            await connection.execute("UPDATE pings SET due_at = now()")  # the backoff has passed
            await connection.close()
            await wait_for(lambda: _nothing_left(dsn))
    assert failed_calls >= 1 and len(found.calls) > failed_calls
    assert found.calls[-1][1] == f"/{message_id}"


async def _attempted(dsn: str) -> bool:
    return await scalar(dsn, "SELECT count(*) FROM pings WHERE attempts > 0") > 0


async def test_pings_given_up_after_the_retry_period(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        found.status = 503
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/p"))
        await send_all(store, dsn, account, 1)
        connection = await asyncpg.connect(dsn)
        await connection.execute("UPDATE pings SET created_at = now() - interval '25 hours'")
        await connection.close()
        async with running(Pinger(store, PingConfig(allow_private=True, retry_hours=24))):
            await wait_for(lambda: _nothing_left(dsn))
    assert found.calls  # tried once more, then dropped


async def test_private_addresses_are_not_called_by_default(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/p"))
        async with running(Pinger(store, PingConfig())):
            await send_all(store, dsn, account, 3)
            await wait_for(lambda: _nothing_left(dsn))
    assert found.calls == []


async def test_localhost_by_name_is_refused_when_resolved(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME",
                                                  ping_url=base.replace("127.0.0.1", "localhost") + "/p"))
        async with running(Pinger(store, PingConfig())):
            await send_all(store, dsn, account, 1)
            await wait_for(lambda: _attempted(dsn))
    assert found.calls == []


async def test_a_redirect_to_an_internal_address_is_not_followed(store: Store, dsn: str) -> None:
    """The customer's URL answers 302 to a service on the gateway's own network: our call
    ends there (a failure, retried later) and the internal service is never called."""
    redirected: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        redirected.append(request.path)
        raise web.HTTPFound(internal + "/admin/delete-everything")

    async with receiver() as (found, internal), http_server(redirect) as outside:
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=outside + "/p"))
        async with running(Pinger(store, PingConfig(allow_private=True))):  # the first hop is local in a test
            await send_all(store, dsn, account, 1)
            await wait_for(lambda: _attempted(dsn))
    assert redirected and found.calls == []


async def test_a_dead_url_does_not_hold_up_sending(store: Store, dsn: str) -> None:
    """A server that accepts connections and never answers: every message still goes out
    and gets its receipt while the calls hang."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account = await store.accounts.add(Account(id=None, code="ACME", ping_url=f"http://127.0.0.1:{port}/p"))
    try:
        async with running(Pinger(store, PingConfig(allow_private=True, timeout_s=120, concurrency=4))):
            ids = await send_all(store, dsn, account, 300)
            await wait_for(lambda: _has(connections))
            waiting = await scalar(dsn, "SELECT count(*) FROM pings WHERE attempts = 0")
    finally:
        server.close()
        for writer in connections:
            writer.close()
    assert len(ids) == 300
    assert 1 <= len(connections) <= 4  # bounded: the concurrency, and a quarter of it per host
    assert waiting > 0  # none answered, none given up: they wait for their calls


async def _has(items: list) -> bool:
    return bool(items)


async def test_pings_of_another_account_never_leave(store: Store, dsn: str) -> None:
    async with receiver() as (found, base):
        await store.accounts.add(Account(id=None, code="OTHER", ping_url=base + "/other"))
        account = await store.accounts.add(Account(id=None, code="ACME"))
        async with running(Pinger(store, PingConfig(allow_private=True))):
            await send_all(store, dsn, account, 5)
            await asyncio.sleep(1.5)
    assert found.calls == []
    assert await scalar(dsn, "SELECT count(*) FROM pings") == 0


async def test_pings_survive_a_restart(store: Store, dsn: str) -> None:
    """Pings are rows: written with the events even when no pinger runs, called later."""
    async with receiver() as (found, base):
        account = await store.accounts.add(Account(id=None, code="ACME", ping_url=base + "/p"))
        ids = await send_all(store, dsn, account, 4)
        assert await scalar(dsn, "SELECT count(*) FROM pings") >= 4
        async with running(Pinger(store, PingConfig(allow_private=True))):
            await wait_for(lambda: _nothing_left(dsn))
    assert set(found.ids()) == set(ids)


async def test_the_lease_brings_back_pings_of_a_dead_daemon(store: Store, dsn: str) -> None:
    account = await store.accounts.add(Account(id=None, code="ACME", ping_url="https://example.com/p"))
    await send_all(store, dsn, account, 2)
    taken = await store.notifications.claim_pings(100, timedelta(seconds=1))
    assert len(taken) >= 2 and await store.notifications.claim_pings(100, timedelta(seconds=1)) == []  # leased
    await asyncio.sleep(1.2)  # the daemon that took them died: they come back
    assert {row.id for row in await store.notifications.claim_pings(100, timedelta(seconds=1))} == {row.id for row in taken}
