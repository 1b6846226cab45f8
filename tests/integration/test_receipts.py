"""Delivery receipts: parsing (pure), and applying them on real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from ecosms_gw.config import Config, MailOutConfig, SmscConfig
from ecosms_gw.config_values import Address
from ecosms_gw.core import receipts
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.notify.mail_out import Mailer
from ecosms_gw.smpp.delivery import Deliveries, keyword
from ecosms_gw.smpp.link import Dispatcher
from ecosms_gw.smpp.simulator import Behaviour, Simulator
from ecosms_gw.store import Store
from tests.support.mail import Sink
from tests.support.net import free_port
from tests.support.smsc import Peer, all_final, apply_receipts, queue_mailing, run_until

TEXT = b"id:0A1B sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello"


@pytest.mark.parametrize(("text", "tlvs", "expected"), [
    (TEXT, {}, ("a1b", "DELIVRD", "000")),
    (b"id:77 stat:UNDELIV err:001", {}, ("77", "UNDELIV", "001")),
    (b"ID:77 STAT:rejectd ERR:0B", {}, ("77", "REJECTD", "0B")),
    (TEXT, {"receipted_message_id": b"00FF", "message_state": 5}, ("ff", "UNDELIV", "000")),
    (b"", {"receipted_message_id": "12", "message_state": 3, "network_error_code": b"\x03\x00\x0b"},
     ("12", "EXPIRED", "03000b")),
    (b"id:5 stat:ENROUTE", {}, ("5", "ENROUTE", None)),
])
def test_receipt_text_and_tlvs(text: bytes, tlvs: dict, expected: tuple) -> None:
    receipt = receipts.parse(text, tlvs)
    assert (receipt.message_id, receipt.stat, receipt.error) == expected


def test_not_a_receipt() -> None:
    assert receipts.parse(b"Hello, this is a reply", {}) is None


@pytest.mark.parametrize(("raw", "id_format", "normal"), [
    ("0000ABCD", "same", "abcd"), (" 42\0", "same", "42"), ("000", "same", "0"),
    ("255", "decimal", "ff"), ("ff", "hex", "255"), ("ABC", "decimal", "abc"),
])
def test_message_ids_compare_the_same_way_on_both_sides(raw: str, id_format: str, normal: str) -> None:
    assert receipts.normalise_id(raw, id_format) == normal


def expected_status(part_states: list[str]) -> str | None:
    """The rule `settle_messages` applies, written plainly as the tests' oracle."""
    if "failed" in part_states:
        return "ko"
    if all(state == "delivered" for state in part_states):
        return "ok"
    if all(state in ("delivered", "unknown") for state in part_states):
        return "no"
    return None


async def final_statuses(dsn: str) -> list[tuple]:
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT m.status, m.code, array_agg(p.state ORDER BY p.seq) AS parts "
                                  "FROM messages m JOIN parts p ON p.message_id = m.id GROUP BY m.id ORDER BY m.id")
    await connection.close()
    return [(row["status"], row["code"], list(row["parts"])) for row in rows]


async def test_early_duplicate_and_multipart_receipts(store: Store, dsn: str, account: Account) -> None:
    await queue_mailing(store, account, ["U-ACME\nT-" + "x" * 400 + "\n#-33600000001\nT-y\n#-33600000002"])
    [long, short] = await store.dispatch.claim(10, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[long.id, short.id])
    # the SMSC's receipt for part 2 and for the short one come before their answers are recorded
    assert await apply_receipts(store, "main", [("b2", "failed", "001"), ("c1", "delivered", "000")]) == (0, 2)
    await store.dispatch.record_submissions("main", [(long.id, 1, "b1"), (long.id, 2, "b2"), (long.id, 3, "b3"),
                                            (short.id, 1, "c1")], [long.id, short.id], [])
    assert await apply_receipts(store, "main", [("b1", "delivered", "000"), ("b3", "delivered", "000")]) == (2, 0)
    assert await apply_receipts(store, "main", [("b1", "failed", "009"), ("c1", "failed", "009")]) == (0, 0)
    assert await final_statuses(dsn) == [
        ("ko", "001", ["delivered", "failed", "delivered"]),  # one part failed: the message failed
        ("ok", None, ["delivered"]),  # duplicates changed nothing
    ]
    connection = await asyncpg.connect(dsn)
    events = await connection.fetch("SELECT message_id, status FROM status_events ORDER BY id")
    queued = await connection.fetchval("SELECT count(*) FROM status_events WHERE queued")
    await connection.close()
    assert sorted((e["message_id"], e["status"]) for e in events) == sorted([
        (long.id, "on"), (short.id, "on"), (short.id, "ok"), (long.id, "ko")])
    assert queued == 4


