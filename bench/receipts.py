"""Figures of receipts (issue 7), printed; run by hand from the repository:

    .venv/bin/python -m bench.receipts

With 1,000,000 submitted messages in the table (one part each, with its SMSC id), apply
200,000 receipts in batches of 1,000, as the gateway does: receipts/s, twice. In arrival
order: receipts for the 200,000 most recently submitted messages, shuffled within windows
of 10,000 (the spread of delivery times). In random order over the whole table: the worst
case, every receipt on a page nobody touched recently. The server is durable (fsync on)
with a production-sized cache (shared_buffers = 1 GB, PostgreSQL's advice for a machine
with 4 GB or more).

Then the latency from receipt to visible status, seen by the SMSC: node-smpp takes ten
seconds of messages at 200, 1,000 and 2,000/s and sends each receipt after a random delay
of up to a second (so receipts come in at the sending rate, while sending goes on); the
time from its deliver_sm to our deliver_sm_resp, which we send only once the status is
committed, is the latency: p50 and p99.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.dispatch import enqueue
from bench.store import fresh_store
from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store
from tests.support.postgres import server
from tests.support.smsc import Peer, apply_receipts, dispatcher_for

ROWS, RECEIPTS, BATCH, WINDOW = 1_000_000, 200_000, 1000, 10_000


async def submitted_messages(store: Store, dsn: str) -> list[int]:
    """ROWS messages submitted, one part each whose SMSC id is the message id in hex."""
    account = await store.accounts.add(Account(id=None, code="B"))
    connection = await asyncpg.connect(dsn)
    mailing = await connection.fetchval(
        "INSERT INTO mailings (account_id, source, messages, parts) VALUES ($1, 'http', $2, $2) RETURNING id",
        account.id, ROWS)
    await connection.execute(
        "INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, state, status)"
        " SELECT $1, $2, '+336' || lpad(g::text, 8, '0'), 'text', 'gsm7', 1, 'submitted', 'on'"
        " FROM generate_series(1, $3) g", mailing, account.id, ROWS)
    await connection.execute(
        "INSERT INTO parts (message_id, seq, smsc, smsc_message_id, state)"
        " SELECT id, 1, 'main', to_hex(id), 'submitted' FROM messages")
    await connection.execute("VACUUM ANALYZE")
    ids = [row["id"] for row in await connection.fetch("SELECT id FROM messages ORDER BY id")]
    await connection.close()
    return ids


async def receipts_per_second(store: Store, ids: list[int]) -> float:
    start = time.perf_counter()
    for offset in range(0, len(ids), BATCH):
        await apply_receipts(store, "main", [(format(i, "x"), "delivered", "000") for i in ids[offset:offset + BATCH]])
    return len(ids) / (time.perf_counter() - start)


async def main() -> None:
    with server(durable=True, settings="-c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min") as (admin_dsn, _):
        store, dsn = await fresh_store(admin_dsn, "bench_receipts")
        ids = await submitted_messages(store, dsn)
        recent = ids[-RECEIPTS:]
        arriving = [i for start in range(0, RECEIPTS, WINDOW)
                    for i in random.sample(recent[start:start + WINDOW], len(recent[start:start + WINDOW]))]
        anywhere = random.sample(ids[:-RECEIPTS], RECEIPTS)
        print(f"receipts applied with {ROWS:,} messages in the table, batches of {BATCH}, "
              "each message settled ok with its status event:")
        print(f"  in arrival order: {await receipts_per_second(store, arriving):,.0f}/s")
        print(f"  in random order over the whole table: {await receipts_per_second(store, anywhere):,.0f}/s")
        await store.close()
        with tempfile.TemporaryDirectory() as folder:
            for rate in (200, 1000, 2000):
                await latency(admin_dsn, Path(folder), rate)


async def latency(admin_dsn: str, folder: Path, rate: int) -> None:
    store, dsn = await fresh_store(admin_dsn, f"bench_latency_{rate}")
    account = await store.accounts.add(Account(id=None, code="B"))
    await enqueue(store, account, 10 * rate, "latency")
    peer = Peer(folder, "--receipts", "--receipt-delay-ms", "1000")
    task = asyncio.create_task(dispatcher_for(peer.port, store, tps=rate, window=64).run())
    connection = await asyncpg.connect(dsn)  # polled here: reading the peer's file would stall the loop
    while await connection.fetchval("SELECT count(*) FROM messages WHERE state = 'done'") < 10 * rate:
        await asyncio.sleep(0.5)
    await connection.close()
    await asyncio.sleep(0.5)  # the last answers reach the peer
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    peer.stop()
    latencies = sorted(line["latency_ms"] for line in peer.receipts())
    centiles = statistics.quantiles(latencies, n=100)
    print(f"receipt to visible status at {rate:,} receipts/s: p50 {centiles[49]:.0f} ms, "
          f"p99 {centiles[98]:.0f} ms, max {latencies[-1]:.0f} ms")
    await store.close()


if __name__ == "__main__":
    os.environ.setdefault("ECOSMS_LOG_LEVEL", "warning")
    asyncio.run(main())
