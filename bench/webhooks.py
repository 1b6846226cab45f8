"""Figures of signed webhooks (issue 17), printed; run by hand from the repository:

    .venv/bin/python -m bench.webhooks [-n 10000] [--accounts 1]

The daemon (a subprocess, durable PostgreSQL) sends n messages to node-smpp at 1,000/s
(the link's tps), which sends each receipt after a random delay of up to 200 ms: receipts
come in at about 1,000/s. The messages belong to `--accounts` accounts, in mailings of up to
100 taken in turn; every account's webhook is a local aiohttp receiver that checks each
signature. Printed: events delivered per second (from the first to the last POST,
2 events per message: `on`, then `ok`), and the lag from the status change (its commit
time in status_events) to the POST that carried it: p50 and p99.
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

import asyncpg
from aiohttp import web

from bench.dispatch import enqueue
from bench.store import fresh_store
from ecosms_gw.core import webhook
from ecosms_gw.core.accounts import Account
from tests.support.daemon import environment
from tests.support.net import free_port
from tests.support.postgres import server
from tests.support.smsc import Peer

KEY = "bench-key"


async def main(count: int, accounts: int) -> None:
    arrivals: list[tuple[float, list[dict]]] = []
    refused = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal refused
        raw = await request.read()
        if not webhook.verify(KEY, request.headers["X-Ecosms-Signature"], raw, time.time()):
            refused += 1
            return web.Response(status=401)
        arrivals.append((time.time(), (await request.json())["events"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    with server(durable=True) as (admin, _), tempfile.TemporaryDirectory() as folder:
        store, dsn = await fresh_store(admin, "bench_webhooks")
        owners = [await store.accounts.add(Account(id=None, code=f"B{n}", international=True,
                                                   webhook_url=f"http://127.0.0.1:{port}/events", webhook_secret=KEY))
                  for n in range(accounts)]
        peer = Peer(Path(folder), "--receipts", "--receipt-delay-ms", "200")
        config = Path(folder) / "gw.toml"
        config.write_text(f'[database]\ndsn = "{dsn}"\n[[smsc]]\nname = "main"\nhost = "127.0.0.1"\n'
                          f"port = {peer.port}\ntps = 1000\nwindow = 64\n")
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "ecosms-gw"), "run", "--config", str(config)],
                                  env=environment(ECOSMS_PING_ALLOW_PRIVATE="true", ECOSMS_LOG_LEVEL="warning"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(3)
            size = max(1, min(100, count // accounts))  # every account has messages
            for start in range(0, count, size):
                await enqueue(store, owners[start // size % accounts], min(size, count - start), "webhook")
            deadline = time.monotonic() + 120 + count / 200
            while sum(1 for _, events in arrivals for e in events if e.get("status") == "ok") < count:
                assert time.monotonic() < deadline, "not every event arrived"
                await asyncio.sleep(0.2)
        finally:
            daemon.terminate()
            daemon.wait(30)
            peer.stop()
        connection = await asyncpg.connect(dsn)
        changed = {(row["message_id"], row["status"]): row["created_at"].timestamp()
                   for row in await connection.fetch("SELECT message_id, status, created_at FROM status_events")}
        await connection.close()
        await store.close()
    await runner.cleanup()
    lags = sorted(at - changed[(e["smsId"], e["status"])] for at, events in arrivals for e in events
                  if e["type"] == "status")
    first, last = arrivals[0][0], arrivals[-1][0]
    print(f"webhooks, {count:,} messages of {accounts} accounts with receipts at ~1,000/s: {len(lags):,} status "
          f"events in "
          f"{len(arrivals):,} POSTs, {len(lags) / (last - first):,.0f} events/s delivered; lag from the status "
          f"change to its POST p50 {statistics.median(lags) * 1000:.0f} ms, "
          f"p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms; {refused} signatures refused")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1, help="accounts with a webhook, sharing the messages")
    os.environ.setdefault("ECOSMS_LOG_LEVEL", "warning")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.n, arguments.accounts))
