"""Figures of the scheduler (issue 15), printed; run by hand from the repository:

    .venv/bin/python -m bench.scheduler [--queued 1000000] [--accounts 1000] [--backlog 100000]

1. Claims: `--queued` messages across `--accounts` accounts (two priorities), written
   straight into a durable PostgreSQL (the intake trigger makes the queues). Then claims of
   4 and of 64 messages (what a link of 200 and of 3,200 tps takes at once), each one call
   of `record_and_take` as the pump makes it: claims/s and the p50/p99 time of one, and
   whether each claim followed priority and fairness (the accounts served).
2. Latency of an urgent SMS: the daemon (a subprocess, link tps 1,000, window 64) has
   `--backlog` messages of one account queued at priority 1; another account POSTs 50
   SMS at priority 3, one every 200 ms. The time from each 201 to its submit_sm at the
   node-smpp peer: p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

from bench.store import fresh_store
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from ecosms_gw.store.dispatch import Take
from tests.support.api import SECRET, Client
from tests.support.daemon import environment
from tests.support.postgres import server
from tests.support.smsc import Peer

FILL = """
INSERT INTO mailings (account_id, source, messages, parts)
SELECT a.id, 'http', $1 / $2, $1 / $2 FROM accounts a ORDER BY a.id;
INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, due_at, priority)
SELECT g.id, g.account_id, '+336' || lpad(n::text, 8, '0'), 'bulk', 'gsm7', 1, now() - interval '1 minute',
       (n % 2)::smallint
FROM mailings g, generate_series(1, $1 / $2) AS n;
"""


async def claims(admin_dsn: str, queued: int, accounts: int) -> None:
    store, dsn = await fresh_store(admin_dsn, "bench_claims")
    for n in range(accounts):
        await store.accounts.add(Account(id=None, code=f"A{n}", international=True))
    connection = await asyncpg.connect(dsn)
    start = time.perf_counter()
    for statement in FILL.strip().split(";\n"):
        await connection.execute(statement.replace("$1", str(queued)).replace("$2", str(accounts)))
    for table in ("messages", "queues"):
        await connection.execute(f"VACUUM ANALYZE {table}")
    print(f"scheduler: {queued:,} queued across {accounts:,} accounts (priorities 0 and 1) in "
          f"{time.perf_counter() - start:.0f} s; {await connection.fetchval('SELECT count(*) FROM queues'):,} queues")
    for size, count in ((4, 3000), (64, 1000)):
        times, served = [], set()
        for _ in range(count):
            began = time.perf_counter()
            taken = await store.dispatch.record_and_take("bench", [], [], [], Take(size, 1))
            times.append(time.perf_counter() - began)
            assert len(taken) == size and all(m.priority == 1 for m in taken)  # the most urgent first
            served.update(m.account_id for m in taken)
        times.sort()
        print(f"  claims of {size}: {count / sum(times):,.0f} claims/s ({count * size / sum(times):,.0f} "
              f"messages/s), p50 {statistics.median(times) * 1000:.2f} ms, p99 "
              f"{times[int(count * 0.99)] * 1000:.2f} ms; {len(served):,} accounts served in turn")
    await connection.close()
    await store.close()


async def urgent_latency(admin_dsn: str, backlog: int) -> None:
    store, dsn = await fresh_store(admin_dsn, "bench_urgent")
    await store.accounts.add(Account(id=None, code="BULK", international=True))
    await store.accounts.add(Account(id=None, code="OTP", api_secret=hash_secret(SECRET), international=True))
    connection = await asyncpg.connect(dsn)
    for statement in FILL.strip().split(";\n"):
        await connection.execute(statement.replace("$1", str(backlog)).replace("$2", "1")
                                 .replace("FROM accounts a", "FROM accounts a WHERE a.code = 'BULK'")
                                 .replace("(n % 2)::smallint", "1::smallint"))
    await connection.close()
    await run_daemon(store, dsn)


async def run_daemon(store: Store, dsn: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        peer = Peer(Path(folder))
        config = Path(folder) / "gw.toml"
        config.write_text(f'[database]\ndsn = "{dsn}"\n[[smsc]]\nname = "main"\nhost = "127.0.0.1"\n'
                          f"port = {peer.port}\ntps = 1000\nwindow = 64\n")
        env = environment(ECOSMS_LOG_LEVEL="warning")
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "ecosms-gw"), "run", "--config", str(config)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = "http://" + env["ECOSMS_HTTP_LISTEN"]
        lags = []
        try:
            await asyncio.sleep(3)
            async with aiohttp.ClientSession() as session:
                client = Client(session, base)
                assert (await client.login("OTP")).status == 200
                for n in range(50):
                    number = f"4477009{n:05d}"
                    status, _ = await client.call("POST", "/rest/sms", json={
                        "text": "Your code", "priority": 3, "contacts": [{"recipient": "+" + number}]})
                    answered = time.time()
                    assert status == 201
                    while not (arrived := [p for p in peer.received() if p["destination"] == number]):
                        await asyncio.sleep(0.005)
                    lags.append(arrived[0]["at"] / 1000 - answered)
                    await asyncio.sleep(0.2)
            waiting = await store.reads.queue_state()
        finally:
            daemon.terminate()
            daemon.wait(30)
            peer.stop()
    lags.sort()
    print(f"urgent SMS under a backlog: 50 at priority 3 while {waiting.queued:,} still waited at priority 1: "
          f"201 -> submit_sm at the peer p50 {statistics.median(lags) * 1000:.0f} ms, "
          f"p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms")
    await store.close()


async def main(arguments: argparse.Namespace) -> None:
    with server(durable=True) as (admin, _):
        await claims(admin, arguments.queued, arguments.accounts)
        await urgent_latency(admin, arguments.backlog)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=100_000)
    os.environ.setdefault("ECOSMS_LOG_LEVEL", "warning")
    asyncio.run(main(parser.parse_args()))