@pytest.mark.parametrize("states", [
    ["delivered"], ["delivered", "delivered", "delivered"], ["delivered", "failed", "delivered"],
    ["failed", "submitted"], ["delivered", "unknown"], ["delivered", "submitted"], ["submitted"],
])
async def test_part_states_decide_the_message(store: Store, dsn: str, account: Account,
                                              states: list[str]) -> None:
    await queue_mailing(store, account, ["U-ACME\nT-" + "x" * 153 * len(states) + "\n#-33600000001"])
    [message] = await store.dispatch.claim(10, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[message.id])
    await store.dispatch.record_submissions("main", [(message.id, seq, f"p{seq}") for seq in range(1, len(states) + 1)],
                                   [message.id], [])
    await apply_receipts(store, "main", [(f"p{seq}", state, "007")
                                        for seq, state in enumerate(states, 1) if state != "submitted"])
    connection = await asyncpg.connect(dsn)
    status = await connection.fetchval("SELECT status FROM messages")
    await connection.close()
    assert status == (expected_status(states) or "on")


async def test_receipts_of_one_message_on_several_connections_at_once(store: Store, dsn: str,
                                                                     account: Account) -> None:
    """Concurrent flushes (an SMSC spreads receipts over its binds): the parts of one message
    decided at the same time, and receipts arriving while their parts' answers are recorded."""
    count = 100
    await queue_mailing(store, account, ["U-ACME\n" + "".join(
        f"T-{'x' * 400} {n}\n#-336{n:08d}\n" for n in range(2 * count))])
    messages = await store.dispatch.claim(2 * count, worker=1)
    together, racing = messages[:count], messages[count:]
    await store.dispatch.record_submissions("main", [], [], [], mark=[message.id for message in messages])
    await store.dispatch.record_submissions("main", [(message.id, seq, f"{message.id}-{seq}") for message in together
                                            for seq in (1, 2, 3)], [message.id for message in together], [])
    await store.dispatch.record_submissions("main", [(message.id, seq, f"{message.id}-{seq}") for message in racing
                                            for seq in (1, 2)], [], [])
    await apply_receipts(store, "main", [(f"{message.id}-{seq}", "delivered", "000")
                                        for message in racing for seq in (1, 2)])
    await asyncio.gather(
        *(apply_receipts(store, "main", [(f"{message.id}-{seq}", "delivered", "000")])
          for message in together for seq in (1, 2, 3)),
        *(task for message in racing for task in (
            apply_receipts(store, "main", [(f"{message.id}-3", "delivered", "000")]),
            store.dispatch.record_submissions("main", [(message.id, 3, f"{message.id}-3")], [message.id], []))))
    assert [status for status, _, _ in await final_statuses(dsn)] == ["ok"] * 2 * count


async def test_a_mailing_ends_when_its_last_message_is_final(store: Store, dsn: str, account: Account) -> None:
    first = await queue_mailing(store, account, ["U-ACME\nT-x\n#-33600000001\n#-33600000002"])
    later = await queue_mailing(store, account, ["U-ACME\nT-y\n#-33600000003"])
    one, two = await store.dispatch.claim(2, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[one.id, two.id])
    await store.dispatch.record_submissions("main", [(one.id, 1, "a"), (two.id, 1, "b")], [one.id, two.id], [])
    await apply_receipts(store, "main", [("a", "delivered", "000")])
    assert await store.mailings.end_finished() == 0  # one message still waits for its receipt
    await apply_receipts(store, "main", [("b", "failed", "001")])
    assert await store.mailings.end_finished() == 1
    connection = await asyncpg.connect(dsn)
    statuses = [await connection.fetchval("SELECT status FROM mailings WHERE id = $1", m) for m in (first, later)]
    await connection.close()
    assert statuses == ["ended", "created"]


