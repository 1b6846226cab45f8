"""The store: PostgreSQL, the only package that imports asyncpg. `Store` opens the pool
and hands out one object per aggregate (accounts, mailings, dispatch, receipts,
notifications, reads), each with its own module and SQL file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from ecosms_gw.store import connector
from ecosms_gw.store.accounts import Accounts
from ecosms_gw.store.cache import AccountCache
from ecosms_gw.store.connector import StoreConflict, StoreError, StoreUnavailable, queries, translated
from ecosms_gw.store.dispatch import Daemon, Dispatch, Link
from ecosms_gw.store.intake import GroupCommit
from ecosms_gw.store.mailings import Mailings, Pending
from ecosms_gw.store.monitor import Monitor
from ecosms_gw.store.notifications import Notifications
from ecosms_gw.store.optouts import OptOuts
from ecosms_gw.store.outbox import Outbox
from ecosms_gw.store.reads import Reads
from ecosms_gw.store.receipts import Receipts
from ecosms_gw.store.submits import Submits, Submitted
from ecosms_gw.store.webhooks import Failing, Webhooks

__all__ = ["Cluster", "Store", "StoreConflict", "StoreError", "StoreUnavailable"]

log = structlog.get_logger()
Q = queries("connector")
LISTEN_RETRY_S = 1.0
LISTEN_PROBE_S = 30.0  # a listener silent this long is asked whether it lives
WORK_CHANNEL = "ecosms_work"
ACCOUNTS_CHANNEL = "ecosms_accounts"  # see migration 0008


@dataclass(frozen=True, slots=True)
class Cluster:
    """What `ecosms-gw status` shows: every daemon on this database, every SMSC link."""
    daemons: list[Daemon]
    links: list[Link]
    queued: int
    oldest_due_s: float
    mail_backlog: int
    mail_failed: int
    ping_backlog: int
    webhook_backlog: int  # events waiting to be posted to webhooks
    webhook_failing: list[Failing]  # accounts whose receiver refused their last batch
    held: int = 0  # of the queued, held by quiet hours
    paused: int = 0  # messages of paused mailings


class Store:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self.accounts = Accounts(pool)
        self.known = AccountCache(self.accounts)  # what the daemon reads on every call
        self.mailings = Mailings(pool)
        self.intake = GroupCommit(self.mailings.enqueue_many, Pending.size)  # small mailings, committed together
        self.submits = Submits(pool)
        self.outbox = Outbox(pool)  # receipts and replies for SMPP clients
        self.submit_intake = GroupCommit(self.submits.insert_many, Submitted.size)  # SMPP submits, together
        self.dispatch = Dispatch(pool, dsn)
        self.receipts = Receipts(pool)
        self.notifications = Notifications(pool)
        self.reads = Reads(pool)
        self.optouts = OptOuts(pool)
        self.webhooks = Webhooks(pool)
        self.monitor = Monitor(pool)

    @classmethod
    @translated
    async def open(cls, dsn: str, *, max_connections: int = 10) -> Store:
        return cls(await connector.create_pool(dsn, max_connections), dsn)

    async def close(self) -> None:
        await self._pool.close()

    @translated
    async def ping(self) -> None:
        await self._pool.fetchval(Q["ping"], timeout=5)

    async def wait_until_available(self, every_s: float) -> None:
        """Returns once the database answers again."""
        while True:
            try:
                return await self.ping()
            except StoreUnavailable:
                await asyncio.sleep(every_s)

    @translated
    async def migrate(self) -> list[int]:
        return await connector.migrate(self._pool)

    @translated
    async def setting(self, name: str, default: str) -> str:
        """A value every daemon on this database shares; `default` if it is the first."""
        return str(await self._pool.fetchval(Q["setting"], name, default))

    async def listen(self, on_work: Callable[[], None]) -> None:
        """Call `on_work` whenever work is enqueued, and keep accounts in memory while
        their changes are heard, until cancelled. A listener lost (the database restarted)
        is opened again; meanwhile work waits for the next poll and accounts are read each
        time."""
        while True:
            try:
                connection = await self._listener(on_work)
            except StoreUnavailable as error:
                log.warning("listener_unavailable", error=str(error))
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            self.known.listen(True)
            on_work()  # what was enqueued while nobody listened
            try:
                await self._while_alive(connection)
            finally:
                self.known.listen(False)
                connection.terminate()

    @translated
    async def _listener(self, on_work: Callable[[], None]) -> asyncpg.Connection:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        await connection.add_listener(WORK_CHANNEL, lambda *_: on_work())
        await connection.add_listener(ACCOUNTS_CHANNEL, lambda *_: self.known.changed())
        return connection

    @staticmethod
    async def _while_alive(connection: asyncpg.Connection) -> None:
        """Until the connection is lost: closed by the server, or silent (a network cut)."""
        lost = connector.lost_event(connection)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), LISTEN_PROBE_S)
                return
            try:
                await connection.fetchval(Q["ping"], timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("listener_lost", error=str(error))
                return

    async def cluster(self) -> Cluster:
        daemons = await self.dispatch.daemons()
        links = await self.dispatch.links()
        queue = await self.reads.queue_state()
        backlog = await self.notifications.backlog()
        return Cluster(daemons, links, queue.queued, queue.oldest_due_s, backlog.mail, backlog.mail_failed,
                       backlog.pings, await self.webhooks.backlog(), await self.webhooks.failing(), queue.held,
                       queue.paused)
