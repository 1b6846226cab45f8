"""Figures of the FTP drop (issue 5), printed; run by hand from the repository:

    .venv/bin/python -m bench.ftp

The daemon runs as a subprocess on a throw-away PostgreSQL with default durability:
1. files of 2,000 recipients (two fields each): from the end of the upload (the 226
   reply) to the report written, p50 and max over 20 files;
2. small files (10 recipients) from 10 parallel uploaders (10 accounts): files/s from the
   first upload to the last report.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.core import personalised_body
from bench.store import add_account, new_database
from tests.support.net import free_port
from tests.support.postgres import server

COMMAND = str(Path(sys.executable).parent / "ecosms-gw")
UPLOADERS = 10


def wait_for(path: Path, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.001)
    return time.perf_counter()


def connect(port: int, user: str) -> ftplib.FTP:
    client = ftplib.FTP()
    client.connect("127.0.0.1", port, timeout=60)
    client.login(user, "pw")
    return client


def bench_large(port: int, root: Path) -> None:
    body = personalised_body(2000).replace("U-ACME01", "U-U0").replace("D-2026-12-24T09:00\n", "")
    latencies = []
    with connect(port, "U0") as client:
        for n in range(20):
            data = body.replace("Bonjour", f"Bonjour{n}").encode()
            client.storbinary(f"STOR big{n}.txt", io.BytesIO(data))
            done = time.perf_counter()
            latencies.append(wait_for(root / "U0" / "done" / f"big{n}.txt.report.json") - done)
    print(f"2,000-recipient files, 226 to report written, 20 files: "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


def bench_small(port: int, root: Path, files: int = 30) -> None:
    def uploader(n: int) -> None:
        with connect(port, f"U{n}") as client:
            for f in range(files):
                body = f"U-U{n}\nT-Code #1\n" + "".join(f"#-336{n:02d}{f:02d}{r:04d};{r}\n" for r in range(10))
                client.storbinary(f"STOR small{f}.txt", io.BytesIO(body.encode()))

    start = time.perf_counter()
    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = max(wait_for(root / f"U{n}" / "done" / f"small{f}.txt.report.json")
              for n in range(UPLOADERS) for f in range(files))
    total = UPLOADERS * files
    print(f"10-recipient files from {UPLOADERS} parallel uploaders: {total / (end - start):,.0f} files/s "
          f"({total} files in {end - start:.1f} s)")


def main() -> None:
    with server(durable=True) as (admin_dsn, _), tempfile.TemporaryDirectory() as folder:
        dsn = asyncio.run(new_database(admin_dsn, "bench_ftp"))
        for n in range(UPLOADERS):
            add_account(dsn, f"U{n}", "--ftp-password", "pw", "--international", "--max-messages", "5000")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")} | {
            "ECOSMS_DATABASE_DSN": dsn}
        port, passive = free_port(), min(free_port(), 65000)
        env |= {"ECOSMS_LOG_FORMAT": "json", "ECOSMS_LOG_LEVEL": "warning",
                "ECOSMS_FTP_LISTEN": f"127.0.0.1:{port}", "ECOSMS_FTP_ROOT": folder,
                "ECOSMS_FTP_PASSIVE_PORTS": f"{passive}-{passive + 400}",
                "ECOSMS_FTP_MAX_FILES_PER_MINUTE": "100000", "ECOSMS_SMTP_LISTEN": f"127.0.0.1:{free_port()}"}
        daemon = subprocess.Popen([COMMAND, "run"], env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    ftplib.FTP().connect("127.0.0.1", port, timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            bench_large(port, Path(folder))
            bench_small(port, Path(folder))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)


if __name__ == "__main__":
    main()