async def test_silent_messages_become_unknown(store: Store, dsn: str, account: Account) -> None:
    await queue_mailing(store, account, ["U-ACME\nT-x\n#-33600000001"])
    [message] = await store.dispatch.claim(10, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[message.id])
    await store.dispatch.record_submissions("main", [(message.id, 1, "a")], [message.id], [])
    assert await store.dispatch.expire(timedelta(hours=48), timedelta(hours=1)) == (0, 0)
    connection = await asyncpg.connect(dsn)
    await connection.execute("UPDATE messages SET updated_at = now() - interval '2 hours'")
    await connection.close()
    assert await store.dispatch.expire(timedelta(hours=48), timedelta(hours=1)) == (0, 1)
    connection = await asyncpg.connect(dsn)
    row = await connection.fetchrow("SELECT status, code FROM messages")
    await connection.close()
    assert tuple(row) == ("no", "no_receipt")


async def test_receipts_from_the_simulator_reach_final_statuses(store: Store, dsn: str, account: Account) -> None:
    simulator = Simulator(Behaviour(dlr_delay=0.2, fail_ratio=0.3))
    host, port = await simulator.start()
    smsc = SmscConfig(name="sim", tps=2000)
    dispatcher = Dispatcher(smsc, store, 1, asyncio.Event(), Deliveries(store).handler(smsc), (host, port))
    await queue_mailing(store, account, ["U-ACME\n" + "".join(
        f"T-{'long ' * 60 if n % 4 == 0 else 'short'} {n}\n#-336{n:08d}\n" for n in range(200))])

    try:
        await run_until(dispatcher, all_final(dsn))
    finally:
        await simulator.close()
    statuses = await final_statuses(dsn)
    assert {status for status, _, _ in statuses} == {"ok", "ko"}
    for status, code, parts in statuses:
        assert status == expected_status(parts)
        assert (code == "001") == (status == "ko")


@pytest.mark.parametrize(("id_format", "options"), [
    ("same", ()),  # ids in other case and without the leading zeros of the responses
    ("decimal", ("--decimal-receipts",)),  # receipts in decimal, responses in hex
])
async def test_receipts_from_node_smpp_reach_the_right_final_status(
        store: Store, dsn: str, account: Account, tmp_path: Path, id_format: str, options: tuple[str, ...]) -> None:
    """A third-party SMSC sends receipts late and out of order, some failed, some twice,
    some before its submit_sm_resp: every message ends as its parts say."""
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "400", "--fail-every", "7",
                "--duplicate-every", "5", "--early-every", "4", *options)
    smsc = SmscConfig(name="peer", host="127.0.0.1", port=peer.port, tps=5000, window=64,
                      receipt_id_format=id_format)
    dispatcher = Dispatcher(smsc, store, 1, asyncio.Event(), Deliveries(store).handler(smsc))
    await queue_mailing(store, account, ["U-ACME\n" + "".join(
        f"T-{'three parts ' * 30 if n % 3 == 0 else 'one part'} {n}\n#-336{n:08d}\n" for n in range(300))])

    try:
        await run_until(dispatcher, all_final(dsn))
        await asyncio.sleep(0.5)  # duplicates still on their way
    finally:
        peer.stop()
    stat_of = {line["receipt"]: line["stat"] for line in peer.receipts()}
    parts_of: dict[str, list[str]] = {}
    for pdu in sorted(peer.received(), key=lambda pdu: (pdu["destination"], pdu["udh"])):
        parts_of.setdefault("+" + pdu["destination"], []).append(stat_of[pdu["message_id"]])
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT m.recipient, m.status, m.code, array_agg(p.state ORDER BY p.seq) AS parts "
                                  "FROM messages m JOIN parts p ON p.message_id = m.id GROUP BY m.id")
    events = await connection.fetchval("SELECT count(*) FROM status_events")
    await connection.close()
    assert len(rows) == 300 and sum(len(parts) for parts in parts_of.values()) == 500
    mixed = 0
    for row in rows:
        stats = parts_of[row["recipient"]]
        expected = ["delivered" if stat == "DELIVRD" else "failed" for stat in stats]
        assert list(row["parts"]) == expected
        assert (row["status"], row["code"]) == (("ko", "001") if "failed" in expected else ("ok", None))
        mixed += len(set(expected)) > 1
    assert mixed > 0  # some 3-part messages had parts delivered and parts failed
    assert events == 2 * 300  # `on` and the final status, once each: duplicates changed nothing


