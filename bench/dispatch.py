"""Figures of SMPP dispatch (issue 6), printed; run by hand from the repository:

    .venv/bin/python -m bench.dispatch

One dispatcher (tps unlimited, window 64) against the node-smpp peer on this machine, on
a throw-away PostgreSQL with default durability: 20,000 queued messages (one part each,
plus 2,000 of three parts), timed from the first claim to the last message `on`.
Also the rate test of the issue: tps 50 for 20 s, measured at the peer.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.store import fresh_store
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.postgres import server
from tests.support.smsc import Peer, busiest_second, dispatcher_for


async def fresh(admin_dsn: str, name: str) -> tuple[Store, str, Account]:
    store, dsn = await fresh_store(admin_dsn, name)
    return store, dsn, await store.accounts.add(Account(id=None, code="B", international=True))


async def enqueue(store: Store, account: Account, count: int, text: str) -> None:
    for start in range(0, count, 2000):
        body = "U-B\n" + "".join(f"T-{text} {n}\n#-336{n:08d}\n" for n in range(start, min(count, start + 2000)))
        await store.mailings.enqueue(Submission(account.id, "http"),
                                     compose(parse_all([body]), AccountRules(max_messages=2000)), {})


async def waiting(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    count = await connection.fetchval("SELECT count(*) FROM messages WHERE state <> 'submitted'")
    await connection.close()
    return count


async def bench_throughput(admin_dsn: str, folder: Path) -> None:
    store, dsn, account = await fresh(admin_dsn, "bench_dispatch")
    await enqueue(store, account, 20_000, "short")
    await enqueue(store, account, 2_000, "long " + "x" * 400)  # three parts each
    parts = 20_000 + 2_000 * 3
    peer = Peer(folder)
    dispatcher = dispatcher_for(peer.port, store, tps=1_000_000, window=64)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    task = asyncio.create_task(dispatcher.run())
    while await waiting(dsn):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    peer.stop()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    print(f"dispatch, window 64, tps unlimited: {parts / elapsed:,.0f} parts/s, "
          f"{22_000 / elapsed:,.0f} messages/s queued-to-on ({parts} parts in {elapsed:.1f} s); "
          f"gateway CPU {cpu / parts * 1000 * 1000:.0f} ms per 1,000 parts")
    await store.close()


async def bench_rate(admin_dsn: str, folder: Path) -> None:
    store, dsn, account = await fresh(admin_dsn, "bench_rate")
    await enqueue(store, account, 1000, "rate")
    peer = Peer(folder)
    task = asyncio.create_task(dispatcher_for(peer.port, store, tps=50, window=10).run())
    await asyncio.sleep(21)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    peer.stop()
    arrivals = sorted(pdu["at"] / 1000 for pdu in peer.received())
    arrivals = [t for t in arrivals if t - arrivals[0] < 20]
    busiest = busiest_second(arrivals)
    mean = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    print(f"tps 50 for 20 s at the peer: {len(arrivals)} submits, busiest one-second window "
          f"{busiest}, mean {mean:.2f}/s")
    await store.close()


async def main() -> None:
    with server(durable=True) as (admin_dsn, _), tempfile.TemporaryDirectory() as folder:
        await bench_throughput(admin_dsn, Path(folder))
        await bench_rate(admin_dsn, Path(folder))


if __name__ == "__main__":
    os.environ.setdefault("ECOSMS_LOG_LEVEL", "warning")
    asyncio.run(main())
