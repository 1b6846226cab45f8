"""The dispatchers' side: daemons and their links, claims, what the SMSC answered, and
the reaping of dead daemons' work."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg
import structlog

from ecosms_gw.core.gsm import Encoding
from ecosms_gw.store.connector import StoreUnavailable, columns, lost_event, one, queries, translated

log = structlog.get_logger()
Q = queries("dispatch")

HEARTBEAT_S = 5.0  # a daemon's heartbeat; three missed and its links count as unbound
ALIVE = timedelta(seconds=3 * HEARTBEAT_S)
REGISTER_RETRY_S = 1.0  # the lock connection lost: how often to try again


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    mailing_id: int
    account_id: int
    recipient: str
    text: str
    encoding: Encoding
    segments: int
    attempts: int
    sender_id: str | None = None  # the message's, else its account's default
    flash: bool = False
    priority: int = 1  # 0-3, 3 the most urgent (SMPP priority_flag)
    validity_min: int | None = None  # how long the SMSC may keep trying; None: its default


class Accepted(NamedTuple):
    """A part the SMSC accepted, with the id its receipt will carry."""
    message_id: int
    seq: int
    smsc_message_id: str


class Failed(NamedTuple):
    """A message the SMSC refused for good (or that ran out of attempts)."""
    message_id: int
    status: str
    code: str
    description: str


class Take(NamedTuple):
    """Due messages to take for one connection: at most `limit`, for `worker`; `routes`
    are recipient prefixes (`*`: any), `excluded` those a more specific connection serves."""
    limit: int
    worker: int
    routes: tuple[str, ...] = ("*",)
    excluded: tuple[str, ...] = ()


class Expired(NamedTuple):
    expired: int  # not sent within the maximum age: `ko`
    silent: int  # no final receipt within the wait: `no`


@dataclass(frozen=True, slots=True)
class Daemon:
    key: int
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    owner: int | None
    owner_host: str | None
    owner_pid: int | None
    bound_since: datetime | None  # None: no living daemon has it bound
    tps: int
    tps_now: float
    window_size: int
    in_flight: int
    throttled: int  # throttle answers since it was bound
    routes: tuple[str, ...]
    in_doubt: int


@dataclass(frozen=True, slots=True)
class LinkState:
    """A link as its daemon sees it now."""
    name: str
    owner: int
    routes: tuple[str, ...]
    tps: int
    window: int
    bound: bool
    tps_now: float = 0.0
    in_flight: int = 0
    throttled: int = 0  # throttle answers since bound


def patterns(prefixes: tuple[str, ...]) -> list[str]:
    """Route prefixes as LIKE patterns on E.164 recipients: `*` is any, `33` is `+33%`."""
    return ["%" if prefix == "*" else "+" + prefix.lstrip("+").replace("%", "").replace("_", "") + "%"
            for prefix in prefixes]


class Worker:
    """This daemon's registration: a connection holding the advisory lock of its key, and
    of the SMSC links it serves, for as long as the daemon lives. When the daemon dies, so
    do the locks: another daemon takes its links over, and its claims are returned to the
    queue by the next `reap_dead_workers`. When only the connection dies (the database
    restarted), it is opened again with the same key and links; until then `holding` is
    False."""

    def __init__(self, key: int, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self.key = key
        self._connect = connect
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._busy = asyncio.Lock()  # one query at a time on this connection
        self._owned: set[str] = set()

    @property
    def holding(self) -> bool:
        return self._connection is not None and not self._lost.is_set()

    def owns(self, resource: str) -> bool:
        """Whether this daemon still serves `resource` (False once another took it over)."""
        return resource in self._owned

    @translated
    async def register(self) -> None:
        """The key locked and the daemon listed, on a new connection; the links it served
        locked again (those another daemon took meanwhile are given up)."""
        connection = await self._connect()
        try:
            if not await connection.fetchval(Q["worker_lock"], self.key):
                raise StoreUnavailable("the worker key is still held by a connection the database has not closed")
            await connection.execute(Q["worker_register"], self.key, socket.gethostname(), os.getpid())
            kept = {resource for resource in sorted(self._owned)
                    if await connection.fetchval(Q["own_resource"], resource)}
        except BaseException:
            await connection.close()
            raise
        if given_up := self._owned - kept:
            log.warning("smsc_taken_over", links=sorted(given_up))
        self._owned = kept
        self._lost = lost_event(connection)
        self._connection = connection

    async def watch(self, interval_s: float = HEARTBEAT_S) -> None:
        """The heartbeat; a lost connection is opened again, every second until the
        database answers, for as long as the daemon runs."""
        while True:
            try:
                await self._beat(interval_s)
            except StoreUnavailable as error:
                log.warning("worker_lock_lost", worker=self.key, error=str(error))
                await self._register_again()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), interval_s)

    @translated
    async def _beat(self, interval_s: float) -> None:
        async with self._busy:
            await self._require().execute(Q["worker_beat"], self.key, timeout=interval_s)

    async def _register_again(self) -> None:
        self._lost.set()
        if self._connection is not None:
            self._connection.terminate()
        while True:
            await asyncio.sleep(REGISTER_RETRY_S)
            try:
                await self.register()
            except StoreUnavailable:
                continue
            log.info("worker_lock_regained", worker=self.key, links=sorted(self._owned))
            return

    @translated
    async def own(self, resource: str) -> bool:
        """Try to become the one daemon serving `resource` (an SMSC connection), for as
        long as this daemon lives; when it dies, another one takes over."""
        if resource in self._owned and self.holding:
            return True
        async with self._busy:
            if await self._require().fetchval(Q["own_resource"], resource):
                self._owned.add(resource)
                return True
        return False

    def _require(self) -> asyncpg.Connection:
        if self._connection is None or not self.holding:
            raise StoreUnavailable("the lock connection is closed")
        return self._connection

    @translated
    async def close(self) -> None:
        if self._connection is None:
            return
        try:
            await self._connection.execute(Q["worker_remove"], self.key)
        finally:
            await self._connection.close()


class Dispatch:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn

    @translated
    async def register_worker(self) -> Worker:
        """A fresh worker key, locked on a connection of its own for the daemon's life."""
        worker = Worker(secrets.randbits(63), functools.partial(asyncpg.connect, self._dsn, timeout=10))
        await worker.register()  # a key taken already (one in 2**63) is an error the daemon's restart mends
        return worker

    @translated
    async def reap_dead_workers(self, in_doubt: str = "unknown") -> int:
        """Work of daemons that died: claims go back to the queue, messages they had
        started writing follow the in-doubt policy. Returns how many were returned."""
        row = one(await self._pool.fetchrow(Q["workers_reap"], in_doubt))
        if row["returned"] or row["in_doubt"]:
            log.warning("dead_worker_reaped", returned=row["returned"], in_doubt=row["in_doubt"], policy=in_doubt)
        return int(row["returned"])

    @translated
    async def report_link(self, link: LinkState) -> None:
        """A link as its daemon sees it now; a standby never overwrites a living owner."""
        await self._pool.execute(Q["link_report"], link.name, link.owner, list(link.routes), link.tps, link.window,
                                 link.bound, link.tps_now, link.in_flight, link.throttled)

    @translated
    async def bound_links(self) -> dict[str, tuple[str, ...]]:
        """Links bound now by a living daemon, with their routes: the cluster's routing."""
        return {row["name"]: tuple(row["routes"]) for row in await self._pool.fetch(Q["bound_links"], ALIVE)}

    @translated
    async def links(self) -> list[Link]:
        """Every SMSC link the cluster knows, with the living daemon serving it (if any)."""
        return [Link(**{**row, "routes": tuple(row["routes"])})
                for row in await self._pool.fetch(Q["cluster_links"], ALIVE)]

    @translated
    async def daemons(self) -> list[Daemon]:
        return [Daemon(**row) for row in await self._pool.fetch(Q["cluster_daemons"])]

    @translated
    async def claim(self, limit: int, worker: int, routes: tuple[str, ...] = ("*",),
                    excluded: tuple[str, ...] = ()) -> list[Claimed]:
        """Due messages for one connection: `routes` are recipient prefixes (`*`: any),
        `excluded` the prefixes a more specific connection serves now."""
        rows = await self._pool.fetch(Q["claim_due"], limit, worker, patterns(routes), patterns(excluded))
        return [Claimed(*row) for row in rows]

    @translated
    async def record_submissions(self, smsc: str, accepted: Sequence[Accepted], done: Sequence[int],
                                 failed: Sequence[Failed], mark: Sequence[int] = ()) -> set[int]:
        """In one transaction: parts the SMSC accepted, messages whose every part is accepted
        (now `on`), messages that failed, and messages about to be written (`mark`: "being
        submitted", their parts created). Receipts that came before these answers are
        applied now. Returns the marked messages that may be written (one canceled since
        its claim is left out)."""
        return set(await self._pool.fetchval(Q["record_submissions"], smsc, *columns(accepted, 3), list(done),
                                             *columns(failed, 4), list(mark)))

    @translated
    async def record_and_take(self, smsc: str, accepted: Sequence[Accepted], done: Sequence[int],
                              failed: Sequence[Failed], take: Take) -> list[Claimed]:
        """In one transaction: what the SMSC answered (as `record_submissions`), then due
        messages taken, claimed and marked "being submitted" at once (none when the limit
        is 0). Returns those taken, to be written now."""
        rows = await self._pool.fetch(Q["record_and_take"], smsc, *columns(accepted, 3), list(done),
                                      *columns(failed, 4), take.limit, take.worker, patterns(take.routes),
                                      patterns(take.excluded))
        return [Claimed(*row) for row in rows]

    @translated
    async def return_unwritten(self, worker: int, smsc: str) -> None:
        """What this daemon marked on this link and did not write, back to the queue (see
        the query: only once every answer of the link is stored)."""
        await self._pool.execute(Q["return_unwritten"], worker, smsc)

    @translated
    async def repair_queues(self) -> int:
        """Queues brought back for messages that waited without one (see queues_repair)."""
        repaired = int(await self._pool.fetchval(Q["queues_repair"]))
        if repaired:
            log.warning("queues_repaired", queues=repaired)
        return repaired

    @translated
    async def expire(self, max_age: timedelta, receipt_wait: timedelta) -> Expired:
        """Messages not sent within `max_age` end `ko`, those without a final receipt
        within `receipt_wait` end `no`."""
        row = one(await self._pool.fetchrow(Q["expire"], max_age, receipt_wait))
        if row["expired"]:
            log.warning("messages_expired", messages=row["expired"])
        if row["silent"]:
            log.warning("receipts_missing", messages=row["silent"])
        return Expired(int(row["expired"]), int(row["silent"]))
