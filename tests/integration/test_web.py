"""The HTTP API with a real HTTP client against the running daemon on real PostgreSQL: one
test per example of the seed's section 3 (hosts adapted), each error code, each format,
and another account's data never visible."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.http import params as api
from ecosms_gw.store import Store
from tests.support.daemon import COMMAND, Daemon, environment
from tests.support.net import free_port
from tests.support.smsc import apply_receipts

SECRET = "p280edbd76d510c41990cbe5e6108c7e"


class Client:
    """A developer's program: a token, then calls with it."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base, self.token = session, base, ""

    async def login(self, code: str = "ACME", secret: str = SECRET) -> aiohttp.ClientResponse:
        response = await self.session.post(self.base + "/token", data={
            "client_id": code, "client_secret": secret, "grant_type": "client_credentials"})
        if response.status == 200:
            self.token = (await response.json())["access_token"]
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", {}) | ({"Authorization": f"Bearer {self.token}"} if self.token else {})
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as response:
            text = await response.text()
            kind = response.content_type
            if kind == "application/json" and text:
                return response.status, json.loads(text)
            return response.status, text


@contextlib.asynccontextmanager
async def daemon(dsn: str, folder: Path, **settings: str) -> AsyncIterator[str]:
    """`ecosms-gw run` on this database, its API on a free port; its SMSC (the simulator)
    serves only numbers starting 999, so that the messages of a test stay where the test
    puts them. Its base URL, once it answers."""
    config = folder / f"gw-{free_port()}.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[[smsc]]\nname = "main"\nsimulator = true\nroutes = ["999"]\n')
    port = free_port()
    env = environment(ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}", **settings)
    with open(folder / f"daemon-{port}.log", "w") as log:
        process = subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(300):
                    try:
                        async with session.get(base + "/health") as response:
                            if (await response.json())["smsc"].get("main") == "bound":
                                break
                    except (aiohttp.ClientError, KeyError, ValueError):
                        pass
                    assert process.poll() is None, (folder / f"daemon-{port}.log").read_text()[-2000:]
                    await asyncio.sleep(0.1)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.fixture
