"""ecosms-gw side by side with Kannel (issue 14), printed; run by hand from the repository:

    .venv/bin/python -m bench.compare [--runs 3] [-n 20000] [--loads single,batch,receipts,smtp]
                                      [--gateway NAME=PATH/TO/ecosms-gw ...] [--no-kannel]

The four loads of `../shared/anchors/README.md`, each against a fresh node-smpp peer (the
SMSC, answering at once; with receipts for the receipts load):
- single: 1 number per `POST /rest/sms`, 64 requests in flight;
- batch: 100 numbers per `POST /rest/mailing`, 8 in flight;
- receipts: as single, timed until every receipt is acknowledged (the message is final);
- smtp: 10 mails of 2,000 numbers, sent at once by 10 clients (Kannel has no SMTP: its
  ratio is to Kannel's batch rate).

HTTP loads come from the anchors' own load generator (`httpload.py`), the same one that
loads Kannel through `../shared/anchors/kannel/bench.sh`. Each ecosms-gw daemon runs on a
fresh database of one durable PostgreSQL (fsync on), with one SMSC link: tps unlimited,
window 64. Time runs from the first request until the SMSC has every message (or, with
receipts, until it has every receipt acknowledged); CPU is read from /proc, the daemon's
and PostgreSQL's (every backend) apart.

Each run takes every gateway in turn (Kannel first, where it is installed, then each
`--gateway`, by default this checkout's), so that they share the machine's weather; the
table gives medians over the runs. Several `--gateway` compare versions of ecosms-gw, e.g.
`--gateway before=/tmp/before/.venv/bin/ecosms-gw --gateway after=.venv/bin/ecosms-gw`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.smtp import mail
from bench.store import new_database
from tests.support.net import free_port
from tests.support.postgres import Cluster, server
from tests.support.smsc import Peer

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "kannel"
LOADS = {"single": (1, 64, False), "batch": (100, 8, False), "receipts": (1, 64, True), "smtp": (2000, 10, False)}
SECRET = "compare-secret"
RECEIPTS = ("--receipts", "--same-receipt-ids")  # Kannel matches receipts by the id string as given
HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # the gateway's CPU-s
    database_cpu: float = 0.0


def ticks(pid: int, children: bool = False) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15 if children else 13])


def postgres_cpu(cluster: Cluster) -> float:
    """The postmaster, its reaped backends and its living ones, in CPU-s."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    total = ticks(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                total += int(stat[11]) + int(stat[12])
    return total / HZ


class Arrivals:
    """Counts what the peer recorded (accepted submit_sm, acknowledged receipts), reading
    only what was added since the last look."""

    def __init__(self, peer: Peer) -> None:
        self.peer, self.offset, self.submits, self.receipts = peer, 0, 0, 0

    def update(self) -> None:
        if not self.peer.record.exists():
            return
        with self.peer.record.open("rb") as record:
            record.seek(self.offset)
            data = record.read()
        data = data[:data.rfind(b"\n") + 1]
        self.offset += len(data)
        self.submits += data.count(b'"destination"')
        self.receipts += data.count(b'"receipt"')

    def wait(self, count: int, receipts: bool, timeout: float = 600) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.update()
            if (self.receipts if receipts else self.submits) >= count:
                return time.time()
            time.sleep(0.02)
        raise RuntimeError(f"not all arrived: {self.submits} submits, {self.receipts} receipts of {count}")


def http_load(url: str, n: int, batch: int, concurrency: int, base: str) -> float:
    """The anchors' load generator against our API; the time of its first request."""
    command = [sys.executable, str(ANCHORS / "httpload.py"), "--url", url, "--json-contacts",
               "--token-url", base + "/token", "--client-id", "B", "--client-secret", SECRET,
               "-n", str(n), "-c", str(concurrency), "--batch", str(batch), "--to-prefix", "336"]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    if set(report["codes"]) != {"201"} or report["errors"]:
        raise RuntimeError(f"refused: {report}")
    return float(report["t_first_req"])


