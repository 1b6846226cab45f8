"""Figures of SMTP ingestion (issue 4), printed; run by hand from the repository:

    .venv/bin/python -m bench.smtp

The daemon runs as a subprocess on a throw-away PostgreSQL with default durability:
1. 2,000-recipient mails (two fields each): time from the end of DATA to the 250 reply,
   p50 and p99 over 100 mails, one client;
2. small mails (10 recipients) from 20 parallel clients for 10 s: mails/s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from bench.core import personalised_body
from bench.store import add_account, new_database
from tests.support.net import free_port
from tests.support.postgres import server


def mail(body: str, number: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "office@acme.example", "sms@localhost", "bench"
    message["Message-ID"] = f"<bench-{number}-{time.time_ns()}@acme.example>"
    message.set_content(body)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def start_daemon(dsn: str, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")} | {
        "ECOSMS_DATABASE_DSN": dsn, "ECOSMS_LOG_FORMAT": "json", "ECOSMS_LOG_LEVEL": "warning",
        "ECOSMS_SMTP_LISTEN": f"127.0.0.1:{port}", "ECOSMS_SMTP_MAX_MAILS_PER_MINUTE": "1000000",
        "ECOSMS_SMTP_MAX_CONNECTIONS_PER_IP": "100"}
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "ecosms-gw"), "run"], env=env,
                              stdout=subprocess.DEVNULL, text=True)
    for _ in range(100):
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
            return daemon
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("daemon did not listen")


def timed_data(client: smtplib.SMTP, data: bytes) -> float:
    """Seconds from the end of DATA (the final dot sent) to the reply."""
    reply = client.mail("office@acme.example")
    assert reply[0] == 250, reply
    assert client.rcpt("sms@localhost")[0] == 250
    code, text = client.docmd("DATA")
    assert code == 354, (code, text)
    client.send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    start = time.perf_counter()
    code, text = client.getreply()
    elapsed = time.perf_counter() - start
    assert code == 250, text
    return elapsed


def bench_large(port: int) -> None:
    body = personalised_body(2000).replace("U-ACME01", "U-ACME").replace("D-2026-12-24T09:00\n", "")
    latencies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        for number in range(100):
            latencies.append(timed_data(client, mail(body, number)))
    latencies.sort()
    print(f"2,000-recipient mail, end of DATA to 250, 100 mails: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p99 {latencies[98] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")


def bench_small(port: int, clients: int = 20, seconds: float = 10.0) -> None:
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as connection:
            connection.ehlo()
            number = 0
            while time.monotonic() < deadline:
                body = "U-ACME\nT-Your code is #1\n" + "".join(
                    f"#-336{index:02d}{number % 10000:04d}{r:02d};{r}\n" for r in range(10))
                data = mail(body, index * 1_000_000 + number)
                connection.mail("office@acme.example")
                connection.rcpt("sms@localhost")
                code, text = connection.data(data)
                assert code == 250, text
                counts[index] += 1
                number += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    print(f"10-recipient mails from {clients} parallel clients for {seconds:.0f} s: "
          f"{sum(counts) / elapsed:,.0f} mails/s ({sum(counts)} mails)")


async def prepare(admin_dsn: str) -> str:
    dsn = await new_database(admin_dsn, "bench_smtp")
    add_account(dsn, "ACME", "--sender", "office@acme.example", "--international", "--max-messages", "5000")
    return dsn


def main() -> None:
    with server(durable=True) as (admin_dsn, _):
        dsn = asyncio.run(prepare(admin_dsn))
        port = free_port()
        daemon = start_daemon(dsn, port)
        try:
            bench_large(port)
            bench_small(port)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)


if __name__ == "__main__":
    main()
