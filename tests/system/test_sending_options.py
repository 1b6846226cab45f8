"""Per-message sending options (issue 16) as a developer uses them: each option chosen
over HTTP reaches the submit_sm the SMSC (node-smpp) receives, and the sms resource shows
what was chosen."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, daemon
from tests.support.daemon import COMMAND, Daemon, environment
from tests.support.mail import Sink
from tests.support.net import free_port, self_signed
from tests.support.smsc import Peer

# recipient -> the create call's options
CALLS = {
    "+33600000001": {"text": "default sender"},
    "+33600000002": {"text": "second brand", "sender": "BRAND2"},
    "+33600000003": {"text": "replies wanted", "type": "2"},
    "+33600000004": {"text": "Привет", "encoding": "auto"},
    "+33600000005": {"text": "café", "encoding": "auto"},
    "+33600000006": {"text": "flash", "flash": "true"},
    "+33600000007": {"text": "flash ünïcode", "flash": "true", "encoding": "ucs2"},
    "+33600000008": {"text": "urgent", "priority": "3", "validity": "30"},
}
# recipient -> (source_addr, source TON, data_coding, priority_flag) at the SMSC
EXPECTED = {
    "33600000001": ("ACME", 5, 0x00, 1),
    "33600000002": ("BRAND2", 5, 0x00, 1),
    "33600000003": ("33700000000", 1, 0x00, 1),
    "33600000004": ("ACME", 5, 0x08, 1),
    "33600000005": ("ACME", 5, 0x00, 1),
    "33600000006": ("ACME", 5, 0x10, 1),
    "33600000007": ("ACME", 5, 0x18, 1),
    "33600000008": ("ACME", 5, 0x00, 3),
}


async def test_each_option_reaches_the_pdu(dsn: str, store: Store, tmp_path: Path) -> None:
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     sender_ids=("ACME", "BRAND2", "+33700000000")))
    peer = Peer(tmp_path)
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            for recipient, options in CALLS.items():
                status, created = await client.call("POST", "/rest/sms",
                                                     json=options | {"contacts": [{"recipient": recipient}]})
                assert status == 201, created
            for _ in range(300):
                if len(peer.received()) >= len(CALLS):
                    break
                await asyncio.sleep(0.1)
            status, shown = await client.call(
                "GET", "/rest/sms?properties=recipient,sender,encoding,flash,text,priority,validity&sort=recipient ASC")
    finally:
        peer.stop()
    received = {pdu["destination"]: pdu for pdu in peer.received()}
    assert {destination: (pdu["source"], pdu["source_ton"], pdu["data_coding"], pdu["priority"])
            for destination, pdu in received.items()} == EXPECTED
    assert received["33600000008"]["validity"] and not received["33600000001"]["validity"]
    assert status == 200
    assert [(item["recipient"], item["sender"], item["encoding"], item["flash"]) for item in shown["list"]] == [
        ("+33600000001", "ACME", "gsm7", False), ("+33600000002", "BRAND2", "gsm7", False),
        ("+33600000003", "+33700000000", "gsm7", False), ("+33600000004", "ACME", "ucs2", False),
        ("+33600000005", "ACME", "gsm7", False), ("+33600000006", "ACME", "gsm7", True),
        ("+33600000007", "ACME", "ucs2", True), ("+33600000008", "ACME", "gsm7", False)]
    assert [(item["priority"], item["validity"]) for item in shown["list"]][-2:] == [(1, None), (3, 30)]
    assert shown["list"][4]["text"] == "café"


async def test_a_sender_id_not_the_accounts_is_refused_naming_the_allowed(dsn: str, store: Store,
                                                                          tmp_path: Path) -> None:
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     sender_ids=("ACME", "BRAND2")))
    async with daemon(dsn, tmp_path) as base, aiohttp.ClientSession() as session:
        client = Client(session, base)
        assert (await client.login()).status == 200
        contacts = [{"recipient": "+33600000001"}]
        other = await client.call("POST", "/rest/sms", json={"text": "x", "contacts": contacts, "sender": "OTHER"})
        alphanumeric = await client.call("POST", "/rest/sms", json={"text": "x", "contacts": contacts,
                                                                    "sender": "ACME", "type": "2"})
    assert other == (400, {"status": 400,
                           "message": "sender 'OTHER' is not one of this account's sender ids: ACME, BRAND2"})
    assert alphanumeric == (400, {"status": 400,
                                  "message": "sender 'ACME' is not one of this account's numeric sender ids: none"})


async def test_a_reply_is_mailed_where_its_message_said(dsn: str, store: Store, tmp_path: Path, sink: Sink) -> None:
    """`email`, `emailSender` and `emailSubject` on the create: the reply (from the
    simulator, every recipient answering) reaches that address, with that From and subject,
    instead of the account's --reply-email; the envelope sender stays the gateway's."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     sender_ids=("+33700000000",), reply_email="office@acme.example"))
    port = free_port()
    simulator = subprocess.Popen([COMMAND, "smsc-sim", "--port", str(port), "--dlr-delay", "0.1",
                                  "--reply-ratio", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with daemon(dsn, tmp_path, peer_port=port, ECOSMS_MAIL_OUT_RELAY=f"127.0.0.1:{sink.port}",
                          ECOSMS_MAIL_OUT_FROM="gateway@ecosms.example") as base, \
                aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            status, created = await client.call("POST", "/rest/sms", json={
                "text": "Your table is booked", "type": "2", "email": "shop@brand.example",
                "emailSender": "bookings@brand.example", "emailSubject": "A guest answered",
                "contacts": [{"recipient": "+33600000001"}]})
            assert status == 201, created
            assert await asyncio.to_thread(sink.received.wait, 30)
            _, shown = await client.call("GET", f"/rest/sms?id={created['id']}&properties=email,emailSender,"
                                                "emailSubject,sender,status")
    finally:
        simulator.terminate()
        simulator.wait(10)
    [mail] = sink.messages
    assert (mail["To"], mail["From"], mail["Subject"]) == (
        "shop@brand.example", "bookings@brand.example", "A guest answered")
    assert "Your table is booked" in mail.get_content()
    assert sink.envelope_senders == ["gateway@ecosms.example"]
    assert shown["list"] == [{"email": "shop@brand.example", "emailSender": "bookings@brand.example",
                              "emailSubject": "A guest answered", "sender": "+33700000000", "status": "rep"}]


async def test_ten_identical_calls_with_one_idempotency_key_send_one_sms(dsn: str, store: Store,
                                                                         tmp_path: Path) -> None:
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    peer = Peer(tmp_path)
    call = {"text": "Your code is 1234", "contacts": [{"recipient": "+33600000001"}]}
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            key = {"Idempotency-Key": "order-42"}
            answers = await asyncio.gather(*(client.call("POST", "/rest/sms", json=call, headers=key)
                                             for _ in range(10)))
            other = await client.call("POST", "/rest/sms", json=call | {"text": "Your code is 9999"}, headers=key)
            fresh = await client.call("POST", "/rest/sms", json=call, headers={"Idempotency-Key": "order-43"})
            await asyncio.sleep(1)  # time for anything wrongly sent twice to reach the SMSC
            for _ in range(100):
                if len(peer.received()) >= 2:
                    break
                await asyncio.sleep(0.1)
    finally:
        peer.stop()
    assert {status for status, _ in answers} == {201}
    assert len({(answer["id"], answer["mailingId"]) for _, answer in answers}) == 1
    assert other == (422, {"status": 422,
                           "message": "Idempotency-Key: used within 24 h for a call with other parameters"})
    assert fresh[0] == 201 and fresh[1]["id"] != answers[0][1]["id"]
    assert sorted(pdu["destination"] for pdu in peer.received()) == ["33600000001", "33600000001"]


async def test_a_mailing_shows_its_template_options_and_counts(client: Client) -> None:
    status, created = await client.call("POST", "/rest/mailing", json={
        "text": "Hello #firstName#", "name": "March", "pingUrl": "https://example.com/ping",
        "email": "shop@brand.example", "emailSubject": "Answers",
        "contacts": [{"recipient": "+33600000001", "firstName": "Jean"}, {"recipient": "+4915100000002"},
                     {"recipient": "+12025550003", "firstName": "Ann"}]})
    assert status == 201, created
    _, mailings = await client.call("GET", f"/rest/mailing?id={created['id']}")
    _, counted = await client.call("GET", f"/rest/mailing?id={created['id']}&properties=id,stats")
    _, messages = await client.call("GET", f"/rest/sms?mailingId={created['id']}&sort=id ASC"
                                           "&properties=recipient,dialingCode,pingUrl,email,emailSubject,text")
    [mailing] = mailings["list"]
    assert (mailing["text"], mailing["pingUrl"], mailing["email"], mailing["emailSender"], mailing["emailSubject"]) \
        == ("Hello #firstName#", "https://example.com/ping", "shop@brand.example", None, "Answers")
    assert "stats" not in mailing
    assert counted["list"] == [{"id": created["id"], "stats": {"wait": 3, "on": 0, "ok": 0, "ko": 0, "rep": 0,
                                                               "no": 0}}]
    assert [(m["recipient"], m["dialingCode"], m["text"]) for m in messages["list"]] == [
        ("+33600000001", "33", "Hello Jean"), ("+4915100000002", "49", "Hello "), ("+12025550003", "1", "Hello Ann")]
    assert {(m["pingUrl"], m["email"], m["emailSubject"]) for m in messages["list"]} == {
        ("https://example.com/ping", "shop@brand.example", "Answers")}


async def test_update_renames_and_reschedules_a_waiting_mailing_only(dsn: str, store: Store, tmp_path: Path) -> None:
    """A mailing for 2099 is moved to now and leaves at once; once sent, its date can no
    longer change, but its name still can (the seed's update, section 1.5)."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    peer = Peer(tmp_path)
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            _, created = await client.call("POST", "/rest/mailing", json={
                "text": "Sale", "name": "Later", "date": "2099-01-01 09:00:00",
                "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
            await asyncio.sleep(1)
            assert peer.received() == []  # waits for 2099
            moved = await client.call("PUT", "/rest/mailing", data={
                "name": "Later", "metaData": '{"name": "Now", "date": "2020-01-01 00:00:00"}'})
            for _ in range(100):
                if len(peer.received()) >= 2:
                    break
                await asyncio.sleep(0.1)
            refused = await client.call("POST", "/rest/mailing", data={
                "action": "update", "id": str(created["id"]), "metaData": '{"date": "2099-01-01"}'})
            renamed = await client.call("PUT", "/rest/mailing", data={
                "id": str(created["id"]), "metaData": '{"name": "Sent"}'})
            _, shown = await client.call("GET", f"/rest/mailing?id={created['id']}&properties=name,date")
    finally:
        peer.stop()
    assert moved == (200, {"count": 1})
    assert sorted(pdu["destination"] for pdu in peer.received()) == ["33600000001", "33600000002"]
    assert refused == (400, {"status": 400, "message": f"date: mailing {created['id']} has started: 2 of its "
                                                       "messages are sent or being sent; only the name can still "
                                                       "change"})
    assert renamed == (200, {"count": 1})
    assert shown["list"] == [{"name": "Sent", "date": "2020-01-01 00:00:00"}]


async def test_statistics_by_day_and_month_between_two_dates(client: Client, dsn: str) -> None:
    for name in ("Monday", "Tuesday"):
        status, _ = await client.call("POST", "/rest/mailing", json={
            "text": "x", "name": name, "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
        assert status == 201
    connection = await asyncpg.connect(dsn)
    await connection.execute("UPDATE mailings SET created_at = '2026-11-02 10:00+01' WHERE name = 'Monday'")
    await connection.execute("UPDATE mailings SET created_at = '2026-11-03 23:30+01' WHERE name = 'Tuesday'")
    await connection.close()
    _, by_day = await client.call("GET", "/rest/stats?period=day&properties=wait,total")
    _, by_month = await client.call("GET", "/rest/stats?period=month&dateStart=2026-11-03&dateEnd=2026-11-30")
    _, one_day = await client.call("GET", "/rest/stats?dateStart=2026-11-02&dateEnd=2026-11-02&properties=total")
    refused = await client.call("GET", "/rest/stats?period=week")
    connection = await asyncpg.connect(dsn)
    account_id = await connection.fetchval("SELECT id FROM accounts WHERE code = 'ACME'")
    async with connection.transaction():  # a STOP reply, as the store records one
        await connection.execute("SELECT set_config('ecosms.source', 'reply', true)")
        await connection.execute("INSERT INTO opt_outs (account_id, recipient) VALUES ($1, '+33600000009')", account_id)
    await connection.close()
    _, stops = await client.call("GET", "/rest/stats?properties=stops,optout")
    assert by_day["list"] == [{"period": "2026-11-02", "wait": 2, "total": 2},
                              {"period": "2026-11-03", "wait": 2, "total": 2}]  # in the account's zone (Paris)
    assert [(row["period"], row["total"]) for row in by_month["list"]] == [("2026-11", 2)]
    assert one_day["list"] == [{"total": 2}]
    assert refused == (400, {"status": 400, "message": "period: one of day, month"})
    assert stops["list"] == [{"stops": 1, "optout": 0}]


async def test_https_with_a_self_signed_certificate_through_curl(dsn: str, store: Store, tmp_path: Path) -> None:
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    cert, key = self_signed(tmp_path)
    port = free_port()
    daemon_process = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}",
                                            ECOSMS_HTTP_TLS_CERT=str(cert), ECOSMS_HTTP_TLS_KEY=str(key)))
    try:
        listening = await asyncio.to_thread(daemon_process.wait_for, "http_listening")
        base = f"https://localhost:{port}"
        token = await asyncio.to_thread(subprocess.run, [
            "curl", "-sS", "--cacert", str(cert), "-d", "grant_type=client_credentials", "-d", "client_id=ACME",
            "-d", f"client_secret={SECRET}", base + "/token"], capture_output=True, text=True, timeout=30)
        untrusted = await asyncio.to_thread(subprocess.run, ["curl", "-sS", base + "/health/live"],
                                            capture_output=True, text=True, timeout=30)
        plain = await asyncio.to_thread(subprocess.run, ["curl", "-sS", f"http://localhost:{port}/health/live"],
                                        capture_output=True, text=True, timeout=30)
    finally:
        daemon_process.process.terminate()
        daemon_process.finish(30)
    assert listening["https"] is True
    assert json.loads(token.stdout)["token_type"] == "bearer"
    assert untrusted.returncode == 60  # curl: the certificate is not trusted without --cacert
    assert plain.returncode != 0  # no clear-text answer on the HTTPS port


@pytest.mark.parametrize("kind", ["udh8", "udh16", "sar"])
async def test_a_long_reply_in_parts_out_of_order_is_one_response(dsn: str, store: Store, tmp_path: Path,
                                                                 kind: str) -> None:
    """node-smpp answers each SMS with a 3-part UCS-2 message (parts 3, 1, 2; an emoji's
    surrogate pair cut between parts 1 and 2): the message shows one `response`, the
    whole text."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     sender_ids=("+33700000000",)))
    peer = Peer(tmp_path, "--long-reply", kind)
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port) as base, aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200
            _, created = await client.call("POST", "/rest/sms", json={
                "text": "Table for four?", "type": "2", "contacts": [{"recipient": "+33600000001"}]})
            for _ in range(300):  # the parts come 1.5 s after the SMS, as a person answers
                _, shown = await client.call("GET", f"/rest/sms?id={created['id']}&properties=status,response")
                if shown["list"][0]["status"] == "rep":
                    break
                await asyncio.sleep(0.1)
            _, replies = await client.call("GET", "/rest/sms?way=mo&properties=text,smsId")
    finally:
        peer.stop()
    [sent] = [line["long_reply"] for line in peer.lines() if "long_reply" in line]
    assert shown["list"] == [{"status": "rep", "response": sent}]
    assert replies["list"] == [{"text": sent, "smsId": created["id"]}]
