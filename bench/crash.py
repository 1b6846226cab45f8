"""What a crash leaves in doubt (issue 12), printed; run by hand from the repository:

    .venv/bin/python -m bench.crash

Ten times: 5,000 messages sent at full speed (tps unlimited, window 64, in_doubt =
"unknown") by `ecosms-gw run` to the node-smpp peer, the daemon killed with SIGKILL at a
random moment, started again, and the send finished. Printed: messages in doubt (status
`no`, code `in_doubt`) per kill, their maximum and median, and duplicates at the peer
(there must be none). On a throw-away PostgreSQL with default durability.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import tempfile
from pathlib import Path

import asyncpg

from bench.dispatch import enqueue, fresh
from tests.support.daemon import daemon, wait_settled, write_config
from tests.support.postgres import server
from tests.support.smsc import Peer

KILLS = 10
MESSAGES = 5000
WINDOW = 64


async def one_kill(admin_dsn: str, folder: Path, round_: int) -> tuple[int, int, float]:
    store, dsn, account = await fresh(admin_dsn, f"bench_crash_{round_}")
    await enqueue(store, account, MESSAGES, "crash")
    await store.close()
    peer = Peer(folder)
    config = write_config(folder, dsn, peer.port, tps=1_000_000, in_doubt="unknown", window=WINDOW)
    first = daemon(config)
    at = random.uniform(0.1, 0.8)  # of the messages sent when the daemon dies
    while len(peer.received()) < at * MESSAGES:
        await asyncio.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = daemon(config)
    await wait_settled(dsn, timeout=300)
    second.send_signal(signal.SIGTERM)
    second.wait(20)
    peer.stop()
    destinations = [pdu["destination"] for pdu in peer.received()]
    connection = await asyncpg.connect(dsn)
    in_doubt = await connection.fetchval("SELECT count(*) FROM messages WHERE code = 'in_doubt'")
    await connection.close()
    return in_doubt, len(destinations) - len(set(destinations)), at


async def main() -> None:
    counts = []
    with server(durable=True) as (admin_dsn, _), tempfile.TemporaryDirectory() as folder:
        for round_ in range(KILLS):
            in_doubt, duplicates, at = await one_kill(admin_dsn, Path(folder), round_)
            counts.append(in_doubt)
            print(f"kill {round_ + 1} at {at:.0%} sent: {in_doubt} in doubt, {duplicates} duplicates")
    print(f"in doubt after {KILLS} SIGKILLs at full speed, window {WINDOW}: maximum {max(counts)}, "
          f"median {statistics.median(counts):g}")


if __name__ == "__main__":
    os.environ.setdefault("ECOSMS_LOG_LEVEL", "warning")
    asyncio.run(main())
