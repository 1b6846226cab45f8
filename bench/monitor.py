"""Figures of the monitor's charts (issue 18), printed; run by hand from the repository:

    .venv/bin/python -m bench.monitor [--messages 900000] [--accounts 100]

An hour of traffic written straight into a durable PostgreSQL: `--messages` messages
(250/s for an hour by default) across `--accounts` accounts, each with its `on` event
and its final one (95% ok, 5% ko with one of five codes) a few seconds later, spread over
the last hour. Then the time to roll that hour up (what the reapers do every 10 s, one step
at a time), and of one read of every chart, for the operator (every account) and for
one account: what each refresh of a monitor page costs the database when its charts are
older than 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from bench.store import fresh_store
from ecosms_gw.core.accounts import Account
from tests.support.postgres import server

FILL = """
INSERT INTO mailings (account_id, source, messages, parts)
SELECT a.id, 'http', $1 / $2, $1 / $2 FROM accounts a ORDER BY a.id;
INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, due_at, state, status, smsc,
                      updated_at)
SELECT g.id, g.account_id, '+336' || lpad(n::text, 8, '0'), 'bulk', 'gsm7', 1,
       now() - interval '1 hour' + (n::float8 / ($1 / $2)) * interval '1 hour', 'done', 'ok', 'main', now()
FROM mailings g, generate_series(1, $1 / $2) AS n;
INSERT INTO status_events (message_id, account_id, status, created_at, queued)
SELECT id, account_id, 'on', due_at, false FROM messages ORDER BY due_at;
INSERT INTO status_events (message_id, account_id, status, code, description, created_at, queued)
SELECT id, account_id, CASE WHEN id % 20 = 0 THEN 'ko' ELSE 'ok' END,
       CASE WHEN id % 20 = 0 THEN '0' || (id % 5)::text END, CASE WHEN id % 20 = 0 THEN 'refused' END,
       least(due_at + (1 + id % 7) * interval '1 second', now()), false
FROM messages ORDER BY due_at
"""


async def main(arguments: argparse.Namespace) -> None:
    with server(durable=True) as (admin, _):
        store, dsn = await fresh_store(admin, "bench_monitor")
        for n in range(arguments.accounts):
            await store.accounts.add(Account(id=None, code=f"A{n}", international=True))
        connection = await asyncpg.connect(dsn)
        start = time.perf_counter()
        for statement in FILL.strip().split(";\n"):
            await connection.execute(statement.replace("$1", str(arguments.messages))
                                     .replace("$2", str(arguments.accounts)))
        await connection.execute("VACUUM ANALYZE")
        events = await connection.fetchval("SELECT count(*) FROM status_events")
        print(f"monitor: {events:,} status events of the last hour across {arguments.accounts} accounts, "
              f"written in {time.perf_counter() - start:.0f} s")
        # as in a cluster running for an hour already (a first start rolls up 2 minutes only)
        await connection.execute("INSERT INTO monitor_steps VALUES (date_bin('10 seconds', now() - interval '1 hour', 'epoch'))")
        began = time.perf_counter()
        steps = await store.monitor.sample()
        took = time.perf_counter() - began
        rows = await connection.fetchval("SELECT count(*) FROM monitor_rollups")
        print(f"monitor: the hour rolled up in {took:.1f} s: {steps} steps of 10 s, {took / max(1, steps) * 1000:.0f} ms "
              f"a step ({events // max(1, steps):,} events a step), {rows:,} rollup rows")
        one = await connection.fetchval("SELECT min(id) FROM accounts")
        for scope, account_id in (("every account", None), ("one account", one)):
            durations = []
            for _ in range(5):
                began = time.perf_counter()
                charts = await store.monitor.charts(account_id)
                durations.append(time.perf_counter() - began)
            print(f"monitor: charts of {scope}: {statistics.median(durations) * 1000:,.0f} ms a read (median of 5); "
                  f"{len(charts.submitted.times)} submitted points, {len(charts.latency.times)} latency points")
        await connection.close()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=900_000)
    parser.add_argument("--accounts", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