@pytest.mark.parametrize(("text", "word"), [
    ("  Arrêt ! ", "ARRET"), ("stop   sms", "STOP SMS"), ("Stop.", "STOP"), ("Stop please", "STOP PLEASE"),
])
def test_stop_keywords_ignore_case_accents_and_punctuation(text: str, word: str) -> None:
    assert keyword(text) == word


@pytest.mark.parametrize(("reply", "opted_out"), [("Merci, à demain", False), ("  arrêt ", True)])
async def test_replies_become_rep_are_mailed_and_stop_opts_out(store: Store, dsn: str, sink,
                                                              reply: str, opted_out: bool) -> None:
    account = await store.accounts.add(Account(id=None, code="ACME", international=True,
                                              reply_email="office@acme.example", sender_ids=("ACME",)))
    simulator = Simulator(Behaviour(dlr_delay=0.1, reply_ratio=1.0, reply=reply))
    host, port = await simulator.start()
    config = Config(mail_out=MailOutConfig(relay=Address("127.0.0.1", sink.port)))
    smsc = SmscConfig(name="sim", tps=1000, source_addr="ACME")
    dispatcher = Dispatcher(smsc, store, 1, asyncio.Event(), Deliveries(store, config).handler(smsc), (host, port))
    await queue_mailing(store, account, ["U-ACME\nT-Your order is ready\n#-33600000001"])

    async def replied() -> bool:
        connection = await asyncpg.connect(dsn)
        status = await connection.fetchval("SELECT status FROM messages")
        await connection.close()
        return status == "rep"

    mailer = asyncio.create_task(Mailer(store, config.mail_out).run())
    try:
        await run_until(dispatcher, replied)
        assert await asyncio.to_thread(sink.received.wait, 10)
    finally:
        await simulator.close()
        mailer.cancel()
        await asyncio.gather(mailer, return_exceptions=True)
    connection = await asyncpg.connect(dsn)
    message = await connection.fetchrow("SELECT id, response FROM messages")
    mo = await connection.fetchrow("SELECT source, text, account_id, message_id FROM mo_messages")
    await connection.close()
    assert message["response"] == reply
    assert tuple(mo) == ("+33600000001", reply, account.id, message["id"])
    mail = sink.messages[0]
    assert mail["To"] == "office@acme.example"
    assert mail["Subject"] == f"Response from +33600000001 to SMS #{message['id']}"
    assert reply in mail.get_content() and "Your order is ready" in mail.get_content()
    assert (await store.accounts.opt_outs(account.id) == {"+33600000001"}) is opted_out
    if opted_out:  # the next mailing to that number leaves it out
        result = compose(parse_all(["U-ACME\nT-again\n#-33600000001\n#-33600000002"]), AccountRules(),
                         await store.accounts.opt_outs(account.id))
        assert [(d.recipient, d.reason) for d in result.dropped] == [("+33600000001", "opted_out")]