async def served(dsn: str, store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """The running daemon's API, and the store of its database."""
    async with daemon(dsn, tmp_path) as base:
        yield base, store


@pytest.fixture
async def client(served: tuple[str, Store]) -> AsyncIterator[Client]:
    base, store = served
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    async with aiohttp.ClientSession() as session:
        found = Client(session, base)
        assert (await found.login()).status == 200
        yield found


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
    # a new API secret ends the tokens issued before
    account = await store.accounts.get("ACME")
    await store.accounts.update(replace(account, api_secret=hash_secret("another")))
    assert (await client.call("GET", "/rest/sms"))[0] == 401


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
    [one, two] = await store.dispatch.claim(10, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[one.id, two.id])
    await store.dispatch.record_submissions("main", [(one.id, 1, "a"), (two.id, 1, "b")], [one.id, two.id], [])
    await apply_receipts(store, "main", [("a", "delivered", "000")])
    await store.receipts.record_reply("main", "+33600000001", "38100", "Yes, this open day can interest me", False,
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
    [one, two] = await store.dispatch.claim(10, worker=1)
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


async def test_each_format(client: Client) -> None:
    await client.call("POST", "/rest/sms", json={"text": "Ça <va> & vous?", "contacts": [{"recipient": "+33600000001"}]})
    status, text = await client.call("GET", "/rest/sms.xml?properties=id,text,recipient")
    root = ET.fromstring(text)
    assert (status, root.findtext("size"), root.find("list/item/text").text) == (200, "1", "Ça <va> & vous?")
    status, text = await client.call("GET", "/rest/sms.csv?properties=text,recipient")
    assert list(csv.reader(io.StringIO(text))) == [["text", "recipient"], ["Ça <va> & vous?", "+33600000001"]]
    status, text = await client.call("GET", "/rest/sms.js?callback=yourFunctionCallback&properties=recipient")
    assert text == 'yourFunctionCallback({"size": 1, "total": null, "list": [{"recipient": "+33600000001"}]});'
    status, body = await client.call("GET", "/rest/sms.js?callback=alert(1)//")
    assert (status, body["message"]) == (400, "callback: a JavaScript function name")
    assert (await client.call("GET", "/rest/sms.json"))[0] == 200
    assert (await client.call("GET", "/rest/sms.yaml"))[0] == 404


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [
    ("GET", "/rest/nothing", {}, 404, "unknown resource 'nothing'"),
    ("PUT", "/rest/mailing", {}, 405, "mailing: no action 'update'"),
    ("GET", "/rest/sms?action=update", {}, 405, "sms: no action 'update'"),
    ("DELETE", "/rest/sms", {}, 417, "id is required: the messages to cancel"),
    ("POST", "/rest/mailing", {"json": {"contacts": [{"recipient": "+33600000001"}]}}, 417, "text is required"),
    ("POST", "/rest/mailing", {"json": {"text": "x"}}, 417,
     "contacts is required: a list of objects with a recipient"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "contacts": [{"name": "no number"}]}}, 400,
     "contacts[0]: no recipient"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "contacts": [{"recipient": "+33600000001"}] * 201}}, 400,
     "contacts: at most 200 per call"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "contacts": [{"recipient": "12"}]}}, 400,
     "no_messages: no recipient left to send to"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "date": "tomorrow", "contacts": [{"recipient": "+33600000001"}]}},
     400, "date: 'tomorrow' is not a date like 2017-05-07 11:12:25"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "sender": "OTHER", "contacts": [{"recipient": "+33600000001"}]}},
     400, "sender 'OTHER' is not this account's approved sender id"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "pingUrl": "ftp://example.com/",
                                        "contacts": [{"recipient": "+33600000001"}]}}, 400,
     "pingUrl: only http and https URLs are called"),
    ("POST", "/rest/mailing", {"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400,
     "the body is not valid JSON"),
    ("POST", "/rest/mailing", {"data": b"text=x", "headers": {"Content-Type": "multipart/form-data"}}, 415,
     "send parameters as application/x-www-form-urlencoded or application/json"),
    ("GET", "/rest/sms?recipient=%00", {}, 400, "parameters may not contain NUL characters"),
    ("GET", "/rest/sms?offset=99999999999999999999", {}, 400, "offset: a whole number"),
    ("GET", "/rest/sms?sort=text DESC", {}, 400, "sort: 'NAME ASC' or 'NAME DESC' with NAME one of id, date, status, recipient, smsId"),
    ("GET", "/rest/sms?properties=DEFAULT,password", {}, 400,
     "properties: unknown property 'password'; known: id, status, text, date, recipient, mailingId, mailingName, "
     "code, description, response, segments, encoding, parts"),
    ("GET", "/rest/sms?id=1,x", {}, 400, "id: ids are whole numbers"),
    ("GET", "/rest/sms?limit=-1", {}, 400, "limit: a whole number"),
    ("GET", "/rest/sms?date[1][operator]=~&date[1][value]=2017-01-01", {}, 400,
     "date: operator '~' is not one of = > >= < <="),
    ("GET", "/rest/smsstatus", {}, 417, "smsId is required"),
    ("DELETE", "/rest/mailing", {}, 417, "id is required: the mailing to cancel"),
    ("DELETE", "/rest/mailing?id=999999", {}, 404, "no mailing 999999"),
])
async def test_each_error(client: Client, method: str, path: str, kwargs: dict, status: int, message: str) -> None:
    assert await client.call(method, path, **kwargs) == (status, {"status": status, "message": message})


