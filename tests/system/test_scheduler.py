"""The scheduler (issue 15) against node-smpp: the most urgent first, accounts sharing a
link, caps that hold no one back, validity."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import smtplib
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

from ecosms_gw.config import Config
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.ingest import pipeline
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.api import SECRET, Client
from tests.support.api import daemon as api_daemon
from tests.support.browser import chromium
from tests.support.daemon import COMMAND, environment, write_config
from tests.support.smsc import Peer, dispatcher_for, statuses


async def enqueue(store: Store, account: Account, numbers: range, priority: int = 1, text: str = "bulk") -> list[int]:
    """Mailings of `account` to +336NNNNNNNN for each n (2,000 each), stored as the API
    stores them: their ids."""
    assert account.id is not None
    stored = []
    for first in range(numbers.start, numbers.stop, 2000):
        body = f"U-{account.code}\nT-{text}\n" + "".join(f"#-336{n:08d}\n" for n in range(first, min(first + 2000,
                                                                                                     numbers.stop)))
        stored.append((await store.mailings.enqueue(Submission(account.id, "http", priority=priority),
                                                    compose(parse_all([body]), AccountRules(max_messages=2000)),
                                                    {})).mailing_id)
    return stored


@contextlib.asynccontextmanager
async def running(dsn: str, tmp_path: Path, peer: Peer, tps: int) -> AsyncIterator[tuple[str, int]]:
    """`ecosms-gw run` sending to `peer` at `tps`: its API's base URL and SMTP port."""
    env = environment()
    process = subprocess.Popen([COMMAND, "run", "--config", str(write_config(tmp_path, dsn, peer.port, tps=tps))],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://" + env["ECOSMS_HTTP_LISTEN"]
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError, KeyError, ValueError):
                    async with session.get(base + "/health") as response:
                        if response.status == 200:
                            break
                assert process.poll() is None
                await asyncio.sleep(0.1)
        yield base, int(env["ECOSMS_SMTP_LISTEN"].rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(30)


async def test_an_urgent_sms_overtakes_a_bulk_campaign(store: Store, dsn: str, tmp_path: Path) -> None:
    """A queues 20,000 at priority 0 by SMTP (link tps 200: 100 s of sending); B's one SMS
    at priority 2 reaches the SMSC at once, not after them."""
    await store.accounts.add(Account(id=None, code="BULK", senders=("ops@example.com",), priority=0))
    await store.accounts.add(Account(id=None, code="OTP", api_secret=hash_secret(SECRET), international=True))
    peer = Peer(tmp_path)
    try:
        async with running(dsn, tmp_path, peer, tps=200) as (base, smtp_port):
            with smtplib.SMTP("127.0.0.1", smtp_port) as mail:
                for first in range(0, 20_000, 2000):
                    body = "U-BULK\nT-Spring sale\n" + "".join(f"#-336{n:08d}\n" for n in range(first, first + 2000))
                    mail.sendmail("ops@example.com", ["sms@localhost"], f"Subject: sale\n\n{body}".encode())
            async with aiohttp.ClientSession() as session:
                client = Client(session, base)
                assert (await client.login("OTP")).status == 200
                await asyncio.sleep(1)  # the campaign is well under way
                status, created = await client.call("POST", "/rest/sms", json={
                    "text": "Your code is 4711", "priority": 2, "contacts": [{"recipient": "+447700900123"}]})
                answered = time.time()
                assert status == 201, created
                deadline = time.monotonic() + 30
                while not [p for p in peer.received() if p["destination"] == "447700900123"]:
                    assert time.monotonic() < deadline, "the urgent SMS did not come"
                    await asyncio.sleep(0.05)
    finally:
        peer.stop()
    received = peer.received()
    [urgent] = [p for p in received if p["destination"] == "447700900123"]
    before = [p for p in received if p["destination"] != "447700900123" and p["at"] < urgent["at"]]
    bulk_after_answer = [p for p in before if p["at"] / 1000 >= answered]
    assert urgent["priority"] == 2
    assert urgent["at"] / 1000 - answered < 1.0
    assert len(bulk_after_answer) <= 40  # what the window and the group in hand held (20 + 4), not the backlog
    assert len(before) < 5000  # most of the campaign was still waiting


class Sending:
    """A dispatcher sending to a node-smpp peer, for as long as a test needs."""

    def __init__(self, peer: Peer, task: asyncio.Task[None]) -> None:
        self.peer = peer
        self.task = task

    async def until(self, done: Callable[[list[dict]], bool], timeout: float) -> None:
        """Until `done` holds of what the peer received (the dispatcher still running)."""
        deadline = time.monotonic() + timeout
        while not done(self.peer.received()):
            assert time.monotonic() < deadline and not self.task.done()
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def dispatching(store: Store, tmp_path: Path, tps: int, window: int = 64) -> AsyncIterator[Sending]:
    peer = Peer(tmp_path)
    task = asyncio.create_task(dispatcher_for(peer.port, store, tps=tps, window=window).run())
    try:
        yield Sending(peer, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        peer.stop()


async def two_accounts(store: Store, tmp_path: Path, link_tps: int, enough: Callable[[list[str]], bool],
                       **a_options: int) -> tuple[list[str], list[dict]]:
    """A (`a_options`) and B, 1,000 queued each, A first, sent through one link at `link_tps`
    until `enough` of the owners seen at the peer: their order, and what the peer got."""
    a = await store.accounts.add(Account(id=None, code="A", international=True, **a_options))
    b = await store.accounts.add(Account(id=None, code="B", international=True))
    await enqueue(store, a, range(0, 1000))
    await enqueue(store, b, range(1000, 2000))
    def owners(received: list[dict]) -> list[str]:
        return ["A" if int(p["destination"][3:]) < 1000 else "B" for p in received]
    async with dispatching(store, tmp_path, tps=link_tps, window=10) as sending:
        await sending.until(lambda received: enough(owners(received)), 60)
        received = sending.peer.received()
    return owners(received), received


async def test_two_accounts_share_a_link_evenly(store: Store, tmp_path: Path) -> None:
    """1,000 each at the same priority, A queued first: neither takes more than 60% of
    any 200 consecutive submits."""
    owners, _ = await two_accounts(store, tmp_path, 100, lambda seen: len(seen) >= 600)
    shares = [owners[i:i + 200].count("A") / 200 for i in range(0, 401)]
    assert 0.4 <= min(shares) and max(shares) <= 0.6, (min(shares), max(shares))


async def test_weights_share_a_link_in_proportion(store: Store, tmp_path: Path) -> None:
    owners, _ = await two_accounts(store, tmp_path, 400, lambda seen: len(seen) >= 800, weight=3)
    assert 0.7 <= owners[:800].count("A") / 800 <= 0.8  # 3 to 1


async def test_a_capped_account_holds_no_one_back(store: Store, tmp_path: Path) -> None:
    """A capped at 10/s with 1,000 queued first, B with 1,000 and no cap, link tps 200:
    B's 1,000 leave at the link's rate, A's at its cap."""
    started = time.time()
    _, received = await two_accounts(store, tmp_path, 200, lambda seen: seen.count("B") >= 1000, tps=10)
    b_done = max(p["at"] for p in received if int(p["destination"][3:]) >= 1000) / 1000
    a_sent = [p["at"] / 1000 for p in received if int(p["destination"][3:]) < 1000 and p["at"] / 1000 <= b_done]
    assert b_done - started < 7
    assert len(a_sent) <= 10 * (b_done - started) + 10  # A kept to its cap meanwhile
    assert len(a_sent) >= 10 * (b_done - started) / 2  # and was not starved either


async def test_a_message_past_its_validity_is_not_sent(store: Store, dsn: str, account: Account,
                                                      tmp_path: Path) -> None:
    """Queued while the SMSC was away: one whose 5 minutes of validity ran out ends `ko`
    (expired) when its turn comes, one still valid is sent; the sweep expires the others
    without any SMSC."""
    await store.accounts.update(dataclasses.replace(account, international=True))
    assert account.id is not None
    for recipient, validity in (("33600000001", 5), ("33600000002", 60), ("33600000003", 5)):
        await store.mailings.enqueue(Submission(account.id, "http", validity_min=validity),
                                     compose(parse_all([f"U-ACME\nT-x\n#-{recipient}"]), AccountRules()), {})
    connection = await asyncpg.connect(dsn)
    await connection.execute("UPDATE messages SET due_at = now() - interval '10 minutes' "
                             "WHERE recipient IN ('+33600000001', '+33600000002')")
    await connection.execute("UPDATE messages SET due_at = now() - interval '10 minutes', state = 'claimed' "
                             "WHERE recipient = '+33600000003'")  # held by a dispatcher, then given back
    async with dispatching(store, tmp_path, tps=100) as sending:
        await sending.until(lambda received: len(received) >= 1, 30)
        await asyncio.sleep(1)
    peer = sending.peer
    await connection.execute("UPDATE messages SET state = 'queued' WHERE recipient = '+33600000003'")
    swept = await store.dispatch.expire(timedelta(hours=48), timedelta(hours=48))
    rows = await connection.fetch("SELECT recipient, status, code FROM messages ORDER BY recipient")
    await connection.close()
    assert [p["destination"] for p in peer.received()] == ["33600000002"]
    assert peer.received()[0]["validity"]  # the SMSC is told (node-smpp shows it as a date, an hour on)
    assert [tuple(row) for row in rows] == [("+33600000001", "ko", "expired"), ("+33600000002", "on", None),
                                           ("+33600000003", "ko", "expired")]
    assert swept.expired == 1
    assert set((await statuses(dsn)).values()) >= {("done", "ko", "expired")}
    assert await store.reads.expired_tally() == 2  # ecosms_messages_expired_total: at the claim, and swept


async def test_a_mail_is_spread_in_packets_by_the_account_default(store: Store, dsn: str, tmp_path: Path) -> None:
    """--batch-volume 100 --batch-delay-min 1, a mail of 300: three packets a minute apart."""
    await store.accounts.add(Account(id=None, code="NEWS", senders=("ops@example.com",), batch_volume=100,
                                     batch_delay_min=1))
    peer = Peer(tmp_path)
    try:
        async with running(dsn, tmp_path, peer, tps=500) as (_, smtp_port):
            with smtplib.SMTP("127.0.0.1", smtp_port) as mail:
                body = "U-NEWS\nT-Newsletter\n" + "".join(f"#-336{n:08d}\n" for n in range(300))
                mail.sendmail("ops@example.com", ["sms@localhost"], f"Subject: news\n\n{body}".encode())
            deadline = time.monotonic() + 180
            while len(peer.received()) < 300:
                assert time.monotonic() < deadline, len(peer.received())
                await asyncio.sleep(0.5)
    finally:
        peer.stop()
    arrivals = sorted((p["at"] / 1000, int(p["destination"][3:])) for p in peer.received())
    packets = [[at for at, n in arrivals if first <= n < first + 100] for first in (0, 100, 200)]
    assert all(max(packet) - min(packet) < 2 for packet in packets)  # each packet at once (500/s)
    starts = [min(packet) for packet in packets]
    assert all(58 <= b - a <= 62 for a, b in zip(starts, starts[1:], strict=False)), starts  # 60 s +- 2 s


async def test_an_api_mailing_names_its_packets(client: Client, dsn: str) -> None:
    status, created = await client.call("POST", "/rest/mailing", json={
        "text": "x", "batchVolume": 2, "batchDelay": 1,
        "contacts": [{"recipient": f"+3360000000{n}"} for n in range(5)]})
    half = await client.call("POST", "/rest/mailing", json={
        "text": "x", "batchVolume": 2, "contacts": [{"recipient": "+33600000001"}]})
    connection = await asyncpg.connect(dsn)
    offsets = await connection.fetch("SELECT round(extract(epoch FROM due_at - min(due_at) OVER ())) AS s "
                                     "FROM messages WHERE mailing_id = $1 ORDER BY id", created["id"])
    await connection.close()
    assert status == 201, created
    assert [row["s"] for row in offsets] == [0, 0, 60, 60, 120]
    assert half == (400, {"status": 400, "message": "batchVolume and batchDelay go together"})


async def paused_at_500(store: Store, dsn: str, tmp_path: Path, peer: Peer,
                        then: str) -> tuple[float, int, tuple[int, dict], tuple[int, dict]]:
    """2,000 at tps 100, paused when about 500 have left; then `resume` (until all left)
    or `delete` (cancel). The moment the pause was answered, how many had left 2 s later,
    the pause's and the second call's answers."""
    acme = await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    [mailing] = await enqueue(store, acme, range(2000))
    async with running(dsn, tmp_path, peer, tps=100) as (base, _), aiohttp.ClientSession() as session:
        client = Client(session, base)
        assert (await client.login()).status == 200
        deadline = time.monotonic() + 60
        while len(peer.received()) < 500:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        paused = await client.call("POST", "/rest/mailing", data={"action": "pause", "id": mailing})
        answered = time.time()
        await asyncio.sleep(2)
        left = len(peer.received())
        _, read = await client.call("GET", f"/rest/mailing?id={mailing}&properties=status,paused")
        assert read["list"] == [{"status": "paused", "paused": True}]
        second = await client.call("POST", "/rest/mailing", data={"action": then, "id": mailing})
        deadline = time.monotonic() + 60
        while then == "resume" and len(peer.received()) < 2000:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    return answered, left, paused, second


async def test_a_paused_mailing_sends_nothing_more_and_all_once_resumed(store: Store, dsn: str,
                                                                        tmp_path: Path) -> None:
    peer = Peer(tmp_path)
    try:
        answered, left, paused, resumed = await paused_at_500(store, dsn, tmp_path, peer, "resume")
    finally:
        peer.stop()
    received = peer.received()
    destinations = [p["destination"] for p in received]
    after_pause = [p for p in received[:left] if p["at"] / 1000 > answered]
    assert paused[0] == 200 and paused[1]["status"] == "paused" and 1000 < paused[1]["count"] < 1600
    assert after_pause == []  # nothing written once the pause was answered
    assert resumed == (200, {"count": paused[1]["count"], "status": "created"})
    assert len(destinations) == len(set(destinations)) == 2000  # each exactly once


async def test_a_paused_mailing_can_be_canceled_and_counts_stay_exact(store: Store, dsn: str,
                                                                      tmp_path: Path) -> None:
    peer = Peer(tmp_path)
    try:
        _, left, paused, canceled = await paused_at_500(store, dsn, tmp_path, peer, "delete")
        await asyncio.sleep(1)
    finally:
        peer.stop()
    assert canceled == (200, {"count": paused[1]["count"], "status": "interrupted"})
    assert len(peer.received()) == left and left + canceled[1]["count"] == 2000
    assert {value for value in (await statuses(dsn)).values()} == {("submitted", "on", None),
                                                                   ("canceled", "ko", "canceled")}


async def test_pause_and_resume_from_the_command_line_hold_returned_messages_too(
        store: Store, dsn: str, account: Account) -> None:
    """A message a dispatcher had taken comes back while its mailing is paused: it waits
    with the others, and goes again on resume."""
    [mailing] = await enqueue(store, account, range(3))
    [taken] = await store.dispatch.claim(1, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[taken.id])  # being written
    env = environment(ECOSMS_DATABASE_DSN=dsn)

    def ecosms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COMMAND, *args], env=env, capture_output=True, text=True, timeout=60)

    pausing = asyncio.create_task(asyncio.to_thread(ecosms, "pause", str(mailing)))
    await asyncio.sleep(2)
    waited = not pausing.done()  # the pause is answered once what was taken is settled
    await store.dispatch.return_unwritten(1, "main")  # its link was lost before writing it
    paused = await pausing
    held = await statuses(dsn)
    again = ecosms("pause", str(mailing))
    resumed = ecosms("resume", str(mailing))
    assert waited and paused.stdout == f"mailing {mailing} paused: 2 messages held\n", paused.stderr
    assert {state for state, _, _ in held.values()} == {"paused"}
    assert again.returncode == 1 and "is not sending" in again.stderr
    assert resumed.stdout == f"mailing {mailing} resumed: 3 messages queued again\n"
    assert len(await store.dispatch.claim(10, 1)) == 3