async def test_a_reply_mail_waits_for_a_relay_that_is_down_and_arrives_once(store: Store, dsn: str) -> None:
    """The relay is down for 60 s, then up: the reply e-mail arrives exactly once (a
    short backoff stands in for the real 30 s doubling)."""
    account = await store.accounts.add(Account(id=None, code="ACME", international=True,
                                              reply_email="office@acme.example", sender_ids=("ACME",)))
    await queue_mailing(store, account, ["U-ACME\nT-Your order is ready\n#-33600000001"])
    claimed = await store.dispatch.claim(10, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[claimed[0].id])
    await store.dispatch.record_submissions("main", [(claimed[0].id, 1, "a")], [claimed[0].id], [])
    port = free_port()
    settings = MailOutConfig(relay=Address("127.0.0.1", port))
    deliveries = Deliveries(store, Config(mail_out=settings))
    reply = SimpleNamespace(esm_class=0, source_addr=b"33600000001", destination_addr=b"ACME",
                            data_coding=0, short_message=b"thanks")
    assert await deliveries.handler(SmscConfig(name="main"))(reply) == 0
    mailer = asyncio.create_task(Mailer(store, settings, backoff=lambda attempts: 2.0).run())
    relay = Sink()
    try:
        await asyncio.sleep(60)  # the relay is down: tried and retried, kept
        connection = await asyncpg.connect(dsn)
        waiting = await connection.fetchrow("SELECT attempts, last_error, given_up_at FROM mail_out")
        await connection.close()
        assert waiting["attempts"] >= 10 and "refused" in waiting["last_error"].lower()
        assert waiting["given_up_at"] is None
        assert (await store.cluster()).mail_backlog == 1
        controller = Controller(relay, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert await asyncio.to_thread(relay.received.wait, 20)
            await asyncio.sleep(3)  # any second copy would come within a backoff
        finally:
            controller.stop()
    finally:
        mailer.cancel()
        await asyncio.gather(mailer, return_exceptions=True)
    assert len(relay.messages) == 1 and "thanks" in relay.messages[0].get_content()
    assert (await store.cluster()).mail_backlog == 0


async def test_a_reply_missing_a_part_is_stored_with_what_came_after_the_wait(store: Store, dsn: str) -> None:
    """Parts 1 and 3 of 3 come (GSM, 8-bit reference), part 2 never does: nothing is
    stored until the wait is over, then one reply with the two parts' text, once."""
    account = await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME",)))
    await queue_mailing(store, account, ["U-ACME\nT-Your order is ready\n#-33600000001"])
    claimed = await store.dispatch.claim(10, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[claimed[0].id])
    await store.dispatch.record_submissions("main", [(claimed[0].id, 1, "a")], [claimed[0].id], [])
    deliveries = Deliveries(store)
    on_deliver = deliveries.handler(SmscConfig(name="main"))
    for seq, text in ((3, b"tomorrow"), (1, b"See you ")):
        part = SimpleNamespace(esm_class=0x40, source_addr=b"33600000001", destination_addr=b"ACME", data_coding=0,
                               short_message=bytes([5, 0x00, 3, 0x2A, 3, seq]) + text)
        assert await on_deliver(part) == 0
    await deliveries.complete_stale(timedelta(minutes=5))  # not yet: the wait is not over
    connection = await asyncpg.connect(dsn)
    before = await connection.fetchval("SELECT count(*) FROM mo_messages")
    await deliveries.complete_stale(timedelta(0))
    await deliveries.complete_stale(timedelta(0))
    stored = await connection.fetch("SELECT text, message_id FROM mo_messages")
    kept = await connection.fetchval("SELECT count(*) FROM mo_parts")
    response = await connection.fetchval("SELECT response FROM messages")
    await connection.close()
    assert before == 0
    assert [tuple(row) for row in stored] == [("See you tomorrow", claimed[0].id)]
    assert (kept, response) == (0, "See you tomorrow")


async def test_parts_arriving_at_once_make_one_reply(store: Store, dsn: str) -> None:
    """The three parts of each of 20 replies are handled concurrently (as a session does
    with PDUs that arrive together): every reply is put together once."""
    account = await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME",)))
    await queue_mailing(store, account, ["U-ACME\nT-Your order is ready\n#-33600000001"])
    claimed = await store.dispatch.claim(10, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[claimed[0].id])
    await store.dispatch.record_submissions("main", [(claimed[0].id, 1, "a")], [claimed[0].id], [])
    on_deliver = Deliveries(store).handler(SmscConfig(name="main"))

    def part(reference: int, seq: int) -> SimpleNamespace:
        return SimpleNamespace(esm_class=0, source_addr=b"33600000001", destination_addr=b"ACME", data_coding=0,
                               short_message=f"<{reference}.{seq}>".encode(), sar_msg_ref_num=reference,
                               sar_total_segments=3, sar_segment_seqnum=seq)

    answers = await asyncio.gather(*(on_deliver(part(reference, seq)) for reference in range(20)
                                     for seq in (3, 1, 2)))
    connection = await asyncpg.connect(dsn)
    texts = sorted(row["text"] for row in await connection.fetch("SELECT text FROM mo_messages"))
    kept = await connection.fetchval("SELECT count(*) FROM mo_parts")
    await connection.close()
    assert set(answers) == {0}
    assert texts == sorted(f"<{r}.1><{r}.2><{r}.3>" for r in range(20)) and kept == 0
