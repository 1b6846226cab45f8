"""An SMSC that goes silent, slow or hostile, between the link and node-smpp (or in place
of it): the link notices within the response timeout, reconnects with backoff, and loses
nothing; nothing the SMSC sends ends the dispatcher or grows its memory without bound."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from smpplib.smpp import make_pdu, parse_pdu

from ecosms_gw.core.accounts import Account
from ecosms_gw.smpp import session as smpp_session
from ecosms_gw.store import Store
from tests.support.faults import HEADER, FaultyLink, read_pdu
from tests.support.smsc import Peer, all_settled, dispatcher_for, queue_mailing


def mailing(count: int, start: int = 0) -> list[str]:
    return ["U-ACME\nT-fault drill\n" + "".join(f"#-336{n:08d}\n" for n in range(start, start + count))]


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> float:
    """Waits for `check`; returns how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return loop.time() - started
        assert loop.time() - started < timeout, what
        await asyncio.sleep(0.05)


async def sent_once(dsn: str, destinations: list[str], count: int, window: int) -> int:
    """Each message reached the SMSC at most once; every one accepted (`on`) did, the
    others are in doubt (written, unanswered: at most a window of them). Returns how many
    are in doubt."""
    reached = Counter(destinations)
    assert max(reached.values()) == 1
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT recipient, status, code FROM messages")
    await connection.close()
    accepted = {row["recipient"].lstrip("+") for row in rows if row["status"] == "on"}
    in_doubt = sum(1 for row in rows if row["code"] == "in_doubt")
    assert len(rows) == count and accepted <= reached.keys()
    assert len(accepted) + in_doubt == count and in_doubt <= window
    return in_doubt


async def test_an_smsc_that_never_answers_the_bind_is_left_and_tried_again(
        store: Store, dsn: str, account: Account, peer: Peer) -> None:
    await queue_mailing(store, account, mailing(50))
    async with FaultyLink(peer.port, "black_hole") as link:
        task = asyncio.create_task(dispatcher_for(link.port, store, tps=500, window=10).run())
        try:
            await until(lambda: link.connections == 1, 10, "the first connection")
            link.mode = "pass"  # the first connection stays a black hole; the next one passes
            detected = await until(lambda: link.connections == 2, 20, "a second connection")
            await until(all_settled(dsn), 30, "the messages sent through the second connection")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert 10 <= detected < 10 + 5  # the bind's response timeout, then the first backoff (about 1 s)
    assert await sent_once(dsn, [pdu["destination"] for pdu in peer.received()], 50, 0) == 0


async def test_an_smsc_that_stops_answering_submits_is_left_within_the_response_timeout(
        store: Store, dsn: str, account: Account, peer: Peer) -> None:
    await queue_mailing(store, account, mailing(400))
    async with FaultyLink(peer.port, only=1) as link:
        task = asyncio.create_task(dispatcher_for(link.port, store, tps=50, window=10).run())
        try:
            await until(lambda: len(peer.received()) >= 50, 20, "the first submits")
            link.mode = "no_submit_resp"  # on the first connection only
            detected = await until(lambda: link.connections == 2, 20, "a new connection")
            await until(all_settled(dsn), 30, "the rest sent through the new connection")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert detected < smpp_session.RESPONSE_TIMEOUT_S + 5  # checked every second
    in_doubt = await sent_once(dsn, [pdu["destination"] for pdu in peer.received()], 400, 10)
    assert in_doubt >= 1  # written, unanswered: `no`, never sent twice


async def test_an_smsc_that_stops_answering_enquire_link_is_left(
        store: Store, dsn: str, account: Account, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smpp_session, "ENQUIRE_INTERVAL_S", 1.0)
    async with FaultyLink(peer.port, "no_enquire_resp") as link:
        task = asyncio.create_task(dispatcher_for(link.port, store, tps=500, window=10).run())
        try:
            detected = await until(lambda: link.connections == 2, 20, "a new connection")
            link.mode = "pass"
            await queue_mailing(store, account, mailing(20))
            await until(all_settled(dsn), 20, "messages sent through the new connection")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert 0x80000015 in link.dropped
    assert detected < 1 + smpp_session.RESPONSE_TIMEOUT_S + 5
    assert await sent_once(dsn, [pdu["destination"] for pdu in peer.received()], 20, 0) == 0


async def test_a_slow_smsc_gives_window_over_latency_without_timeouts(
        store: Store, dsn: str, account: Account, peer: Peer) -> None:
    """Every answer 2 s late, a window of 20: about 10 messages a second, on one connection."""
    await queue_mailing(store, account, mailing(100))
    async with FaultyLink(peer.port, "delay", delay_s=2.0) as link:
        task = asyncio.create_task(dispatcher_for(link.port, store, tps=1000, window=20).run())
        try:
            await until(lambda: len(peer.received()) >= 1, 10, "the first submit")
            started = time.monotonic()
            await until(all_settled(dsn), 60, "every message answered")
            took = time.monotonic() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert link.connections == 1  # no timeout, no reconnection
    assert await sent_once(dsn, [pdu["destination"] for pdu in peer.received()], 100, 0) == 0
    print(f"\nslow SMSC: {100 / took:.1f} msg/s (window/latency: {20 / 2.0:.1f})")