async def test_a_request_too_large_is_refused(client: Client) -> None:
    status, _ = await client.call("POST", "/rest/mailing", data=b"x" * (1024 * 1024 + 1),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413


async def test_another_accounts_data_is_never_visible(client: Client, served: tuple[str, Store], store: Store) -> None:
    base, _ = served
    _, mine = await client.call("POST", "/rest/mailing", json={
        "text": "Mine", "name": "Secret", "contacts": [{"recipient": "+33600000001"}]})
    [message] = await store.dispatch.claim(10, worker=1)
    await store.accounts.add(Account(id=None, code="OTHER", api_secret=hash_secret("other-secret")))
    async with aiohttp.ClientSession() as session:
        other = Client(session, base)
        assert (await other.login("OTHER", "other-secret")).status == 200
        for path in (f"/rest/sms?id={message.id}", f"/rest/sms?mailingId={mine['id']}", "/rest/sms?mailingName=Secret",
                     "/rest/sms?recipient=%2B33600000001", f"/rest/status?smsId={message.id}",
                     f"/rest/status?mailingId={mine['id']}", f"/rest/smsstatus?smsId={message.id}",
                     f"/rest/mailing?id={mine['id']}", "/rest/mailing", "/rest/status?action=queue",
                     "/rest/sms?way=mo"):
            status, body = await other.call("GET", path)
            assert (status, body["size"]) == (200, 0), path
        _, stats = await other.call("GET", f"/rest/stats?mailingId={mine['id']}")
        assert stats["list"][0]["total"] == 0
        assert await other.call("DELETE", f"/rest/mailing?id={mine['id']}") == (
            404, {"status": 404, "message": f"no mailing {mine['id']}"})
        assert await other.call("DELETE", f"/rest/sms?id={message.id}") == (304, "")
        # and a token of one account is no key to another
        other.token = client.token
        assert (await other.call("GET", "/rest/mailing"))[1]["size"] == 1
    assert (await client.call("GET", f"/rest/status?mailingId={mine['id']}"))[1]["list"][0]["status"] == "wait"


async def test_health_live_and_ready(served: tuple[str, Store]) -> None:
    base, _ = served
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/health") as response:
            body = await response.json()
            assert (response.status, body["status"], body["smsc"]) == (200, "ok", {"main": "bound"})
            assert re.fullmatch(r".+:[0-9]+", body["served_by"]["main"]["daemon"])  # host:pid
        async with session.get(base + "/health/live") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        async with session.get(base + "/health/ready") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok", "database": True})


async def test_metrics_are_prometheus_text(client: Client, served: tuple[str, Store]) -> None:
    base, _ = served
    await client.call("POST", "/rest/mailing", json={"text": "m", "contacts": [{"recipient": "+33600000001"}]})
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
        text = await response.text()
    assert response.status == 200
    assert 'ecosms_messages{status="wait"} 1.0' in text
    assert "ecosms_queue_depth 1.0" in text
    assert 'ecosms_smsc_bound{smsc="main"} 1.0' in text
    assert 'ecosms_ingested_total{channel="http",outcome="accepted"}' in text


def test_form_arrays_nest() -> None:
    assert api.nest([("id[0]", "12"), ("id[1]", "13"), ("date[1][operator]", ">="), ("x[]", "a"), ("x[]", "b")]) == {
        "id": {"0": "12", "1": "13"}, "date": {"1": {"operator": ">="}}, "x": {"0": "a", "1": "b"}}
    assert api.values({"id": "12,13"}, "id") == api.values({"id": {"0": "12", "1": "13"}}, "id") == ["12", "13"]


async def test_concurrent_queue_readers_never_get_the_same_status(client: Client, store: Store) -> None:
    await client.call("POST", "/rest/mailing", json={
        "text": "q", "contacts": [{"recipient": f"+336000000{n:02d}"} for n in range(40)]})
    messages = await store.dispatch.claim(100, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[m.id for m in messages])
    await store.dispatch.record_submissions("main", [(m.id, 1, f"s{m.id}") for m in messages], [m.id for m in messages], [])
    reads = await asyncio.gather(*(client.call("GET", "/rest/status?action=queue&limit=7") for _ in range(8)))
    seen = [row["smsId"] for _, body in reads for row in body["list"]]
    assert sorted(seen) == sorted(m.id for m in messages)


async def test_the_running_daemon_serves_the_api_end_to_end(dsn: str, store: Store) -> None:
    """`ecosms-gw run` with its simulator: a token, an SMS sent over HTTP, its status read
    until the simulator's receipt makes it `ok`; /health says the SMSC is bound."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET)))
    port = free_port()
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}"))
    try:
        daemon.wait_for("http_listening")
        async with aiohttp.ClientSession() as session:
            client = Client(session, f"http://127.0.0.1:{port}")
            assert (await client.login()).status == 200
            status, sms = await client.call("POST", "/rest/sms", json={
                "text": "Hello from HTTP", "contacts": [{"recipient": "+33600000001"}]})
            assert status == 201
            deadline = asyncio.get_running_loop().time() + 30
            while (await client.call("GET", f"/rest/status?smsId={sms['id']}"))[1]["list"][0]["status"] != "ok":
                assert asyncio.get_running_loop().time() < deadline, "no receipt in time"
                await asyncio.sleep(0.2)
            _, history = await client.call("GET", f"/rest/smsstatus?smsId={sms['id']}")
            assert [row["status"] for row in history["list"]] == ["wait", "on", "ok"]
            async with session.get(f"http://127.0.0.1:{port}/health") as response:
                assert (response.status, (await response.json())["smsc"]) == (200, {"simulator": "bound"})
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.finish(timeout=10) == 0
    assert "http_closed" in daemon.names()


def test_schemathesis_finds_no_server_error(dsn: str, tmp_path) -> None:
    """schemathesis generates calls from /openapi.json against the running daemon, with a
    valid token: none may end in a 5xx."""
    asyncio.run(_account_with_secret(dsn))
    port = free_port()
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}"))
    try:
        daemon.wait_for("http_listening")
        token = asyncio.run(_token(f"http://127.0.0.1:{port}"))
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"http://127.0.0.1:{port}/openapi.json",
             "--checks", "not_a_server_error", "--max-examples", "40", "--header", f"Authorization: Bearer {token}",
             "--phases", "examples,coverage,fuzzing", "--seed", "1"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.finish(timeout=10)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


async def _account_with_secret(dsn: str) -> None:
    store = await Store.open(dsn)
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    await store.close()


async def _token(base: str) -> str:
    async with aiohttp.ClientSession() as session:
        client = Client(session, base)
        assert (await client.login()).status == 200
        return client.token


async def chromium(*arguments: str) -> str:
    """Debian's Chromium, headless, as a person's browser: what it printed."""
    if shutil.which("chromium") is None:
        raise RuntimeError("chromium is not installed: ./scripts/test installs it")
    process = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=8000",
        *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return out.decode()


async def test_the_monitor_page_in_a_real_browser(store: Store, dsn: str, tmp_path: Path) -> None:
    """Chromium loads /monitor with the operator token and shows the mailing sent in this
    test; without a token it shows the sign-in form and no data."""
    async with daemon(dsn, tmp_path, ECOSMS_HTTP_OPERATOR_TOKEN="op-secret") as base:
        await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
        async with aiohttp.ClientSession() as session:
            client = Client(session, base)
            await client.login()
            _, mailing = await client.call("POST", "/rest/mailing", json={
                "text": "Open day", "name": "Open day in March",
                "contacts": [{"recipient": "+33600000001"}, {"recipient": "+33600000002"}]})
            async with session.get(base + "/monitor/data") as response:
                assert response.status == 401  # the data needs a token
        dom = await chromium("--dump-dom", f"{base}/monitor#token=op-secret")
        screenshot = tmp_path / "monitor.png"
        await chromium(f"--screenshot={screenshot}", "--window-size=1280,900", f"{base}/monitor#token=op-secret")
        anonymous = await chromium("--dump-dom", f"{base}/monitor")
    assert "Open day in March" in dom and f">{mailing['id']}<" in dom and "all accounts" in dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    assert "Open day in March" not in anonymous and '<section id="login">' in anonymous
