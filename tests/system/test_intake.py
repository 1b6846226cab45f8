"""Group commit of API creates against the running daemon: many callers at once share
transactions, each is answered after the commit that holds its message, and a database
fault in a group answers every caller of that group 503 with nothing stored. Accounts kept
in memory follow a change made anywhere within a second."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import aiohttp
import asyncpg

from ecosms_gw.store import Store
from tests.support.api import Client, daemon
from tests.support.daemon import COMMAND

CALLERS = 200


def number(n: int) -> str:
    return f"+3361{n:07d}"


async def create_all(client: Client, count: int = CALLERS) -> list[tuple[int, object]]:
    return await asyncio.gather(*(client.call("POST", "/rest/sms", json={
        "text": f"code {n}", "contacts": [{"recipient": number(n)}]}) for n in range(count)))


async def test_concurrent_creates_share_commits_and_each_gets_its_stored_message(client: Client, dsn: str) -> None:
    answers = await create_all(client)
    assert {status for status, _ in answers} == {201}
    connection = await asyncpg.connect(dsn)
    try:
        rows = {row["id"]: row for row in await connection.fetch(
            "SELECT id, recipient, text, xmin::text AS transaction FROM messages")}
    finally:
        await connection.close()
    for n, (_, body) in enumerate(answers):
        assert isinstance(body, dict)
        stored = rows[body["id"]]  # answered with the id of its own message, stored
        assert (stored["recipient"], stored["text"], body["recipient"], body["status"]) == \
            (number(n), f"code {n}", number(n), "wait")
    assert len(rows) == CALLERS
    assert len({row["transaction"] for row in rows.values()}) < CALLERS / 4  # shared transactions


async def test_a_fault_in_a_group_answers_each_of_its_callers_503_and_stores_none_of_them(
        client: Client, dsn: str) -> None:
    poisoned = number(77)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"""
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.recipient = '{poisoned}' THEN RAISE EXCEPTION 'disk on fire'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison();""")
        answers = await create_all(client)
        stored = {row["recipient"]: row["id"] for row in await connection.fetch("SELECT id, recipient FROM messages")}
        mailings = await connection.fetchval("SELECT count(*) FROM mailings")
    finally:
        await connection.close()
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {201, 503} and statuses[77] == 503
    for n, (status, body) in enumerate(answers):
        assert isinstance(body, dict)
        if status == 201:
            assert stored[number(n)] == body["id"]
        else:
            assert number(n) not in stored and body["message"] == "database unavailable, retry later"
    assert len(stored) == mailings == statuses.count(201)  # no mailing without its message


async def test_a_new_api_secret_ends_old_tokens_on_another_daemon_within_a_second(
        client: Client, dsn: str, store: Store, tmp_path: Path) -> None:
    async with daemon(dsn, tmp_path) as other, aiohttp.ClientSession() as session:
        elsewhere = Client(session, other)
        elsewhere.token = client.token
        assert (await elsewhere.call("GET", "/rest/sms"))[0] == 200  # the account is in its memory now
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")} | {"ECOSMS_DATABASE_DSN": dsn}
        subprocess.run([COMMAND, "account", "set", "ACME", "--api-secret", "a-new-secret"], env=env, check=True,
                       capture_output=True)
        changed = time.monotonic()
        while (status := (await elsewhere.call("GET", "/rest/sms"))[0]) == 200 and time.monotonic() - changed < 5:
            await asyncio.sleep(0.01)
        assert status == 401 and time.monotonic() - changed < 1.0
        assert (await client.call("GET", "/rest/sms"))[0] == 401  # and on the daemon that issued it
        assert (await elsewhere.login("ACME", "a-new-secret")).status == 200
        assert (await elsewhere.call("GET", "/rest/sms"))[0] == 200
