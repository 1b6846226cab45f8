"""The store: PostgreSQL, the only package that imports asyncpg. `Store` opens the pool
and hands out one object per aggregate (accounts, mailings, dispatch, receipts,
notifications, reads), each with its own module and SQL file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from ecosms_gw.store import connector
from ecosms_gw.store.accounts import Accounts
from ecosms_gw.store.cache import AccountCache
from ecosms_gw.store.connector import StoreConflict, StoreError, StoreUnavailable, queries, translated
from ecosms_gw.store.dispatch import Daemon, Dispatch, Link
from ecosms_gw.store.intake import GroupCommit
from ecosms_gw.store.mailings import Mailings
from ecosms_gw.store.monitor import Monitor
from ecosms_gw.store.notifications import Notifications
from ecosms_gw.store.optouts import OptOuts
from ecosms_gw.store.reads import Reads
from ecosms_gw.store.receipts import Receipts
from ecosms_gw.store.webhooks import Failing, Webhooks

__all__ = ["Cluster", "Store", "StoreConflict", "StoreError", "StoreUnavailable"]

Q = queries("connector")
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
        self.intake = GroupCommit(self.mailings)  # small mailings, committed together
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

    @translated
    async def migrate(self) -> list[int]:
        return await connector.migrate(self._pool)

    @translated
    async def setting(self, name: str, default: str) -> str:
        """A value every daemon on this database shares; `default` if it is the first."""
        return str(await self._pool.fetchval(Q["setting"], name, default))

    @translated
    async def listen(self, on_work: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call `on_work` whenever work is enqueued, and keep accounts in memory while
        their changes are heard; returns the coroutine that stops it. A lost listener only
        delays work until the next poll, and accounts are read again each time."""
        connection = await asyncpg.connect(self._dsn, timeout=10)
        await connection.add_listener(WORK_CHANNEL, lambda *_: on_work())
        await connection.add_listener(ACCOUNTS_CHANNEL, lambda *_: self.known.changed())
        connection.add_termination_listener(lambda *_: self.known.listen(False))
        self.known.listen(True)

        async def stop() -> None:
            self.known.listen(False)
            await connection.close()
        return stop

    async def cluster(self) -> Cluster:
        daemons = await self.dispatch.daemons()
        links = await self.dispatch.links()
        queue = await self.reads.queue_state()
        backlog = await self.notifications.backlog()
        return Cluster(daemons, links, queue.queued, queue.oldest_due_s, backlog.mail, backlog.mail_failed,
                       backlog.pings, await self.webhooks.backlog(), await self.webhooks.failing(), queue.held,
                       queue.paused)