class HostileSmsc:
    """Binds whoever asks and answers submits; then sends, once bound, what `attack`
    writes. Records every PDU the gateway sends."""

    def __init__(self, attack: Callable[[asyncio.StreamWriter, int], Awaitable[None]]) -> None:
        self.attack = attack
        self.received: list[tuple[int, int, int]] = []  # (command id, status, sequence)
        self.destinations: list[str] = []  # of the submit_sm
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> HostileSmsc:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    def commands(self, command_id: int) -> list[tuple[int, int, int]]:
        return [pdu for pdu in self.received if pdu[0] == command_id]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        attacking: asyncio.Task[None] | None = None
        try:
            while True:
                pdu = await read_pdu(reader)
                _, command, status, sequence = HEADER.unpack_from(pdu)
                self.received.append((command, status, sequence))
                if command in (0x00000009, 0x00000002, 0x00000001):  # bind_*: bound
                    writer.write(HEADER.pack(16 + 3, command | 0x80000000, 0, sequence) + b"sc\0")
                    attacking = attacking or asyncio.create_task(self.attack(writer, self.connections))
                elif command == 0x00000004:  # submit_sm
                    self.destinations.append(parse_pdu(pdu, client=_Sequence(0)).destination_addr.decode())
                    message_id = f"{sequence:x}".encode() + b"\0"
                    writer.write(HEADER.pack(16 + len(message_id), 0x80000004, 0, sequence) + message_id)
                elif command == 0x00000015:
                    writer.write(HEADER.pack(16, 0x80000015, 0, sequence))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if attacking:
                attacking.cancel()
            writer.close()


def deliver_sm(sequence: int, text: bytes) -> bytes:
    pdu = make_pdu("deliver_sm", client=_Sequence(sequence), source_addr="33600000001", destination_addr="ACME",
                   esm_class=0x04, short_message=text)
    return pdu.generate()


class _Sequence:
    def __init__(self, number: int) -> None:
        self.sequence = number

    def next_sequence(self) -> int:
        return self.sequence


async def test_a_hostile_smsc_gets_generic_nacks_and_a_new_connection_and_nothing_is_lost(
        store: Store, dsn: str, account: Account) -> None:
    """Malformed PDUs and unknown commands get generic_nack; a response to nothing is
    ignored; a command_length of 4 GB ends the connection (and a new one is made); the
    messages are all sent once, through it all."""
    async def attack(writer: asyncio.StreamWriter, connection: int) -> None:
        if connection > 1:
            return
        writer.write(HEADER.pack(16 + 3, 0x00000005, 0, 9001) + b"\xff\xff\xff")  # deliver_sm cut short
        writer.write(HEADER.pack(16, 0x00000777, 0, 9002))  # no such command
        writer.write(HEADER.pack(16 + 2, 0x80000004, 0, 9003) + b"x\0")  # submit_sm_resp to nothing
        writer.write(HEADER.pack(16 + 8, 0x00000102, 0, 9004) + b"\0" * 8)  # alert_notification, unread
        await asyncio.sleep(1.0)
        writer.write(struct.pack(">L", 0xFFFFFFF0) + b"\0" * 12)  # 4 GB to come

    await queue_mailing(store, account, mailing(200))
    async with HostileSmsc(attack) as smsc:
        task = asyncio.create_task(dispatcher_for(smsc.port, store, tps=200, window=10).run())
        try:
            await until(lambda: smsc.connections == 2, 15, "a new connection after the 4 GB length")
            await until(all_settled(dsn), 30, "every message sent")
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    nacks = {sequence: status for _, status, sequence in smsc.commands(0x80000000)}
    assert nacks.get(9001) and nacks.get(9002) == 0x03
    await sent_once(dsn, smsc.destinations, 200, 10)


async def test_a_flood_of_deliver_sm_is_answered_with_bounded_work_in_progress(
        store: Store, dsn: str, account: Account) -> None:
    """20,000 deliver_sm as fast as TCP takes them, while storing each takes a while: the
    gateway reads no faster than it answers (a bounded number at a time), and answers all."""
    count = 20_000

    async def attack(writer: asyncio.StreamWriter, connection: int) -> None:
        if connection > 1:
            return
        for sequence in range(1, count + 1):
            writer.write(deliver_sm(sequence, f"id:{sequence:x} stat:DELIVRD err:000".encode()))
            if sequence % 100 == 0:
                await writer.drain()

    busy = peak = 0

    async def slow_store(_: object) -> int:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await asyncio.sleep(0.05)
        busy -= 1
        return 0

    async with HostileSmsc(attack) as smsc:
        dispatcher = dispatcher_for(smsc.port, store, tps=200, window=10)
        dispatcher.on_deliver = slow_store
        task = asyncio.create_task(dispatcher.run())
        try:
            await until(lambda: len(smsc.commands(0x80000005)) == count, 120, "every deliver_sm answered")
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert {status for _, status, _ in smsc.commands(0x80000005)} == {0}
    assert peak <= smpp_session.MAX_ANSWERING
    assert smsc.connections == 1