async def test_quiet_hours_hold_a_message_until_they_end_where_the_recipient_is(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """Quiet hours under way in Europe/Paris that end at the next minute but one: the +33
    message waits (its history says why) while another account's go, then leaves once
    they end there."""
    paris = ZoneInfo("Europe/Paris")
    ends = (datetime.now(paris) + timedelta(seconds=75)).replace(second=0, microsecond=0)
    window = f"{ends - timedelta(hours=2):%H:%M}-{ends:%H:%M}"
    quiet = await store.accounts.add(Account(id=None, code="QUIET", international=True, quiet_hours=window))
    other = await store.accounts.add(Account(id=None, code="OTHER", international=True))
    assert quiet.id is not None
    outcome = await pipeline.enqueue(store, Config(), quiet, parse_all(["U-QUIET\nT-Good night\n#-33612345678"]),
                                     size=40, source="http")  # as any channel stores it: with the number's time zones
    assert outcome.messages == 1
    await enqueue(store, other, range(1000, 1100))
    async with dispatching(store, tmp_path, tps=100) as sending:
        await asyncio.sleep(10)
        held = [(s, c) for _, s, c in (await statuses(dsn)).values() if c == "quiet_hours"]
        others_sent = len(sending.peer.received())
        await sending.until(lambda received: any(p["destination"] == "33612345678" for p in received), 120)
    peer = sending.peer
    [sent] = [p for p in peer.received() if p["destination"] == "33612345678"]
    connection = await asyncpg.connect(dsn)
    history = await connection.fetch("SELECT e.status, e.code, e.description FROM status_events e "
                                     "JOIN messages m ON m.id = e.message_id WHERE m.recipient = '+33612345678' "
                                     "ORDER BY e.id")
    await connection.close()
    assert held == [("wait", "quiet_hours")]
    assert others_sent == 100  # the other account was not held back
    assert sent["at"] / 1000 >= ends.timestamp()
    assert [(row["status"], row["code"]) for row in history] == [("wait", "quiet_hours"), ("wait", None), ("on", None)]
    assert f"held until {ends.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in history[0]["description"]


async def test_quiet_hours_count_every_zone_a_number_may_be_in(dsn: str) -> None:
    """A number that may be in Paris or in Tokyo waits while it is night in either."""
    tokyo = datetime.now(ZoneInfo("Asia/Tokyo"))
    night_in_tokyo = f"{tokyo - timedelta(hours=1):%H:%M}-{tokyo + timedelta(hours=1):%H:%M}"
    paris = datetime.now(ZoneInfo("Europe/Paris"))
    night_nowhere = f"{paris + timedelta(hours=2):%H:%M}-{paris + timedelta(hours=3):%H:%M}"  # Tokyo is 7-8 h ahead
    connection = await asyncpg.connect(dsn)
    both = await connection.fetchval("SELECT quiet_until('Europe/Paris,Asia/Tokyo', $1)", night_in_tokyo)
    paris_only = await connection.fetchval("SELECT quiet_until('Europe/Paris', $1)", night_in_tokyo)
    neither = await connection.fetchval("SELECT quiet_until('Europe/Paris,Asia/Tokyo', $1)", night_nowhere)
    await connection.close()
    assert both is not None and timedelta(minutes=59) < both - datetime.now(UTC) <= timedelta(hours=1)
    assert paris_only is None and neither is None


async def test_a_queue_lost_in_a_race_is_brought_back(store: Store, dsn: str, account: Account) -> None:
    await enqueue(store, account, range(3))
    connection = await asyncpg.connect(dsn)
    await connection.execute("DELETE FROM queues")  # as if a claim had seen it empty
    await connection.close()
    assert await store.dispatch.claim(10, 1) == []  # no queue: nothing is taken
    assert await store.dispatch.repair_queues() == 1
    assert len(await store.dispatch.claim(10, 1)) == 3


async def test_the_monitor_shows_a_paused_mailing_and_offers_to_resume_it(store: Store, dsn: str,
                                                                         tmp_path: Path) -> None:
    """Its messages wait unrouted (the daemon's simulator serves 999 only): paused from
    the page's own call by the operator, shown paused with a resume button in Chromium,
    resumed by its account; another account cannot touch it."""
    acme = await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    await store.accounts.add(Account(id=None, code="OTHER", api_secret=hash_secret(SECRET), international=True))
    [mailing] = await enqueue(store, acme, range(3))
    async with api_daemon(dsn, tmp_path, ECOSMS_HTTP_OPERATOR_TOKEN="op-secret") as base, \
            aiohttp.ClientSession() as session:
        operator = {"Authorization": "Bearer op-secret"}
        async with session.post(base + "/monitor/mailing", json={"id": mailing, "action": "pause"},
                                headers=operator) as response:
            paused = response.status, await response.json()
        async with session.get(base + "/monitor/data", headers=operator) as response:
            data = await response.json()
        page = await chromium("--dump-dom", f"{base}/monitor#token=op-secret")
        tokens = {}
        for code in ("OTHER", "ACME"):
            client = Client(session, base)
            assert (await client.login(code)).status == 200
            tokens[code] = {"Authorization": f"Bearer {client.token}"}
        async with session.post(base + "/monitor/mailing", json={"id": mailing, "action": "resume"},
                                headers=tokens["OTHER"]) as response:
            stranger = response.status
        async with session.post(base + "/monitor/mailing", json={"id": mailing, "action": "resume"},
                                headers=tokens["ACME"]) as response:
            resumed = response.status, await response.json()
    assert paused == (200, {"count": 3, "action": "pause"})
    assert data["queue"]["paused"] == 3 and data["mailings"][0]["status"] == "paused"
    assert 'data-action="resume"' in page and 'data-action="cancel"' in page
    assert stranger == 404
    assert resumed == (200, {"count": 3, "action": "resume"})
