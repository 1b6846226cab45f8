"""The HTTP API's rules against the running daemon: each format, each error code, limits,
another account's data never visible, health and metrics, the OpenAPI description under
schemathesis, and the monitor in a real browser."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import jwt
import pytest

from ecosms_gw.core import tokens
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.http import params as api
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, claim_all, daemon
from tests.support.browser import chromium
from tests.support.daemon import Daemon, environment
from tests.support.net import free_port


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


async def test_a_csv_read_never_carries_a_formula_to_a_spreadsheet(client: Client) -> None:
    """A mailing named as a formula comes back as text in CSV (an apostrophe first), as it
    was in JSON; numbers, even signed, stay numbers."""
    name = '=HYPERLINK("http://evil.test","click")'
    _, created = await client.call("POST", "/rest/mailing", json={
        "text": "-5% today", "name": name, "contacts": [{"recipient": "+33600000001"}]})
    _, text = await client.call("GET", f"/rest/mailing.csv?id={created['id']}&properties=name")
    assert list(csv.reader(io.StringIO(text))) == [["name"], ["'" + name]]
    _, listed = await client.call("GET", f"/rest/mailing.json?id={created['id']}&properties=name")
    assert listed["list"] == [{"name": name}]
    _, text = await client.call("GET", "/rest/sms.csv?properties=text,recipient")
    assert list(csv.reader(io.StringIO(text))) == [["text", "recipient"], ["'-5% today", "+33600000001"]]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [
    ("GET", "/rest/nothing", {}, 404, "unknown resource 'nothing'"),
    ("PUT", "/rest/status", {}, 405, "status: no action 'update'"),
    ("PUT", "/rest/mailing", {}, 417, "id or name is required: the mailings to update"),
    ("PUT", "/rest/mailing?id=1", {}, 417, "metaData is required: a JSON object of the attributes to change"),
    ("PUT", "/rest/mailing?id=1", {"data": {"metaData": '{"description": "x"}'}}, 400,
     "metaData: description cannot be changed (name and date can)"),
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
     400, "sender 'OTHER' is not one of this account's sender ids: none"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "type": "2", "contacts": [{"recipient": "+33600000001"}]}},
     400, "type 2 (replies wanted) needs a numeric sender id, and this account has none"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "encoding": "latin1", "contacts": [{"recipient": "+33600000001"}]}},
     400, "encoding: one of text, ucs2, auto"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "email": "not an address", "contacts": [{"recipient": "+33600000001"}]}},
     400, "email: 'not an address' is not an address like jane@example.com"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "emailSubject": "a\r\nBcc: x@evil.example",
                                        "contacts": [{"recipient": "+33600000001"}]}},
     400, "emailSubject: at most 200 characters, on one line"),
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
     "code, description, response, segments, encoding, parts, sender, flash, email, emailSender, emailSubject, "
     "dialingCode, pingUrl, priority, validity"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "priority": "4", "contacts": [{"recipient": "+33600000001"}]}},
     400, "priority: a whole number from 0 to 3"),
    ("POST", "/rest/mailing", {"json": {"text": "x", "validity": "1", "contacts": [{"recipient": "+33600000001"}]}},
     400, "validity: a whole number from 5 to 4320"),
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
    [message] = await claim_all(store, 1)
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


async def test_expired_unsigned_forged_and_tampered_tokens_are_refused(client: Client, store: Store) -> None:
    """Tokens an attacker could make: expired (with the daemon's own key), `alg: none`,
    signed with another key, and a real token whose account was changed. Each gets 401."""
    key = await store.setting("api_token_key", "unused: the daemon made it already")
    account = await store.accounts.get("ACME")
    claims = jwt.decode(client.token, key, algorithms=["HS256"])
    real = client.token
    header, _, signature = real.split(".")
    other_sub = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "OTHER"}).encode()).rstrip(b"=").decode()
    forged = {
        "expired": tokens.issue(key, "ACME", account.api_secret, ttl_s=60, now=time.time() - 3600),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "another key": jwt.encode(claims, "guessed-key", algorithm="HS256"),
        "tampered": f"{header}.{other_sub}.{signature}",
    }
    for name, token in forged.items():
        client.token = token
        status, body = await client.call("GET", "/rest/mailing")
        assert status == 401, (name, body)
    client.token = real
    assert (await client.call("GET", "/rest/mailing"))[0] == 200


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
    messages = await claim_all(store, 40)
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
