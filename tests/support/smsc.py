"""node-smpp as the SMSC (tests/peer), dispatchers pointed at it, and what to wait for."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ecosms_gw.config import SmscConfig
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.smpp.delivery import Deliveries
from ecosms_gw.smpp.link import Dispatcher
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from ecosms_gw.store.receipts import Receipt
from tests.support.net import free_port


def busiest_second(times: list[float]) -> int:
    """Most events in any half-open one-second window (times are sorted)."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - 1 + 1e-9:  # float spacing of exactly 1/rate
            first += 1
        most = max(most, last - first + 1)
    return most


PEER = Path(__file__).parents[1] / "peer" / "peer.js"


class Peer:
    def __init__(self, folder: Path, *options: str) -> None:
        if shutil.which("node") is None:
            raise RuntimeError("node is not installed: ./scripts/test installs it")
        self.port = free_port()
        self.record = folder / f"peer-{self.port}.jsonl"
        self.options = options
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(["node", str(PEER), str(self.port), str(self.record), *self.options],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "listening"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def lines(self) -> list[dict]:
        if not self.record.exists():
            return []
        text = self.record.read_text()
        complete = text[:text.rfind("\n") + 1]  # the peer may be writing the last line now
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def received(self) -> list[dict]:
        """The submit_sm it accepted."""
        return [line for line in self.lines() if "destination" in line]

    def receipts(self) -> list[dict]:
        """The receipts it sent and the gateway acknowledged."""
        return [line for line in self.lines() if "receipt" in line]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    started = Peer(tmp_path)
    yield started
    started.stop()


def peer_jitter(tps: int) -> int:
    """What the peer's own timestamps can add to a one-second window: it stamps each PDU in
    whole milliseconds when its event loop gets to it, tens of milliseconds late on a busy
    machine. Our exact guarantee is unit-tested (test_ratelimit); at the peer, a rate
    exceeded in earnest (say two daemons sending at once) must still show."""
    return max(1, tps // 20)


async def queue_mailing(store: Store, account: Account, bodies: list[str], encoding: str = "gsm7") -> int:
    composition = compose(parse_all(bodies), AccountRules(encoding=encoding, max_messages=10_000))
    assert account.id is not None
    return (await store.mailings.enqueue(Submission(account.id, "http"), composition, {})).mailing_id


async def scalar(dsn: str, query: str) -> Any:
    """One value read from the test's database."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def statuses(dsn: str) -> dict[int, tuple[str, str, str | None]]:
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT id, state, status, code FROM messages")
    await connection.close()
    return {row["id"]: (row["state"], row["status"], row["code"]) for row in rows}


async def run_until(dispatcher: Dispatcher, done, timeout: float = 60.0) -> None:
    task = asyncio.create_task(dispatcher.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await done():
            assert loop.time() < deadline, "dispatch did not finish in time"
            assert not task.done(), task
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def dispatcher_for(port: int, store: Store, tps: int = 10_000, window: int = 64, worker: int = 1,
                   name: str = "peer", routes: tuple[str, ...] = ("*",)) -> Dispatcher:
    smsc = SmscConfig(name=name, host="127.0.0.1", port=port, tps=tps, window=window,
                      source_addr="ACME", routes=routes)
    return Dispatcher(smsc, store, worker, asyncio.Event(), Deliveries(store).handler(smsc))


def all_final(dsn: str):
    """Every message has its final status (receipts included)."""
    async def check() -> bool:
        return all(state in ("done", "canceled") for state, _, _ in (await statuses(dsn)).values())
    return check


def all_settled(dsn: str):
    async def check() -> bool:
        return all(state in ("submitted", "done", "canceled") for state, _, _ in (await statuses(dsn)).values())
    return check


async def apply_receipts(store: Store, smsc: str, receipts: list[tuple[str, str, str | None]]) -> tuple[int, int]:
    """Receipts as (SMSC message id, part state, code), applied as the deliveries would:
    how many decided a part, how many were kept for later."""
    applied = await store.receipts.apply(smsc, [Receipt(*receipt) for receipt in receipts])
    return applied.applied, applied.kept
