"""The SMPP server against smpplib's `Client` (a client we did not write, in a thread), on
real PostgreSQL: binds, submits stored before they are answered, refusals with their
SMPP errors."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from ecosms_gw.config import Config, SmppServerConfig
from ecosms_gw.config_values import Address
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.smpp import parts
from ecosms_gw.smpp.server import MAX_CONNECTIONS_PER_IP, SmppServer
from ecosms_gw.store import Store
from tests.support.esme import Esme, bound, node_client
from tests.support.net import free_port, self_signed
from tests.support.smsc import queue_mailing

PASSWORD = "s3cr3t-8"  # SMPP 3.4 carries at most 8 characters


@dataclasses.dataclass
class Server:
    port: int
    server: SmppServer


@pytest.fixture
async def smpp_account(store: Store) -> Account:
    return await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME", "+33600000001"),
                                            smpp_password=hash_secret(PASSWORD)))


async def serving(store: Store, **settings: object) -> AsyncIterator[Server]:
    port = free_port()
    config = Config(smpp_server=SmppServerConfig(listen=Address("127.0.0.1", port), **settings))  # type: ignore[arg-type]
    server = SmppServer(config, store)
    task = asyncio.create_task(server.run())
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield Server(port, server)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def smpp(store: Store, smpp_account: Account) -> AsyncIterator[Server]:
    async for server in serving(store, max_binds_per_account=2):
        yield server


async def messages(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(
            "SELECT m.id, m.recipient, m.text, m.encoding, m.segments, m.sender_id, m.flash, m.mailing_id, "
            "g.source, g.messages AS counted FROM messages m JOIN mailings g ON g.id = m.mailing_id ORDER BY m.id")
    finally:
        await connection.close()


async def test_submits_are_stored_once_answered_with_their_message_ids(smpp: Server, dsn: str) -> None:
    esme = await bound(smpp.port, "ACME", PASSWORD)
    try:
        sequences = [esme.submit(f"336{n:08d}", f"hello {n} @ home".encode().replace(b"@", b"\x00")
                                 if n % 2 else f"Ça va {n} 😀".encode("utf-16-be"), data_coding=0 if n % 2 else 8)
                     for n in range(200)]
        sequences.append(esme.submit("33612345678", b"flash", data_coding=0x10, source="ACME"))
        answers = await asyncio.to_thread(esme.answers_to, sequences)
    finally:
        await asyncio.to_thread(esme.close)
    assert {status for status, _ in answers} == {0}
    stored = {str(row["id"]): row for row in await messages(dsn)}
    assert sorted(stored) == sorted(message_id for _, message_id in answers)  # each answer names its message
    for n, (_, message_id) in enumerate(answers[:200]):
        row = stored[message_id]
        assert row["recipient"] == f"+336{n:08d}"
        assert (row["text"], row["encoding"]) == ((f"hello {n} @ home", "gsm7") if n % 2 else (f"Ça va {n} 😀", "ucs2"))
    flash = stored[answers[-1][1]]
    assert (flash["flash"], flash["sender_id"]) == (True, "ACME")
    assert {(row["source"], row["mailing_id"], row["counted"]) for row in stored.values()} == {
        ("smpp", flash["mailing_id"], 201)}  # one mailing for the session's day, counting them all


async def test_each_refusal_has_its_smpp_error_and_stores_nothing(smpp: Server, dsn: str) -> None:
    esme = await bound(smpp.port, "ACME", PASSWORD, "transmitter")
    try:
        sequences = [esme.submit("12", b"bad number"),
                     esme.submit("33612345678", b"not ours", source="OTHER"),
                     esme.submit("33612345678", b"   "),
                     esme.submit("33612345678", b"", message_payload=b"x" * 1100)]
        answers = await asyncio.to_thread(esme.answers_to, sequences)
    finally:
        await asyncio.to_thread(esme.close)
    assert [status for status, _ in answers] == [0x0B, 0x0A, 0x01, 0x01]
    assert await messages(dsn) == []


async def test_a_wrong_password_and_a_bind_beyond_the_limit_are_refused(smpp: Server) -> None:
    with pytest.raises(smpplib.exceptions.PDUError) as wrong:
        await bound(smpp.port, "ACME", "guess")
    with pytest.raises(smpplib.exceptions.PDUError) as unknown:
        await bound(smpp.port, "NOBODY", PASSWORD)
    first, second = [await bound(smpp.port, "ACME", PASSWORD) for _ in range(2)]
    with pytest.raises(smpplib.exceptions.PDUError) as third:
        await bound(smpp.port, "ACME", PASSWORD, "receiver")
    await asyncio.to_thread(first.close)
    await asyncio.sleep(0.2)
    again = await bound(smpp.port, "ACME", PASSWORD, "receiver")  # a place freed by the unbind
    for esme in (second, again):
        await asyncio.to_thread(esme.close)
    assert (wrong.value.args[1], unknown.value.args[1], third.value.args[1]) == (0x0E, 0x0E, 0x0D)


async def test_a_receiver_bind_may_not_submit(smpp: Server) -> None:
    esme = await bound(smpp.port, "ACME", PASSWORD, "receiver")
    esme.client.state = smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX  # smpplib refuses on its own; a rogue client would not
    try:
        [(status, _)] = await asyncio.to_thread(esme.answers_to, [esme.submit("33612345678", b"hi")])
    finally:
        await asyncio.to_thread(esme.close)
    assert status == 0x04  # ESME_RINVBNDSTS


async def test_over_the_accounts_cap_a_submit_is_throttled_and_its_retry_goes_through(
        store: Store, smpp: Server, smpp_account: Account, dsn: str) -> None:
    await store.accounts.update(dataclasses.replace(smpp_account, tps=5))
    esme = await bound(smpp.port, "ACME", PASSWORD)
    try:
        burst = await asyncio.to_thread(esme.answers_to, [esme.submit(f"336{n:08d}", b"hi") for n in range(8)])
        await asyncio.sleep(1.1)
        [retry] = await asyncio.to_thread(esme.answers_to, [esme.submit("33600000007", b"hi")])
    finally:
        await asyncio.to_thread(esme.close)
    assert sorted(status for status, _ in burst) == [0] * 5 + [0x58] * 3  # ESME_RTHROTTLED beyond 5 in a second
    assert retry[0] == 0
    assert len(await messages(dsn)) == 6


async def test_a_client_that_never_binds_is_dropped(smpp: Server) -> None:
    client = smpplib.client.Client("127.0.0.1", smpp.port, timeout=15)
    await asyncio.to_thread(client.connect)
    reader_gone = asyncio.to_thread(client.read_pdu)
    with pytest.raises(smpplib.exceptions.ConnectionError):
        await asyncio.wait_for(reader_gone, 20)


async def test_parts_of_a_long_message_become_one_message_each_part_answered_with_its_id(
        smpp: Server, dsn: str) -> None:
    """smpplib cuts long texts with a UDH (GSM and UCS-2); SAR parts are sent by hand, out
    of order. Each message is stored whole, once its last part has come."""
    gsm_text, ucs2_text = "Rendez-vous à 10h, salle B. " * 8, "Привет, до встречи завтра! 😀 " * 6
    sar_text = "SAR part one, " + "then two."
    esme = await bound(smpp.port, "ACME", PASSWORD)
    try:
        sent: list[list[int]] = []
        for number, text in (("33611111111", gsm_text), ("33622222222", ucs2_text)):
            parts, coding, esm_class = smpplib.gsm.make_parts(text)
            sent.append([esme.submit(number, part, data_coding=coding, esm_class=esm_class) for part in parts])
        sar = [(2, b"then two."), (1, b"SAR part one, ")]
        sent.append([esme.submit("33633333333", payload, sar_msg_ref_num=77, sar_total_segments=2,
                                 sar_segment_seqnum=seq) for seq, payload in sar])
        answers = [await asyncio.to_thread(esme.answers_to, sequences) for sequences in sent]
    finally:
        await asyncio.to_thread(esme.close)
    stored = {row["recipient"]: row for row in await messages(dsn)}
    assert len(stored) == 3
    for answer, (number, text, encoding) in zip(answers, [("+33611111111", gsm_text, "gsm7"),
                                                          ("+33622222222", ucs2_text, "ucs2"),
                                                          ("+33633333333", sar_text, "gsm7")], strict=True):
        assert len(answer) > 1 and {status for status, _ in answer} == {0}
        assert {message_id for _, message_id in answer} == {str(stored[number]["id"])}  # one id for every part
        assert (stored[number]["text"], stored[number]["encoding"]) == (text, encoding)


async def test_a_message_whose_parts_never_all_come_is_refused_and_nothing_is_stored(
        smpp: Server, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "CONCAT_WAIT_S", 2.0)
    esme = await bound(smpp.port, "ACME", PASSWORD)
    try:
        [(status, message_id)] = await asyncio.to_thread(esme.answers_to, [
            esme.submit("33612345678", b"\x05\x00\x03\x09\x03\x01first of three", esm_class=0x40)])
        [(after, _)] = await asyncio.to_thread(esme.answers_to, [esme.submit("33612345678", b"whole")])
    finally:
        await asyncio.to_thread(esme.close)
    assert (status, message_id, after) == (0x45, "", 0)  # ESME_RSUBMITFAIL; the link goes on
    assert [row["text"] for row in await messages(dsn)] == ["whole"]


async def test_node_smpp_queries_and_cancels_its_own_messages_only(
        store: Store, smpp: Server, dsn: str, tmp_path: Path) -> None:
    """No SMSC here: the messages wait in the queue, where a cancel still reaches them."""
    other = await store.accounts.add(Account(id=None, code="OTHER", international=True))
    await queue_mailing(store, other, ["U-OTHER\nT-theirs\n#-33699999999"])
    [foreign] = [row["id"] for row in await messages(dsn)]
    lines = await node_client(smpp.port, {"submits": [{"destination": "33612345678", "message": "Réunion @ 10h"},
                                                      {"destination": "33612345679", "message": "Привет"}],
                                          "then": [{"query": "#0"}, {"cancel": "#0"}, {"query": "#0"},
                                                   {"query": str(foreign)}, {"cancel": str(foreign)},
                                                   {"query": "garbage"}]},
                              tmp_path, password=PASSWORD)
    answers = [line for line in lines if "submit" in line]
    steps = [(line.get("query", line.get("cancel")), line["status"], line.get("state") if line["status"] == 0 else None)
             for line in lines if "query" in line or "cancel" in line]
    first = answers[0]["message_id"]
    assert [line["status"] for line in answers] == [0, 0]
    assert steps == [(first, 0, 1), (first, 0, None), (first, 0, 4),  # en route, canceled, then deleted
                     (str(foreign), 0x0C, None), (str(foreign), 0x11, None), ("garbage", 0x0C, None)]
    texts = {row["text"]: row["encoding"] for row in await messages(dsn)}
    assert texts == {"theirs": "gsm7", "Réunion @ 10h": "gsm7", "Привет": "ucs2"}  # node-smpp's GSM read right


async def test_database_away_is_a_temporary_error_and_the_retry_stores_once(
        pg_server, smpp: Server, dsn: str) -> None:
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    esme = await bound(smpp.port, "ACME", PASSWORD)
    statuses = []
    try:
        await asyncio.to_thread(cluster.stop, "immediate")
        try:
            [(away, _)] = await asyncio.to_thread(esme.answers_to, [esme.submit("33612345678", b"retry me")])
        finally:
            await asyncio.to_thread(cluster.start)
        for _ in range(40):  # the client sends it again until it is taken
            [(status, _)] = await asyncio.to_thread(esme.answers_to, [esme.submit("33612345678", b"retry me")])
            statuses.append(status)
            if status == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(esme.close)
    assert away == 0x08 and statuses[-1] == 0  # ESME_RSYSERR: temporary
    assert [row["text"] for row in await messages(dsn)] == ["retry me"]  # stored once


async def test_smpp_over_tls(store: Store, smpp_account: Account, dsn: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async for tls in serving(store, tls_cert=str(cert), tls_key=str(key)):
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False  # smpplib gives no server name; the chain is still checked
        esme = Esme(tls.port, "ACME", PASSWORD)
        esme.client = smpplib.client.Client("127.0.0.1", tls.port, timeout=1, allow_unknown_opt_params=True,
                                            ssl_context=context)
        esme.client.set_error_pdu_handler(lambda pdu: None)
        esme.client.set_message_sent_handler(esme._answered)
        await asyncio.to_thread(esme.bind)
        try:
            [(status, message_id)] = await asyncio.to_thread(esme.answers_to, [esme.submit("33612345678", b"secret")])
        finally:
            await asyncio.to_thread(esme.close)
        plain = Esme(tls.port, "ACME", PASSWORD)
        with pytest.raises((smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError)):
            await asyncio.to_thread(plain.bind)  # no plain SMPP on a TLS port
    assert status == 0 and [str(row["id"]) for row in await messages(dsn)] == [message_id]


async def test_connections_from_one_address_are_limited(smpp: Server) -> None:
    held = [await asyncio.open_connection("127.0.0.1", smpp.port) for _ in range(MAX_CONNECTIONS_PER_IP)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", smpp.port)
    closed = await asyncio.wait_for(reader.read(1), 5) == b""  # closed at once, not after the bind timeout
    for _, connection in [*held, (reader, writer)]:
        connection.close()
    await asyncio.sleep(0.2)
    again = await bound(smpp.port, "ACME", PASSWORD)  # the places come back with the connections
    await asyncio.to_thread(again.close)
    assert closed
