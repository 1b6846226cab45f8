"""A soak (issue 19, item 9), printed; run by hand from the repository:

    .venv/bin/python -m bench.soak [--minutes 10]

One `ecosms-gw run` on a durable PostgreSQL of its own, one link to the node-smpp peer
(receipts on, tps 200, window 20, in_doubt = "unknown"), and every channel at once, at a
moderate rate: a mail of 10 numbers every second (SMTP), a file of 10 numbers every 5 s
(FTP), and 5 single-SMS calls a second (HTTP API). Every 2 minutes the SMSC is killed
(SIGKILL) and started again 5 s later on the same port; halfway, PostgreSQL is
restarted (immediate). Each number is used once, so that the SMSC's record tells what
reached it.

Printed at the end (after the load, once every accepted message is settled, or 3 min):
- accepted: the messages a client was told were accepted (250, a report in done/, 201);
- lost: accepted, never at the SMSC and not in doubt (must be 0);
- duplicates: numbers the SMSC got twice (at most the in-doubt count; with "unknown": 0);
- in doubt: written to the SMSC, no answer before the link or the daemon went (`no`);
- refused for our faults: SMTP 451, FTP files left for the next scan, HTTP 503;
- the daemon's RSS: first, highest, last, and its trend over the second half (MB/min).
"""

from __future__ import annotations

import argparse
import asyncio
import ftplib
import io
import itertools
import signal
import smtplib
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from bench.store import add_account, new_database
from tests.support.daemon import COMMAND, environment, write_config
from tests.support.postgres import Cluster, server
from tests.support.smsc import Peer

PER_MAIL = 10
PER_FILE = 10
KILL_EVERY_S = 120.0
SECRET = "soak-secret"


