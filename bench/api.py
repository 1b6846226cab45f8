"""Figures of the HTTP API (issue 8), printed; run by hand from the repository:

    .venv/bin/python -m bench.api

`ecosms-gw run` on a durable PostgreSQL with a production-sized cache (shared_buffers
1 GB) holding 1,000,000 messages (500 mailings of 2,000, each written together as the gateway writes
them). The load comes from this
process over real HTTP:
1. `GET /rest/status?mailingId=` of a 2,000-message mailing (all 2,000 statuses), at a
   steady 50, 100, 150 and 200 requests/s for 10 s each (open loop: a slow answer does
   not slow the callers): p50, p99 and max latency; then 200 requests/s again while one
   of its messages changes every 0.1 s (each change makes the next read write the
   statuses again instead of answering from the status cache);
2. `POST /rest/mailing` with 200 contacts, 8 callers at once for 15 s: requests/s.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time

import aiohttp

from bench.store import fresh_store
from ecosms_gw.core.accounts import Account, hash_secret
from tests.support.daemon import Daemon, environment
from tests.support.net import free_port
from tests.support.postgres import server

MAILINGS, PER_MAILING = 500, 2000
RATES, SECONDS = (50, 100, 150, 200), 10
SECRET = "bench-secret"


async def fill(admin_dsn: str) -> str:
    store, dsn = await fresh_store(admin_dsn, "bench_http")
    account = await store.accounts.add(Account(id=None, code="B", api_secret=hash_secret(SECRET),
                                              international=True))
    await store.close()
    import asyncpg  # noqa: PLC0415
    connection = await asyncpg.connect(dsn)
    await connection.execute(
        "INSERT INTO mailings (account_id, source, messages, parts, name)"
        " SELECT $1, 'http', $2, $2, 'bench ' || g FROM generate_series(1, $3) g", account.id, PER_MAILING, MAILINGS)
    await connection.execute(
        "INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, state, status)"
        " SELECT g.id, $1, '+336' || lpad((g.id * $2 + s)::text, 8, '0'), 'bench text', 'gsm7', 1,"
        "        'done', (ARRAY['ok', 'ko', 'no', 'rep'])[1 + s % 4]"
        " FROM mailings g, generate_series(1, $2) s ORDER BY g.id, s", account.id, PER_MAILING)
    await connection.execute("VACUUM ANALYZE")
    await connection.close()
    return dsn


async def token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.post(base + "/token", data={"grant_type": "client_credentials", "client_id": "B",
                                                   "client_secret": SECRET}) as response:
        return (await response.json())["access_token"]


async def authorised(session: aiohttp.ClientSession, base: str, tries: int = 150) -> dict[str, str]:
    """The headers of account B's calls, once the daemon starting at `base` answers."""
    for _ in range(tries):
        try:
            return {"Authorization": "Bearer " + await token(session, base)}
        except (aiohttp.ClientError, KeyError):
            await asyncio.sleep(0.2)
    raise TimeoutError(f"no token from {base}")


async def status_reads(session: aiohttp.ClientSession, base: str, headers: dict[str, str], rate: int,
                       label: str = "") -> None:
    latencies: list[float] = []

    async def one() -> None:
        start = time.perf_counter()
        async with session.get(base + "/rest/status?mailingId=250", headers=headers) as response:
            body = await response.read()
        assert response.status == 200 and body.startswith(b'{"size": %d,' % PER_MAILING)
        latencies.append(time.perf_counter() - start)

    calls = []
    begin = time.perf_counter()
    for n in range(rate * SECONDS):
        await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        calls.append(asyncio.create_task(one()))
    await asyncio.gather(*calls)
    centiles = statistics.quantiles(latencies, n=100)
    print(f"GET /rest/status?mailingId= (2,000 statuses each), {rate} requests/s for {SECONDS} s{label}: "
          f"p50 {centiles[49] * 1000:.1f} ms, p99 {centiles[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")


async def changing(dsn: str) -> None:
    """One message of the polled mailing changes every 0.1 s, as receipts would change it."""
    import asyncpg  # noqa: PLC0415
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            await connection.execute("UPDATE messages SET updated_at = now() WHERE id = "
                                     "(SELECT min(id) FROM messages WHERE mailing_id = 250)")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def mailing_posts(session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
    done = 0
    stop = time.perf_counter() + 15

    async def caller(index: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < stop:
            n += 1
            contacts = [{"recipient": f"+33{7 + index % 2}{(index * 10_000_000 + n * 1000 + k) % 10**8:08d}",
                         "firstName": f"P{k}"} for k in range(200)]
            async with session.post(base + "/rest/mailing", headers=headers, json={
                    "text": "Hello #firstName#, bench", "name": f"post {index}-{n}", "contacts": contacts,
                    "date": "2099-01-01 00:00:00"}) as response:
                assert response.status == 201, await response.text()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(8)))
    print(f"POST /rest/mailing with 200 contacts, 8 callers: {done / (time.perf_counter() - start):.0f} requests/s "
          f"({done * 200 / (time.perf_counter() - start):,.0f} messages/s)")


async def main() -> None:
    with server(durable=True, settings="-c shared_buffers=1GB") as (admin_dsn, _):
        dsn = await fill(admin_dsn)
        port = free_port()
        daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}",
                                        ECOSMS_LOG_LEVEL="warning"))
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
                headers = await authorised(session, base)
                for rate in RATES:
                    await status_reads(session, base, headers, rate)
                changes = asyncio.create_task(changing(dsn))
                await status_reads(session, base, headers, 200, ", one message changing every 0.1 s")
                changes.cancel()
                await mailing_posts(session, base, headers)
        finally:
            daemon.process.send_signal(signal.SIGTERM)
            daemon.finish(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
