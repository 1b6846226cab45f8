"""Scale (issue 19, item 6), printed; run by hand from the repository:

    .venv/bin/python -m bench.scale

One `ecosms-gw run` on a durable PostgreSQL (shared_buffers 1 GB) holding 1,000,000
queued messages (500 mailings of 2,000, due now), its link to a node-smpp peer that is
down at first. Printed:
1. the daemon's RSS with the million queued and the link down, while
   `GET /rest/status?mailingId=` (2,000 statuses a read) comes at 200 requests/s for 10 s:
   p50 and p99 (the target: p99 under 50 ms);
2. 5,000 SMTP connections opened at once from one address: how many got the greeting and
   how many `421` (at most `smtp.max_connections_per_ip` are admitted), the RSS at the
   peak, and whether a mail from another address (127.0.0.2) still gets its 250;
3. the peer started: the RSS while the million is sent at 1,000 SMS/s for 60 s.
The target for every RSS: under 200 MB.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import smtplib
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from bench.api import PER_MAILING, SECRET, authorised, status_reads
from bench.soak import rss_mb
from bench.store import add_account, new_database
from tests.support.daemon import COMMAND, environment, write_config
from tests.support.net import free_port
from tests.support.postgres import server
from tests.support.smsc import Peer

MAILINGS = 500
CONNECTIONS = 5000


async def fill(admin_dsn: str) -> str:
    dsn = await new_database(admin_dsn, "bench_scale")
    subprocess.run([COMMAND, "migrate"], env=environment(ECOSMS_DATABASE_DSN=dsn), check=True, capture_output=True)
    add_account(dsn, "B", "--api-secret", SECRET, "--sender", "bench@example.com", "--international")
    connection = await asyncpg.connect(dsn)
    account = await connection.fetchval("SELECT id FROM accounts WHERE code = 'B'")
    await connection.execute(
        "INSERT INTO mailings (account_id, source, messages, parts, name)"
        " SELECT $1, 'http', $2, $2, 'scale ' || g FROM generate_series(1, $3) g", account, PER_MAILING, MAILINGS)
    await connection.execute(
        "INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments)"
        " SELECT g.id, $1, '+336' || lpad((g.id * $2 + s)::text, 8, '0'), 'scale text', 'gsm7', 1"
        " FROM mailings g, generate_series(1, $2) s ORDER BY g.id, s", account, PER_MAILING)
    await connection.execute("INSERT INTO queues (account_id, priority, next_due) VALUES ($1, 1, now())"
                             " ON CONFLICT DO NOTHING", account)
    await connection.execute("VACUUM ANALYZE")
    await connection.close()
    return dsn


async def flood(port: int) -> tuple[Counter[str], list[asyncio.StreamWriter]]:
    """CONNECTIONS at once from 127.0.0.1, each held open until all have their answer."""
    writers: list[asyncio.StreamWriter] = []

    async def one() -> str:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            writers.append(writer)
            line = await asyncio.wait_for(reader.readline(), 30)
            return line[:3].decode() or "closed"
        except (OSError, TimeoutError) as error:
            return type(error).__name__

    answers = Counter(await asyncio.gather(*(one() for _ in range(CONNECTIONS))))
    return answers, writers


def legitimate_mail(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0)) as client:
        client.ehlo()
        client.mail("bench@example.com")
        client.rcpt("sms@localhost")
        return client.data(b"Subject: x\r\n\r\nU-B\r\nT-through the flood\r\n#-33799999999\r\n")[0]


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, CONNECTIONS * 2 + 100)), hard))
    with server(durable=True, settings="-c shared_buffers=1GB") as (admin_dsn, _), \
            tempfile.TemporaryDirectory(prefix="scale-") as folder:
        started = time.perf_counter()
        dsn = await fill(admin_dsn)
        print(f"1,000,000 queued messages written in {time.perf_counter() - started:.0f} s", flush=True)
        peer = Peer(Path(folder))
        peer.stop()  # down at first: the million waits
        http = free_port()
        env = environment(ECOSMS_LOG_LEVEL="warning", ECOSMS_HTTP_LISTEN=f"127.0.0.1:{http}")
        smtp = int(env["ECOSMS_SMTP_LISTEN"].rsplit(":", 1)[1])
        config = write_config(Path(folder), dsn, peer.port, tps=1000, window=64)
        daemon = subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{http}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
                headers = await authorised(session, base)
                await asyncio.sleep(30)  # the reaper's first turns, the monitor's samples
                print(f"1. RSS with 1,000,000 queued, link down: {rss_mb(daemon.pid):.0f} MB", flush=True)
                await status_reads(session, base, headers, 200, " with 1,000,000 queued")
            answers, writers = await flood(smtp)
            peak = rss_mb(daemon.pid)
            legit = await asyncio.to_thread(legitimate_mail, smtp)
            for writer in writers:
                writer.close()
            print(f"2. {CONNECTIONS:,} SMTP connections at once: answers {dict(answers)}; RSS {peak:.0f} MB; "
                  f"a mail from 127.0.0.2 meanwhile: {legit}", flush=True)
            peer.start()
            highest = 0.0
            begin = time.perf_counter()
            while time.perf_counter() - begin < 60:
                await asyncio.sleep(2)
                highest = max(highest, rss_mb(daemon.pid))
            sent = len(peer.received())
            print(f"3. sending from the million: {sent:,} in 60 s ({sent / 60:,.0f}/s); highest RSS {highest:.0f} MB; "
                  f"now {rss_mb(daemon.pid):.0f} MB", flush=True)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            peer.stop()


if __name__ == "__main__":
    asyncio.run(main())
