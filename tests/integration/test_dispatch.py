"""SMPP dispatch against node-smpp, an SMPP server we did not write, and real PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from ecosms_gw.config import SmscConfig
from ecosms_gw.core import gsm
from ecosms_gw.core.accounts import Account
from ecosms_gw.smpp.link import Dispatcher
from ecosms_gw.smpp.simulator import Behaviour, Simulator
from ecosms_gw.store import Store, StoreUnavailable
from ecosms_gw.store.dispatch import Claimed, Take
from tests.support.smsc import (
    Peer,
    all_settled,
    busiest_second,
    dispatcher_for,
    peer_jitter,
    queue_mailing,
    run_until,
    statuses,
)


def mixed_bodies(count: int) -> list[str]:
    lines = ["U-ACME"]
    for n in range(count):
        text = f"message {n}" if n % 3 else f"long message {n} " + "abcdefghij€" * 20
        lines += [f"T-{text}", f"#-336{n:08d}"]
    return ["\n".join(lines)]


async def test_messages_are_submitted_once_with_the_right_coding_and_parts(
        store: Store, dsn: str, account: Account, peer: Peer) -> None:
    await queue_mailing(store, account, mixed_bodies(4000))
    await queue_mailing(store, account, ["U-ACME\n" + "".join(
        f"T-Ça «va» 😀 {n} " + "é" * (80 if n % 2 else 0) + f"\n#-337{n:08d}\n" for n in range(1000))], "ucs2")
    await run_until(dispatcher_for(peer.port, store), all_settled(dsn))

    assert {status for _, status, _ in (await statuses(dsn)).values()} == {"on"}
    received = peer.received()
    by_destination: dict[str, list[dict]] = {}
    for pdu in received:
        by_destination.setdefault(pdu["destination"], []).append(pdu)
    assert len(by_destination) == 5000
    connection = await asyncpg.connect(dsn)
    messages = await connection.fetch("SELECT recipient, text, encoding, segments FROM messages")
    parts = await connection.fetchval("SELECT count(*) FROM parts WHERE state = 'submitted' "
                                      "AND smsc_message_id ~ '^[1-9a-f][0-9a-f]*$'")
    await connection.close()
    assert parts == len(received) == sum(m["segments"] for m in messages)
    for message in messages:
        pdus = by_destination[message["recipient"].lstrip("+")]
        assert len(pdus) == message["segments"]  # each part once
        assert {p["data_coding"] for p in pdus} == {0 if message["encoding"] == "gsm7" else 8}
        assert {(p["source"], p["source_ton"], p["dest_ton"], p["registered_delivery"]) for p in pdus} == {
            ("ACME", 5, 1, 1)}
        if len(pdus) > 1:
            assert {p["esm_class"] for p in pdus} == {0x40}
            references = {p["udh"][0][6:8] for p in pdus}
            assert len(references) == 1  # one reference per message
            ordered = sorted(pdus, key=lambda p: p["udh"][0][-2:])
            assert [p["udh"][0][-4:-2] for p in ordered] == [f"{len(pdus):02x}"] * len(pdus)
        else:
            ordered = pdus
        # node-smpp decodes the parts itself: they reassemble to the stored text
        assert "".join(p["text"] for p in ordered) == message["text"]


async def test_throttling_and_nacks_still_send_everything_once(store: Store, dsn: str, account: Account,
                                                              tmp_path: Path) -> None:
    peer = Peer(tmp_path, "--throttle-every", "10", "--nack-every", "50")
    try:
        await queue_mailing(store, account, ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(500))])
        await run_until(dispatcher_for(peer.port, store, tps=2000), all_settled(dsn))
    finally:
        peer.stop()
    destinations = [pdu["destination"] for pdu in peer.received()]
    assert len(destinations) == len(set(destinations)) == 500
    assert {status for _, status, _ in (await statuses(dsn)).values()} == {"on"}


async def test_a_refused_submit_ends_ko_with_the_smpp_error(store: Store, dsn: str, account: Account,
                                                            tmp_path: Path) -> None:
    peer = Peer(tmp_path, "--refuse-destination", "3399")
    try:
        await queue_mailing(store, account, ["U-ACME\nT-x\n#-33600000001\n#-33990000001"])
        await run_until(dispatcher_for(peer.port, store), all_settled(dsn))
    finally:
        peer.stop()
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT m.recipient, m.status, m.code, m.description, e.status AS event "
                                  "FROM messages m JOIN status_events e ON e.message_id = m.id ORDER BY m.id")
    await connection.close()
    assert [tuple(row) for row in rows] == [("+33600000001", "on", None, None, "on"),
                                             ("+33990000001", "ko", "11", "ESME_RINVDSTADR", "ko")]


@pytest.mark.parametrize("policy", ["unknown", "resend"])
async def test_peer_killed_and_restarted_mid_run(store: Store, dsn: str, account: Account, peer: Peer,
                                                 policy: str) -> None:
    await queue_mailing(store, account, ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(2000))])
    dispatcher = dispatcher_for(peer.port, store, tps=500, window=10)
    dispatcher.in_doubt = policy
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(1.0)
    peer.stop(signal.SIGKILL)
    await asyncio.sleep(0.5)
    peer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await all_settled(dsn)():
            assert loop.time() < deadline, Counter(state for state, _, _ in (await statuses(dsn)).values())
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    destinations = [pdu["destination"] for pdu in peer.received()]
    final = await statuses(dsn)
    in_doubt = [id for id, (_, status, code) in final.items() if status == "no"]
    if policy == "unknown":
        assert len(destinations) == len(set(destinations))  # never twice
        assert {code for _, status, code in final.values() if status == "no"} <= {"in_doubt"}
        assert len(in_doubt) <= 10  # at most a window was on the wire when the peer died
        assert len(destinations) + len(in_doubt) == 2000
    else:
        assert len(set(destinations)) == 2000 and not in_doubt  # everything sent
        assert len(destinations) == 2000  # and, the peer having died unanswered, once


async def test_rate_is_honoured_at_the_peer(store: Store, dsn: str, account: Account, peer: Peer) -> None:
    await queue_mailing(store, account, ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(200))])
    await run_until(dispatcher_for(peer.port, store, tps=50, window=10), all_settled(dsn))
    arrivals = sorted(pdu["at"] / 1000 for pdu in peer.received())
    assert len(arrivals) == 200
    assert busiest_second(arrivals) <= 50 + peer_jitter(50)
    assert 200 / (arrivals[-1] - arrivals[0]) == pytest.approx(50, rel=0.05)


async def test_cancel_during_a_send_splits_exactly(store: Store, dsn: str, account: Account, peer: Peer) -> None:
    mailing = await queue_mailing(store, account, ["U-ACME\n" + "".join(
        f"T-m{n}\n#-336{n:08d}\n" for n in range(2000))])
    task = asyncio.create_task(dispatcher_for(peer.port, store, tps=1000, window=20).run())
    await asyncio.sleep(0.7)
    result = await store.mailings.cancel(mailing)
    assert result is not None
    status, canceled = result.status, result.messages
    await asyncio.sleep(1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert status == "interrupted" and 0 < canceled < 2000
    assert len(peer.received()) + canceled == 2000


async def test_scheduled_messages_wait_in_the_database(store: Store, dsn: str, account: Account, peer: Peer) -> None:
    await queue_mailing(store, account, ["U-ACME\nD-2099-01-01\nT-later\n#-33600000001",
                                         "U-ACME\nT-now\n#-33600000002"])
    dispatcher = dispatcher_for(peer.port, store)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(2.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [pdu["destination"] for pdu in peer.received()] == ["33600000002"]


@pytest.mark.parametrize("bind", ["transceiver", "transmitter"])
async def test_the_simulator_accepts_and_sends_receipts(store: Store, dsn: str, account: Account,
                                                        bind: str) -> None:
    simulator = Simulator(Behaviour(dlr_delay=0.1, throttle_ratio=0.1))
    host, port = await simulator.start()
    delivered: list[bytes] = []

    async def on_deliver(pdu) -> int:
        delivered.append(pdu.short_message)
        return 0

    await queue_mailing(store, account, mixed_bodies(30))
    dispatcher = Dispatcher(SmscConfig(name="sim", tps=1000, bind=bind, system_id="gw"), store, 1,
                            asyncio.Event(), on_deliver, (host, port))
    parts = sum(gsm.segment_count(t, "gsm7", gsm.septet_count(t)) for t in [
        (f"message {n}" if n % 3 else f"long message {n} " + "abcdefghij€" * 20) for n in range(30)])

    async def receipts_back() -> bool:
        return await all_settled(dsn)() and len(delivered) >= parts

    try:
        await run_until(dispatcher, receipts_back)
    finally:
        await simulator.close()
    assert simulator.submitted == parts
    assert len(delivered) == parts and all(b"stat:DELIVRD" in receipt for receipt in delivered)


async def test_database_outage_pauses_dispatch_and_sends_nothing_twice(pg_server, store: Store, dsn: str,
                                                                       account: Account, peer: Peer) -> None:
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    await queue_mailing(store, account, ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(1000))])
    dispatcher = dispatcher_for(peer.port, store, tps=300, window=10)
    task = asyncio.create_task(dispatcher.run())
    try:
        while len(peer.received()) < 100:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.start)
        assert not task.done()  # the dispatcher waited for the database, it did not die
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            try:
                if await all_settled(dsn)():
                    break
            except OSError:
                pass
            assert loop.time() < deadline, Counter((await statuses(dsn)).values())
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    destinations = [pdu["destination"] for pdu in peer.received()]
    assert len(destinations) == len(set(destinations))
    final = await statuses(dsn)
    assert len(set(destinations)) + sum(1 for _, status, _ in final.values() if status == "no") >= 1000


async def test_messages_taken_by_a_call_whose_answer_was_lost_are_sent_after_the_next_bind(
        store: Store, dsn: str, account: Account, peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database commits a take, and its answer is lost (it restarts at that instant):
    the pump never learns of those messages, marked as being written. The link starts
    again, and they are sent like the others, once."""
    await queue_mailing(store, account, ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(300))])
    take = store.dispatch.record_and_take
    lost: list[int] = []

    async def answer_lost(smsc: str, accepted, done, failed, next_group: Take) -> list[Claimed]:
        taken = await take(smsc, accepted, done, failed, next_group)
        if taken and not lost:
            lost.extend(message.id for message in taken)
            raise StoreUnavailable("database unavailable: connection lost before the answer")
        return taken

    monkeypatch.setattr(store.dispatch, "record_and_take", answer_lost)
    await run_until(dispatcher_for(peer.port, store, tps=1000, window=10), all_settled(dsn))
    destinations = [pdu["destination"] for pdu in peer.received()]
    assert lost
    assert sorted(destinations) == [f"336{n:08d}" for n in range(300)]  # each once, the lost ones too
    assert {status for _, status, _ in (await statuses(dsn)).values()} == {"on"}
