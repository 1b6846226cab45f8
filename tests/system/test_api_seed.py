"""The HTTP API as the seed's section 3 shows it, against the running daemon on real
PostgreSQL: one test per example (hosts adapted)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
import asyncpg

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, claim_all
from tests.support.smsc import apply_receipts


async def test_token_as_in_the_seed(served: tuple[str, Store]) -> None:
    base, store = served
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET)))
    async with aiohttp.ClientSession() as session:
        response = await session.post(base + "/token", data={
            "client_id": "ACME", "client_secret": SECRET, "grant_type": "client_credentials"})
        body = await response.json()
        assert response.status == 200
        assert (body["expires_in"], body["token_type"], body["scope"]) == ("3600", "bearer", "basic")
        bad = await session.post(base + "/token", data={
            "client_id": "ACME", "client_secret": "wrong", "grant_type": "client_credentials"})
        assert (bad.status, await bad.json()) == (400, {"error": "invalid_client",
                                                       "error_description": "The client credentials are invalid"})
        unknown = await session.post(base + "/token", data={
            "client_id": "NOBODY", "client_secret": SECRET, "grant_type": "client_credentials"})
        assert unknown.status == 400
        grant = await session.post(base + "/token", data={"client_id": "ACME", "client_secret": SECRET,
                                                          "grant_type": "password"})
        assert (grant.status, (await grant.json())["error"]) == (400, "unsupported_grant_type")


async def test_guessing_secrets_is_slowed_down(served: tuple[str, Store]) -> None:
    base, store = served
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET)))
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(22):
            response = await session.post(base + "/token", data={
                "client_id": "ACME", "client_secret": "guess", "grant_type": "client_credentials"})
            statuses.append(response.status)
        assert statuses[:20] == [400] * 20 and statuses[20:] == [429, 429]


async def test_every_rest_call_needs_a_valid_token(client: Client, served: tuple[str, Store]) -> None:
    base, store = served
    token = client.token
    client.token = ""
    assert await client.call("GET", "/rest/sms") == (401, {"status": 401, "message":
                                                           "Authenticate failed: an Authorization: Bearer token is required"})
    client.token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await client.call("GET", "/rest/sms"))[0] == 401
    client.token = token
    assert (await client.call("GET", "/rest/sms"))[0] == 200
    # a new API secret ends the tokens issued before, as soon as the daemon hears of it
    account = await store.accounts.get("ACME")
    await store.accounts.update(replace(account, api_secret=hash_secret("another")))
    changed = asyncio.get_running_loop().time()
    while (await client.call("GET", "/rest/sms"))[0] == 200:
        assert asyncio.get_running_loop().time() - changed < 1.0, "the old token still works after 1 s"
        await asyncio.sleep(0.005)


async def test_send_one_sms_as_in_the_seed(client: Client) -> None:
    """3.4.2: POST /rest/sms with a JSON body."""
    status, sms = await client.call("POST", "/rest/sms", json={
        "text": "Text message to be sent", "date": "2017-05-07 11:12:25",
        "contacts": [{"civility": "M.", "firstName": "Jean", "lastName": "DUPONT", "recipient": "+33696300056"}]})
    assert status == 201
    assert (sms["status"], sms["text"], sms["recipient"], sms["date"]) == (
        "wait", "Text message to be sent", "+33696300056", "2017-05-07 11:12:25")
    status, read = await client.call("GET", f"/rest/sms?id={sms['id']}&properties=DEFAULT,recipient,status")
    assert (status, read) == (200, {"size": 1, "total": None, "list": [
        {"id": sms["id"], "recipient": "+33696300056", "status": "wait"}]})


async def test_send_a_personalised_sms_as_in_the_seed(client: Client) -> None:
    """3.5.2: `#civility# #firstName# #lastName#` from the contact."""
    status, sms = await client.call("POST", "/rest/sms", json={
        "text": "Dear #civility# #firstName# #lastName#", "date": "2017-05-07 11:12:25",
        "contacts": [{"civility": "M.", "firstName": "Jean", "lastName": "DUPONT", "recipient": "+33696300056"}]})
    assert (status, sms["text"]) == (201, "Dear M. Jean DUPONT")


async def test_cancel_one_sms(client: Client, store: Store) -> None:
    _, first = await client.call("POST", "/rest/sms", json={"text": "a", "contacts": [{"recipient": "+33600000001"}]})
    _, second = await client.call("POST", "/rest/sms", json={"text": "b", "contacts": [{"recipient": "+33600000002"}]})
    assert await client.call("GET", f"/rest/sms?id={first['id']}&action=delete") == (200, {"count": 1})
    assert await client.call("DELETE", f"/rest/sms?id={first['id']}") == (304, "")  # once
    _, statuses = await client.call("GET", f"/rest/status?smsId={first['id']},{second['id']}&properties=status,code")
    assert statuses["list"] == [{"status": "ko", "code": "canceled"}, {"status": "wait", "code": None}]


async def test_one_sms_is_one_contact(client: Client) -> None:
    status, body = await client.call("POST", "/rest/sms", json={
        "text": "x", "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
    assert (status, body["message"]) == (400, "contacts: at most 1 per call")


async def test_mailings_as_in_the_seed(client: Client) -> None:
    """3.8.3 and 3.8.4 (form-encoded here, JSON there), 3.9.2 read, 3.10 cancel."""
    status, simple = await client.call("POST", "/rest/mailing", data={
        "text": "Text to be sent", "name": "Name of the mailing", "date": "2037-05-07 11:12:25",
        "contacts": json.dumps([{"recipient": "+33696300056"}, {"recipient": "+33696358756"}])})
    assert (status, simple["messages"], simple["parts"], simple["dropped"]) == (201, 2, 2, [])
    status, personal = await client.call("POST", "/rest/mailing", json={
        "text": "Hello #firstName# #lastName#.", "name": "Personal", "date": "2037-05-07 11:12:25",
        "contacts": [{"firstName": "Jean", "lastName": "DUPONT", "recipient": "+33696300056"},
                     {"firstName": "Marc", "lastName": "DUPOND", "recipient": "+33696358756"},
                     {"firstName": "Nobody", "recipient": "12"}]})
    assert (status, personal["messages"]) == (201, 2)
    assert personal["dropped"] == [{"line": 3, "recipient": "12", "reason": "invalid_number"}]
    status, texts = await client.call("GET", f"/rest/sms?mailingId={personal['id']}&properties=text&sort=id ASC")
    assert [row["text"] for row in texts["list"]] == ["Hello Jean DUPONT.", "Hello Marc DUPOND."]

    status, read = await client.call("GET", f"/rest/mailing?id={simple['id']}")
    assert status == 200 and read["size"] == 1
    assert {k: read["list"][0][k] for k in ("id", "name", "status", "text", "date", "messages")} == {
        "id": simple["id"], "name": "Name of the mailing", "status": "created", "text": "Text to be sent",
        "date": "2037-05-07 11:12:25", "messages": 2}
    assert (await client.call("GET", "/rest/mailing?name=Personal"))[1]["list"][0]["id"] == personal["id"]

    assert await client.call("DELETE", f"/rest/mailing?id={simple['id']}") == (200, {"count": 2, "status": "canceled"})
    status, after = await client.call("GET", f"/rest/status?mailingId={simple['id']}")
    assert {(row["status"], row["code"]) for row in after["list"]} == {("ko", "canceled")}
    # nothing left to cancel: the seed's 304, which HTTP sends without a body
    assert await client.call("DELETE", f"/rest/mailing?id={simple['id']}") == (304, "")


async def test_reading_sms_as_in_the_seed(client: Client, dsn: str) -> None:
    """3.6.3: by recipient, by recipient and date, between two dates, replies of a mailing."""
    _, first = await client.call("POST", "/rest/mailing", json={
        "text": "April", "date": "2017-04-07 11:12:25", "contacts": [{"recipient": "+33600000001"}]})
    _, second = await client.call("POST", "/rest/mailing", json={
        "text": "June", "date": "2017-06-10 08:00:00",
        "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
    ids = await _message_ids(dsn)

    _, by_number = await client.call("GET", "/rest/sms", params={"recipient": "+33600000001"})
    assert [row["id"] for row in by_number["list"]] == [ids[0], ids[1]]
    _, at_date = await client.call("GET", "/rest/sms", params={
        "recipient": "+33600000001", "date": "2017-04-07 11:12:25", "properties": "DEFAULT,text"})
    assert at_date["list"] == [{"id": ids[0], "text": "April"}]
    _, between = await client.call("GET", "/rest/sms", params={
        "properties": "DEFAULT", "date[0][logical]": "AND", "date[1][operator]": ">=",
        "date[1][value]": "2017-06-09", "date[2][operator]": "<", "date[2][value]": "2017-06-27",
        "total": "true", "limit": "1", "sort": "id DESC"})
    assert (between["size"], between["total"], between["list"]) == (1, 2, [{"id": ids[2]}])
    _, arrays = await client.call("GET", f"/rest/sms?id[0]={ids[0]}&id[1]={ids[2]}")
    assert [row["id"] for row in arrays["list"]] == [ids[0], ids[2]]

    connection = await asyncpg.connect(dsn)
    await connection.execute("UPDATE messages SET state = 'done', status = 'rep', response = 'Yes' WHERE id = $1",
                             ids[1])
    await connection.execute("INSERT INTO mo_messages (smsc, source, destination, text, account_id, message_id) "
                             "SELECT 'main', '+33600000001', '38100', 'Yes', account_id, $1 FROM messages WHERE id = $1",
                             ids[1])
    await connection.close()
    _, replies = await client.call("GET", f"/rest/sms?mailingId={second['id']}&way=mo&properties=text,recipient,smsId")
    assert replies["list"] == [{"text": "Yes", "recipient": "+33600000001", "smsId": ids[1]}]
    assert (await client.call("GET", "/rest/sms?way=sideways"))[0] == 400
    assert first["id"] != second["id"]


async def _message_ids(dsn: str) -> list[int]:
    connection = await asyncpg.connect(dsn)
    try:
        return [row["id"] for row in await connection.fetch("SELECT id FROM messages ORDER BY id")]
    finally:
        await connection.close()


async def test_statuses_history_and_queue_as_in_the_seed(client: Client, store: Store, dsn: str) -> None:
    """3.11.2 current status by mailing and by sms, 3.11.3 the read-once queue, 3.12 history."""
    _, mailing = await client.call("POST", "/rest/mailing", json={
        "text": "Open day", "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
    [one, two] = await claim_all(store, 2)
    await store.dispatch.record_submissions("main", [], [], [], mark=[one.id, two.id])
    await store.dispatch.record_submissions("main", [(one.id, 1, "a"), (two.id, 1, "b")], [one.id, two.id], [])
    await apply_receipts(store, "main", [("a", "delivered", "000")])
    await store.receipts.record_reply("main", "+33600000001", "38100", "Yes, this open day can interest me", None,
                             lambda answered: None)

    _, current = await client.call("GET", f"/rest/status?mailingId={mailing['id']}")
    assert [(row["smsId"], row["status"]) for row in current["list"]] == [(one.id, "rep"), (two.id, "on")]
    _, single = await client.call("GET", f"/rest/status?smsId={two.id}&properties=status,recipient")
    assert single["list"] == [{"status": "on", "recipient": "+33600000002"}]

    _, parts = await client.call("GET", f"/rest/sms?id={one.id},{two.id}&properties=parts")
    assert parts["list"] == [{"parts": [{"seq": 1, "state": "delivered", "code": "000"}]},
                             {"parts": [{"seq": 1, "state": "submitted", "code": None}]}]
    _, history = await client.call("GET", f"/rest/smsstatus?smsId={one.id}&properties=smsId,status,description,date,response")
    assert [row["status"] for row in history["list"]] == ["wait", "on", "ok", "rep"]
    assert history["list"][-1]["response"] == "Yes, this open day can interest me"

    _, first = await client.call("GET", "/rest/status?action=queue&limit=4")
    assert [(row["smsId"], row["status"]) for row in first["list"]] == [
        (one.id, "on"), (two.id, "on"), (one.id, "ok"), (one.id, "rep")]
    assert (await client.call("GET", "/rest/status?action=queue"))[1]["list"] == []  # read once
    _, again = await client.call("POST", "/rest/status", params={"action": "queue"})
    assert again["size"] == 0


async def test_polling_a_mailing_always_sees_the_latest_status(client: Client, store: Store) -> None:
    """Status reads by mailing are kept between polls while nothing changes; any change of
    a message shows at the next poll."""
    _, mailing = await client.call("POST", "/rest/mailing", json={
        "text": "Poll", "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})

    async def poll() -> list[str]:
        _, body = await client.call("GET", f"/rest/status?mailingId={mailing['id']}&properties=status")
        return [row["status"] for row in body["list"]]

    assert await poll() == await poll() == ["wait", "wait"]
    [one, two] = await claim_all(store, 2)
    await store.dispatch.record_submissions("main", [], [], [], mark=[one.id, two.id])
    await store.dispatch.record_submissions("main", [(one.id, 1, "a"), (two.id, 1, "b")], [one.id, two.id], [])
    assert await poll() == ["on", "on"]
    await apply_receipts(store, "main", [("b", "failed", "001")])
    assert await asyncio.gather(*(poll() for _ in range(10))) == [["on", "ko"]] * 10  # polled at once
    await apply_receipts(store, "main", [("a", "delivered", "000")])
    assert await poll() == await poll() == ["ok", "ko"]
    _, total = await client.call("GET", f"/rest/status?mailingId={mailing['id']}&total=true&limit=1")
    assert (total["size"], total["total"]) == (1, 2)


async def test_statistics_as_in_the_seed(client: Client, store: Store, dsn: str) -> None:
    """3.13.2: by mailing name, by month; a number that opted out is counted apart."""
    account = await store.accounts.get("ACME")
    connection = await asyncpg.connect(dsn)
    await connection.execute("INSERT INTO opt_outs (account_id, recipient) VALUES ($1, '+33600000003')", account.id)
    await connection.close()
    _, mailing = await client.call("POST", "/rest/mailing", json={
        "text": "Stats", "name": "Mailing", "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"},
                                                         {"recipient": "+33600000003"}]})
    _, stats = await client.call("GET", "/rest/stats?mailingName=Mailing")
    assert stats["list"] == [{"wait": 2, "ok": 0, "on": 0, "no": 0, "ko": 0, "rep": 0, "optout": 1, "total": 2}]
    _, month = await client.call("GET", "/rest/stats?properties=DEFAULT&month=2017-06")
    assert month["list"][0]["total"] == 0
    assert (await client.call("GET", "/rest/stats?month=2017-13"))[0] == 400
    assert (await client.call("GET", f"/rest/stats?month=2017-06&mailingId={mailing['id']}"))[0] == 400
