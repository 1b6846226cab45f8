"""Figures of the store and daemon (issue 3), printed; run by hand from the repository:

    .venv/bin/python -m bench.store

On a throw-away PostgreSQL cluster with default durability (fsync on), like production:
1. enqueue of 2,000-message mailings (compose output, COPY, one transaction each);
2. claim by one claimer (batches of 500, then marked submitted) with 1,000,000 rows done;
3. the daemon's RSS with 1,000,000 messages waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench.core import personalised_body
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.postgres import server, with_database

MAILINGS = 50
DONE_ROWS = 1_000_000
CLAIM_ROWS = 200_000
BATCH = 500


async def new_database(admin_dsn: str, name: str) -> str:
    """An empty database on the bench's server: its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return with_database(admin_dsn, name)


def add_account(dsn: str, code: str, *options: str) -> None:
    """`ecosms-gw account add CODE OPTIONS` on that database, as an operator would."""
    subprocess.run([str(Path(sys.executable).parent / "ecosms-gw"), "account", "add", code, *options],
                   env={k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")}
                   | {"ECOSMS_DATABASE_DSN": dsn}, check=True, capture_output=True)


async def fresh_store(admin_dsn: str, name: str) -> tuple[Store, str]:
    dsn = await new_database(admin_dsn, name)
    store = await Store.open(dsn, max_connections=8)
    await store.migrate()
    return store, dsn


async def bench_enqueue(admin_dsn: str) -> None:
    store, _ = await fresh_store(admin_dsn, "bench_enqueue")
    account = await store.accounts.add(Account(id=None, code="BENCH"))
    composition = compose(parse_all([personalised_body(2000)]), AccountRules(max_messages=2000))
    durations = []
    for _ in range(MAILINGS):
        start = time.perf_counter()
        await store.mailings.enqueue(Submission(account.id, "smtp", None), composition, {"dropped": []})
        durations.append(time.perf_counter() - start)
    median = statistics.median(durations)
    print(f"enqueue 2,000-message mailings x{MAILINGS}, one at a time: median {median * 1000:.1f} ms "
          f"per mailing = {2000 / median:,.0f} messages/s")
    for senders in (2, 4):
        async def sender(mailings: int) -> None:
            for _ in range(mailings):
                await store.mailings.enqueue(Submission(account.id, "smtp", None), composition, {"dropped": []})
        start = time.perf_counter()
        await asyncio.gather(*(sender(MAILINGS // senders) for _ in range(senders)))
        elapsed = time.perf_counter() - start
        print(f"enqueue with {senders} concurrent senders: "
              f"{senders * (MAILINGS // senders) * 2000 / elapsed:,.0f} messages/s")
    await store.close()


async def load_rows(dsn: str, account_id: int, state: str, status: str, count: int) -> None:
    connection = await asyncpg.connect(dsn)
    mailing = await connection.fetchval(
        "INSERT INTO mailings (account_id, source, messages, parts) VALUES ($1, 'http', $2, $2) RETURNING id",
        account_id, count)
    await connection.execute(
        "INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, state, status)"
        " SELECT $1, $2, '+336' || lpad(g::text, 8, '0'), 'text ' || g, 'gsm7', 1, $3, $4"
        " FROM generate_series(1, $5) g", mailing, account_id, state, status, count)
    await connection.execute("VACUUM ANALYZE messages")
    await connection.close()


async def bench_claim(admin_dsn: str) -> None:
    store, dsn = await fresh_store(admin_dsn, "bench_claim")
    account = await store.accounts.add(Account(id=None, code="BENCH"))
    await load_rows(dsn, account.id, "done", "ok", DONE_ROWS)
    await load_rows(dsn, account.id, "queued", "wait", CLAIM_ROWS)
    claim_time = mark_time = 0.0
    claimed = 0
    while True:
        start = time.perf_counter()
        batch = await store.dispatch.claim(BATCH, worker=1)
        claim_time += time.perf_counter() - start
        if not batch:
            break
        start = time.perf_counter()
        await store.dispatch.record_submissions("main", [], [], [], mark=[c.id for c in batch])
        await store.dispatch.record_submissions("main", [(c.id, 1, str(c.id)) for c in batch],
                                       [c.id for c in batch], [])
        mark_time += time.perf_counter() - start
        claimed += len(batch)
    assert claimed == CLAIM_ROWS
    print(f"claim with {DONE_ROWS:,} rows done: {claimed / claim_time:,.0f} messages/s claimed "
          f"(batches of {BATCH}); claim + mark submitting + record submitted {claimed / (claim_time + mark_time):,.0f}/s")
    await store.close()


async def bench_daemon_rss(admin_dsn: str) -> None:
    store, dsn = await fresh_store(admin_dsn, "bench_rss")
    account = await store.accounts.add(Account(id=None, code="BENCH"))
    await store.close()
    await load_rows(dsn, account.id, "queued", "wait", DONE_ROWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")}
    env |= {"ECOSMS_DATABASE_DSN": dsn, "ECOSMS_LOG_FORMAT": "json"}
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "ecosms-gw"), "run"], env=env,
                              stdout=subprocess.PIPE, text=True)
    for line in daemon.stdout:
        if json.loads(line).get("event") == "daemon_started":
            break
    peak = 0
    for _ in range(10):
        await asyncio.sleep(0.5)
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        peak = max(peak, int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]))
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(10)
    print(f"daemon peak RSS with {DONE_ROWS:,} messages waiting: {peak / 1024:.0f} MB")


async def main() -> None:
    with server(durable=True) as (admin_dsn, _):
        await bench_enqueue(admin_dsn)
        await bench_claim(admin_dsn)
        await bench_daemon_rss(admin_dsn)


if __name__ == "__main__":
    asyncio.run(main())