def smtp_load(port: int, n: int, per_mail: int) -> float:
    mails = [mail("U-B\nT-Hello from the comparison\n" + "".join(
        f"#-336{k:08d}\n" for k in range(start, min(n, start + per_mail))), start) for start in range(0, n, per_mail)]

    def send(data: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.sendmail("office@acme.example", ["sms@localhost"], data)

    threads = [threading.Thread(target=send, args=(data,)) for data in mails]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return start


def ours(command: str, load: str, n: int, admin_dsn: str, cluster: Cluster, folder: Path, label: str) -> Run:
    batch, concurrency, receipts = LOADS[load]
    dsn = asyncio.run(new_database(admin_dsn, f"cmp_{time.time_ns()}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")} | {"ECOSMS_DATABASE_DSN": dsn}
    subprocess.run([command, "account", "add", "B", "--api-secret", SECRET, "--international", "--sender",
                    "office@acme.example", "--max-messages", str(max(batch, 2000))], env=env, check=True,
                   capture_output=True)
    peer = Peer(folder, *RECEIPTS if receipts else ())
    http, smtp = free_port(), free_port()
    config = folder / f"{label}.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[http]\nlisten = "127.0.0.1:{http}"\n'
                      f'[smtp]\nlisten = "127.0.0.1:{smtp}"\nmax_mails_per_minute = 100000\n'
                      f'[ftp]\nlisten = "127.0.0.1:{free_port()}"\nroot = "{folder / "ftp"}"\n'
                      f'[[smsc]]\nname = "peer"\nhost = "127.0.0.1"\nport = {peer.port}\ntps = 1000000\nwindow = 64\n')
    with (folder / f"{label}.log").open("w") as log:
        daemon = subprocess.Popen([command, "run", "--config", str(config)], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{http}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        arrivals = Arrivals(peer)
        cpu, database = ticks(daemon.pid) / HZ, postgres_cpu(cluster)
        if load == "smtp":
            start = smtp_load(smtp, n, batch)
        else:
            start = http_load(base + ("/rest/sms" if batch == 1 else "/rest/mailing"), n, batch, concurrency, base)
        end = arrivals.wait(n, receipts)
        return Run(end - start, ticks(daemon.pid) / HZ - cpu, postgres_cpu(cluster) - database)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        peer.stop()


def kannel(load: str, n: int, folder: Path) -> Run | None:
    batch, concurrency, receipts = LOADS[load]
    if load == "smtp" or not (shutil.which("bearerbox") or Path("/usr/sbin/bearerbox").exists()):
        return None
    peer = Peer(folder, *RECEIPTS if receipts else ())
    try:
        env = os.environ | {"SMSC_PORT": str(peer.port), "N": str(n), "C": str(concurrency), "BATCH": str(batch),
                            "DLR": "1" if receipts else "0", "PY": sys.executable}
        out = subprocess.run(["bash", str(ANCHORS / "bench.sh")], env=env, check=True, capture_output=True, text=True)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        return Run(float(report["seconds"]), float(report["cpu_s_per_1000"]) * n / 1000)
    finally:
        peer.stop()


def row(load: str, n: int, kannel_runs: list[Run], gateways: dict[str, list[Run]], batch_rate: float | None) -> str:
    def rate(runs: list[Run]) -> float:
        return n / statistics.median(r.seconds for r in runs)

    def per_1000(runs: list[Run], part: str) -> float:
        return statistics.median(getattr(r, part) for r in runs) / n * 1000

    receipts = LOADS[load][2]
    anchor = (n / rate(kannel_runs)) if receipts and kannel_runs else (rate(kannel_runs) if kannel_runs else batch_rate)
    cells = [load]
    cells.append(("-" if not kannel_runs else f"{n / rate(kannel_runs):.1f} s" if receipts else f"{rate(kannel_runs):,.0f}")
                 + (f" ({per_1000(kannel_runs, 'cpu'):.2f})" if kannel_runs else ""))
    for runs in gateways.values():
        shown = f"{n / rate(runs):.1f} s" if receipts else f"{rate(runs):,.0f}"
        ratio = "" if anchor is None else \
            f" x{(anchor / (n / rate(runs))) if receipts else rate(runs) / anchor:.2f}"
        cells.append(f"{shown}{ratio} ({per_1000(runs, 'cpu'):.2f} + {per_1000(runs, 'database_cpu'):.2f})")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loads", default=",".join(LOADS))
    parser.add_argument("--gateway", action="append", metavar="NAME=COMMAND")
    parser.add_argument("--no-kannel", action="store_true")
    args = parser.parse_args()
    gateways = dict(g.split("=", 1) for g in args.gateway or
                    [f"ecosms-gw={Path(sys.executable).parent / 'ecosms-gw'}"])
    loads = args.loads.split(",")
    results: dict[str, dict[str, list[Run]]] = {load: {"kannel": [], **{g: [] for g in gateways}} for load in loads}
    with server(durable=True) as (admin_dsn, cluster), tempfile.TemporaryDirectory(prefix="ecosms-compare-") as tmp:
        assert cluster is not None, "the comparison reads PostgreSQL's CPU: it needs its own cluster"
        folder = Path(tmp)
        for run in range(args.runs):
            for load in loads:
                if not args.no_kannel and (measured := kannel(load, args.n, folder)):
                    results[load]["kannel"].append(measured)
                    print(f"run {run + 1} {load} kannel: {measured}", file=sys.stderr, flush=True)
                for name, command in gateways.items():
                    measured = ours(command, load, args.n, admin_dsn, cluster, folder, f"{name}_{load}_{run}")
                    results[load][name].append(measured)
                    print(f"run {run + 1} {load} {name}: {measured}", file=sys.stderr, flush=True)
    print(f"\n{args.n:,} messages, median of {args.runs}; msg/s (receipts: seconds until all final), "
          "xRATIO to Kannel, (CPU-s per 1,000: gateway + PostgreSQL)")
    print(" | ".join(["load", "Kannel", *gateways]))
    batch_rate = None
    if "batch" in results and results["batch"]["kannel"]:
        batch_rate = args.n / statistics.median(r.seconds for r in results["batch"]["kannel"])
    for load in loads:
        named = {g: results[load][g] for g in gateways}
        print(row(load, args.n, results[load]["kannel"], named, batch_rate))


if __name__ == "__main__":
    main()
