"""A real daemon with its SMPP server on, node-smpp as the operator's SMSC (with receipts),
and smpplib's `Client` or node-smpp's client as the customer's application: submits go
out to the SMSC, and their receipts come back to the client as deliver_sm."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import aiohttp
import smpplib.gsm

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import daemon
from tests.support.esme import Esme, bound, node_client, text
from tests.support.net import free_port
from tests.support.smsc import Peer, scalar

PASSWORD = "rt-pass1"
RECEIPT = re.compile(r"id:(\d+) sub:001 dlvrd:(\d{3}) submit date:\d{10} done date:\d{10} stat:(\w+) err:(\d{3})")


async def add_account(store: Store) -> None:
    await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME",),
                                     smpp_password=hash_secret(PASSWORD)))


def texts(count: int) -> list[tuple[str, str]]:
    """(number, text): short GSM, long GSM (cut by the client with a UDH), UCS-2, long UCS-2."""
    kinds = ["Hello {n}", "Long GSM message number {n}: " + "abcdefghij" * 20, "Ça va {n} ? Привет 😀",
             "Длинное сообщение {n} " + "ж" * 90]
    return [(f"336{n:08d}", kinds[n % 4].format(n=n)) for n in range(count)]


def submit_all(esme: Esme, messages: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """Each message cut and coded as smpplib does: the sequences of its parts, its coding."""
    sent = []
    for number, message in messages:
        parts, coding, esm_class = smpplib.gsm.make_parts(message)
        sent.append(([esme.submit(number, part, data_coding=coding, esm_class=esm_class, source="ACME")
                      for part in parts], coding))
    return sent


def receipts_of(esme: Esme) -> dict[str, tuple[str, str]]:
    """Receipts by the message id they name: (stat, receipted_message_id)."""
    found = {}
    for pdu in esme.delivered:
        if pdu.esm_class & 0x04 and (match := RECEIPT.match(text(pdu.short_message))):
            found[match[1]] = (match[3], text(pdu.receipted_message_id))
    return found


async def test_a_thousand_submits_reach_the_smsc_and_their_receipts_come_back(
        store: Store, dsn: str, tmp_path: Path) -> None:
    await add_account(store)
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "300", "--fail-every", "50")
    port = free_port()
    messages = texts(1000)
    try:
        async with daemon(dsn, tmp_path, peer.port, ECOSMS_SMPP_SERVER_LISTEN=f"127.0.0.1:{port}"):
            esme = await bound(port, "ACME", PASSWORD)
            try:
                sent = await asyncio.to_thread(submit_all, esme, messages)
                answers = [await asyncio.to_thread(esme.answers_to, sequences, 120) for sequences, _ in sent]
                await asyncio.to_thread(esme.wait, lambda: len(receipts_of(esme)) >= 1000, 180)
            finally:
                await asyncio.to_thread(esme.close)
    finally:
        peer.stop()
    ids = []
    for answer in answers:
        assert {status for status, _ in answer} == {0}
        assert len({message_id for _, message_id in answer}) == 1  # the parts of one message, one id
        ids.append(answer[0][1])
    received: dict[str, list[dict]] = {}
    for pdu in peer.received():
        received.setdefault(pdu["destination"], []).append(pdu)
    assert sorted(received) == sorted(number for number, _ in messages)  # each reached the SMSC
    for (number, message), (_, coding) in zip(messages, sent, strict=True):
        pdus = sorted(received[number], key=lambda pdu: pdu["udh"][0][-2:] if pdu.get("udh") else "")
        assert "".join(pdu["text"] for pdu in pdus) == message  # the right text...
        assert {pdu["data_coding"] for pdu in pdus} == {coding}  # ...in the client's coding
    receipts = receipts_of(esme)
    assert sorted(receipts) == sorted(ids)  # one receipt per message, naming our id
    assert all(receipted == message_id for message_id, (_, receipted) in receipts.items())
    stats = Counter(stat for stat, _ in receipts.values())
    failed = await scalar(dsn, "SELECT count(*) FROM messages WHERE status = 'ko'")
    assert stats == {"DELIVRD": 1000 - failed, "UNDELIV": failed} and failed > 0
    assert await scalar(dsn, "SELECT count(*) FROM smpp_outbox") == 0  # every one acknowledged


async def test_receipts_wait_for_a_receiver_that_binds_late(store: Store, dsn: str, tmp_path: Path) -> None:
    await add_account(store)
    peer = Peer(tmp_path, "--receipts")
    port = free_port()
    try:
        async with daemon(dsn, tmp_path, peer.port, ECOSMS_SMPP_SERVER_LISTEN=f"127.0.0.1:{port}"):
            sender = await bound(port, "ACME", PASSWORD, "transmitter")
            try:
                answers = await asyncio.to_thread(sender.answers_to, [
                    sender.submit(f"3361234567{n}", f"late {n}".encode()) for n in range(5)])
            finally:
                await asyncio.to_thread(sender.close)
            for _ in range(200):
                if await scalar(dsn, "SELECT count(*) FROM smpp_outbox") == 5:
                    break
                await asyncio.sleep(0.1)
            kept = await scalar(dsn, "SELECT count(*) FROM smpp_outbox")
            receiver = await bound(port, "ACME", PASSWORD, "receiver")
            try:
                await asyncio.to_thread(receiver.wait, lambda: len(receipts_of(receiver)) == 5, 30)
            finally:
                await asyncio.to_thread(receiver.close)
    finally:
        peer.stop()
    assert kept == 5  # stored while no receiver was bound
    assert sorted(receipts_of(receiver)) == sorted(message_id for _, message_id in answers)


def cut(text: str, size: int, reference: int) -> dict[str, object]:
    """A long text as a client cuts it: parts of `size` characters, each with its UDH."""
    pieces = [text[at:at + size] for at in range(0, len(text), size)]
    return {"message": pieces, "parts": [f"050003{reference:02x}{len(pieces):02x}{n:02x}"
                                         for n in range(1, len(pieces) + 1)]}


async def test_node_smpp_round_trip_with_long_messages(store: Store, dsn: str, tmp_path: Path) -> None:
    await add_account(store)
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "200")
    port = free_port()
    submits: list[dict[str, object]] = []
    for n in range(200):
        number = f"337{n:08d}"
        if n % 4 == 3:
            long = f"Message long {n} : réunion à 10h, salle B. " * 5
            submits.append({"destination": number, "source": "ACME", **cut(long, 150, n % 256)})
        else:
            submits.append({"destination": number, "source": "ACME",
                            "message": [f"Bonjour {n} @ é", f"Привет {n} 😀", f"Prix {n} $"][n % 4]})
    try:
        async with daemon(dsn, tmp_path, peer.port, ECOSMS_SMPP_SERVER_LISTEN=f"127.0.0.1:{port}") as base:
            lines = await node_client(port, {"submits": submits, "receipts": 200}, tmp_path, password=PASSWORD)
            async with aiohttp.ClientSession() as session:
                async with session.get(base + "/monitor/data") as response:
                    monitor = await response.json()
                async with session.get(base + "/metrics") as response:
                    metrics = await response.text()
    finally:
        peer.stop()
    answers: dict[int, set[str]] = {}
    for line in lines:
        if "submit" in line:
            assert line["status"] == 0, line
            answers.setdefault(line["submit"], set()).add(line["message_id"])
    assert len(answers) == 200 and all(len(ids) == 1 for ids in answers.values())  # one id for all parts
    receipts = {line["receipt"]: line for line in lines if "receipt" in line}
    assert sorted(receipts) == sorted(next(iter(ids)) for ids in answers.values())
    assert {line["stat"] for line in receipts.values()} == {"DELIVRD"}
    assert all(line["tlv"] == id for id, line in receipts.items())
    assert [(m["source"], m["messages"]) for m in monitor["mailings"]] == [("smpp", 200)]  # one per session and day
    assert 'ecosms_ingested_total{channel="smpp",outcome="accepted"} 200.0' in metrics
    assert 'ecosms_ingested_messages_total{channel="smpp"} 200.0' in metrics
    by_number: dict[str, list[dict]] = {}
    for pdu in peer.received():
        by_number.setdefault(pdu["destination"], []).append(pdu)
    for submit in submits:
        pdus = sorted(by_number[str(submit["destination"])], key=lambda pdu: pdu["udh"][0][-2:] if pdu.get("udh") else "")
        message = submit["message"]
        assert "".join(pdu["text"] for pdu in pdus) == ("".join(message) if isinstance(message, list) else message)


async def test_replies_go_back_as_mo_and_one_the_client_refused_comes_again(
        store: Store, dsn: str, tmp_path: Path) -> None:
    await add_account(store)
    peer = Peer(tmp_path, "--receipts", "--reply-every", "1")
    port = free_port()
    try:
        async with daemon(dsn, tmp_path, peer.port, ECOSMS_SMPP_SERVER_LISTEN=f"127.0.0.1:{port}"):
            esme = await bound(port, "ACME", PASSWORD)
            esme.refusing = 1
            numbers = [f"3365432100{n}" for n in range(3)]
            try:
                await asyncio.to_thread(esme.answers_to, [esme.submit(number, b"Coming?") for number in numbers])
                await asyncio.to_thread(esme.wait, lambda: len(replies(esme.delivered)) == 3, 60)
            finally:
                await asyncio.to_thread(esme.close)
            waiting = await scalar(dsn, "SELECT count(*) FROM smpp_outbox")
    finally:
        peer.stop()
    assert sorted(replies(esme.delivered)) == sorted((number, "Yes") for number in numbers)
    assert len(esme.refused) == 1  # refused once (a receipt or a reply), then sent again and taken
    assert text(esme.refused[0].short_message) in {text(pdu.short_message) for pdu in esme.delivered}
    assert waiting == 0


def replies(delivered: list) -> list[tuple[str, str]]:
    """The MO deliver_sm: (from which number, what text)."""
    return [(text(pdu.source_addr), text(pdu.short_message)) for pdu in delivered if not pdu.esm_class & 0x04]