class Load:
    """The three channels in threads, each number once; what each client was told."""

    def __init__(self, env: dict[str, str]) -> None:
        self.smtp = _port(env["ECOSMS_SMTP_LISTEN"])
        self.ftp = _port(env["ECOSMS_FTP_LISTEN"])
        self.http = f"http://{env['ECOSMS_HTTP_LISTEN']}"
        self.ftp_root = Path(env["ECOSMS_FTP_ROOT"])
        self.numbers = itertools.count()
        self.lock = threading.Lock()
        self.accepted: list[str] = []  # numbers
        self.ours: Counter[str] = Counter()  # refusals for our faults, by channel
        self.files: dict[str, list[str]] = {}  # FTP file name -> its numbers
        self.stopping = threading.Event()

    def next_numbers(self, count: int) -> list[str]:
        with self.lock:
            return [f"336{next(self.numbers):08d}" for _ in range(count)]

    def mails(self) -> None:
        while not self.stopping.wait(1.0):
            numbers = self.next_numbers(PER_MAIL)
            body = "U-SOAK\nT-soak by mail\n" + "".join(f"#-{n}\n" for n in numbers)
            try:
                with smtplib.SMTP("127.0.0.1", self.smtp, timeout=30) as client:
                    client.sendmail("soak@example.com", ["sms@localhost"], f"Subject: soak\n\n{body}".encode())
                self.accepted += numbers
            except smtplib.SMTPResponseException as error:
                self.ours[f"smtp {error.smtp_code}"] += 1
            except (OSError, smtplib.SMTPException):
                self.ours["smtp connection"] += 1

    def uploads(self) -> None:
        for n in itertools.count():
            if self.stopping.wait(5.0):
                return
            numbers = self.next_numbers(PER_FILE)
            body = "U-SOAK\nT-soak by file\n" + "".join(f"#-{n}\n" for n in numbers)
            try:
                with ftplib.FTP() as client:
                    client.connect("127.0.0.1", self.ftp, timeout=30)
                    client.login("SOAK", SECRET)
                    client.storbinary(f"STOR soak-{n}.txt", io.BytesIO(body.encode()))
                self.files[f"soak-{n}.txt"] = numbers
            except (OSError, ftplib.Error):
                self.ours["ftp upload"] += 1

    def filed(self) -> None:
        """Files with a report in done/ were accepted; those still waiting were our fault
        of the moment (and are retried by the scan)."""
        done = self.ftp_root / "SOAK" / "done"
        for name, numbers in self.files.items():
            if (done / f"{name}.report.json").exists():
                self.accepted += numbers
            else:
                self.ours["ftp not yet filed"] += 1

    async def calls(self) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(self.http + "/token", data={
                    "client_id": "SOAK", "client_secret": SECRET, "grant_type": "client_credentials"}) as answer:
                token = (await answer.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            while not self.stopping.is_set():
                await asyncio.sleep(0.2)
                [number] = self.next_numbers(1)
                try:
                    async with session.post(self.http + "/rest/sms", headers=headers, json={
                            "text": "soak by API", "contacts": [{"recipient": "+" + number}]}) as answer:
                        if answer.status == 201:
                            self.accepted.append(number)
                        else:
                            self.ours[f"http {answer.status}"] += 1
                except aiohttp.ClientError:
                    self.ours["http connection"] += 1


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def faults(peer: Peer, cluster: Cluster, minutes: float, daemon: subprocess.Popen[bytes],
                 samples: list[tuple[float, float]]) -> None:
    """The SMSC killed every 2 minutes, PostgreSQL restarted halfway, RSS every 10 s."""
    started = time.monotonic()
    next_kill, restarted = KILL_EVERY_S, False
    while (elapsed := time.monotonic() - started) < minutes * 60:
        await asyncio.sleep(10)
        samples.append((elapsed / 60, rss_mb(daemon.pid)))
        if elapsed >= next_kill:
            peer.stop(signal.SIGKILL)
            await asyncio.sleep(5)
            peer.start()
            next_kill += KILL_EVERY_S
            print(f"  {elapsed / 60:4.1f} min: SMSC killed, back 5 s later", flush=True)
        if not restarted and elapsed >= minutes * 30:
            await asyncio.to_thread(cluster.stop, "immediate")
            await asyncio.sleep(5)
            await asyncio.to_thread(cluster.start, True)
            restarted = True
            print(f"  {elapsed / 60:4.1f} min: PostgreSQL restarted (immediate, 5 s down)", flush=True)


async def settled(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = await asyncpg.connect(dsn)
            waiting = await connection.fetchval(
                "SELECT count(*) FROM messages WHERE state NOT IN ('submitted', 'done', 'canceled')")
            await connection.close()
            if waiting == 0:
                return
        except OSError:
            pass
        await asyncio.sleep(2)


async def soak(minutes: float) -> None:
    with server(durable=True) as (admin_dsn, cluster), tempfile.TemporaryDirectory(prefix="soak-") as folder:
        assert cluster is not None, "the soak needs a server of its own (no ECOSMS_TEST_DSN)"
        dsn = await new_database(admin_dsn, "soak")
        peer = Peer(Path(folder), "--receipts", "--receipt-delay-ms", "2000")
        config = write_config(Path(folder), dsn, peer.port, tps=200, in_doubt="unknown", window=20)
        env = environment(ECOSMS_SMTP_MAX_MAILS_PER_MINUTE="1000")
        subprocess.run([COMMAND, "migrate", "--config", str(config)], env=env, check=True, capture_output=True)
        add_account(dsn, "SOAK", "--sender", "soak@example.com", "--ftp-password", SECRET, "--api-secret", SECRET,
                    "--international")
        daemon = subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = Load(env)
        samples: list[tuple[float, float]] = []
        try:
            await asyncio.sleep(3)
            threads = [threading.Thread(target=target, daemon=True) for target in (load.mails, load.uploads)]
            for thread in threads:
                thread.start()
            calls = asyncio.create_task(load.calls())
            print(f"soak: {minutes:g} min of SMTP, FTP and HTTP; the SMSC killed every 2 min", flush=True)
            await faults(peer, cluster, minutes, daemon, samples)
            load.stopping.set()
            await calls
            for thread in threads:
                thread.join(60)
            await asyncio.sleep(35)  # files left by a fault are filed by the next scan (30 s)
            load.filed()
            await settled(dsn, 180)
            alive = daemon.poll() is None
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            peer.stop()
        connection = await asyncpg.connect(dsn)
        in_doubt = {row["recipient"].lstrip("+") for row in await connection.fetch(
            "SELECT recipient FROM messages WHERE code = 'in_doubt'")}
        await connection.close()
        report(load, peer, in_doubt, samples, alive)  # the peer's record is in the folder


def report(load: Load, peer: Peer, in_doubt: set[str], samples: list[tuple[float, float]], alive: bool) -> None:
    reached = Counter(pdu["destination"] for pdu in peer.received())
    accepted = set(load.accepted)
    lost = accepted - reached.keys() - in_doubt
    duplicates = sum(count - 1 for count in reached.values() if count > 1)
    half = [sample for sample in samples if sample[0] >= samples[-1][0] / 2]
    trend = statistics.linear_regression([m for m, _ in half], [r for _, r in half]).slope if len(half) > 1 else 0.0
    print(f"daemon alive through it all: {alive}")
    print(f"accepted: {len(accepted):,} messages; at the SMSC: {len(reached):,}")
    print(f"lost: {len(lost)}" + (f" (e.g. {sorted(lost)[:5]})" if lost else ""))
    print(f"duplicates: {duplicates}; in doubt: {len(in_doubt)}")
    print("refused for our faults: " + (", ".join(f"{k} x{v}" for k, v in sorted(load.ours.items())) or "none"))
    print(f"RSS: first {samples[0][1]:.0f} MB, highest {max(r for _, r in samples):.0f} MB, "
          f"last {samples[-1][1]:.0f} MB; trend over the second half {trend:+.2f} MB/min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    asyncio.run(soak(parser.parse_args().minutes))


if __name__ == "__main__":
    main()
