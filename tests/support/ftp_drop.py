"""The FTP drop on the test loop, real PostgreSQL behind it, and ftplib as the client."""

from __future__ import annotations

import asyncio
import dataclasses
import ftplib
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ecosms_gw.config import Config, DatabaseConfig, FtpConfig
from ecosms_gw.config_values import Address, PortRange
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.ingest import ftp
from ecosms_gw.ingest.inbox import FOLDERS, REPORT_SUFFIX, Inbox
from ecosms_gw.store import Store
from tests.support.mail import in_thread
from tests.support.net import free_port

BODY = "U-ACME\nT-Hello from FTP\n#-+33612345678\n#-+33612345679\n"


class Drop:
    """A running FTP drop on the test's loop, and ways to talk to it."""

    def __init__(self, config: Config, store: Store, inbox: Inbox) -> None:
        self.config, self.store, self.inbox = config, store, inbox
        self.port = config.ftp.listen.port
        self.root = Path(config.ftp.root)

    def client(self, user: str = "ACME", password: str = "ftp-pass", tls: bool | None = None) -> ftplib.FTP:
        tls = self.config.ftp.require_tls if tls is None else tls
        client = ftplib.FTP_TLS(timeout=30) if tls else ftplib.FTP(timeout=30)
        client.connect("127.0.0.1", self.port)
        client.login(user, password)
        if tls:
            client.prot_p()
        return client

    def upload(self, name: str, data: bytes | str, user: str = "ACME") -> None:
        with self.client(user) as client:
            client.storbinary(f"STOR {name}", io.BytesIO(data.encode() if isinstance(data, str) else data))

    def report(self, name: str, user: str = "ACME", password: str = "ftp-pass",
               timeout: float = 20) -> tuple[str, dict]:
        """Wait for the report of `name` and fetch it by FTP: (folder, document)."""
        deadline = time.monotonic() + timeout
        with self.client(user, password) as client:
            while time.monotonic() < deadline:
                for folder in FOLDERS:
                    if f"{name}{REPORT_SUFFIX}" in {n.rpartition("/")[2] for n in client.nlst(folder)}:
                        data = io.BytesIO()
                        client.retrbinary(f"RETR {folder}/{name}{REPORT_SUFFIX}", data.write)
                        return folder, json.loads(data.getvalue())
                time.sleep(0.05)
        raise AssertionError(f"no report for {name}")


async def start_drop(dsn: str, root: Path, **ftp_options: object) -> tuple[Drop, list[asyncio.Task]]:
    passive = min(free_port(), 65535 - 500)
    settings = dataclasses.replace(FtpConfig(listen=Address("127.0.0.1", free_port()), root=str(root),
                                             passive_ports=PortRange(passive, passive + 500)), **ftp_options)
    config = Config(database=DatabaseConfig(dsn=dsn), ftp=settings)
    store = await Store.open(dsn, max_connections=20)
    for code in ("ACME", "OTHER"):
        await store.accounts.add(Account(id=None, code=code, ftp_password=hash_secret("ftp-pass"),
                                        international=True))
    inbox = Inbox(config, store)
    tasks = [asyncio.create_task(inbox.run()), asyncio.create_task(ftp.FtpServer(config, store, inbox).run())]
    for _ in range(100):
        try:
            await in_thread(lambda: ftplib.FTP().connect("127.0.0.1", settings.listen.port))
            break
        except OSError:
            await asyncio.sleep(0.05)
    return Drop(config, store, inbox), tasks


async def stop_drop(drop: Drop, tasks: list[asyncio.Task]) -> None:
    for task in reversed(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await drop.store.close()


@pytest.fixture
async def drop(dsn: str, tmp_path: Path) -> AsyncIterator[Drop]:
    started, tasks = await start_drop(dsn, tmp_path / "ftp")
    yield started
    await stop_drop(started, tasks)


async def mailings(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT g.id, g.source, g.source_ref, g.messages, "
                                  "(SELECT count(*) FROM messages m WHERE m.mailing_id = g.id) AS rows "
                                  "FROM mailings g ORDER BY g.id")
    await connection.close()
    return rows
