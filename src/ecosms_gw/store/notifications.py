"""What the gateway tells others: outgoing mail (reply forwards, submission reports) and
ping calls, both leased so that a daemon that dies mid-call leaves them to another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg

from ecosms_gw.store.connector import one, queries, translated

Q = queries("notifications")


class Mail(NamedTuple):
    to: str
    subject: str
    body: str
    sender: str | None = None  # the From header; None: mail_out.from


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """A call owed to a customer's ping URL about one message."""
    id: int
    message_id: int
    attempts: int
    created_at: datetime
    url: str


@dataclass(frozen=True, slots=True)
class Backlog:
    mail: int
    mail_failed: int
    pings: int


class Notifications:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def queue_mail(self, mail: Mail) -> None:
        await self._pool.execute(Q["queue_mail"], *mail)

    @translated
    async def claim_mail(self, limit: int, lease: timedelta) -> list[QueuedMail]:
        """Due outgoing mail, leased for `lease`."""
        return [QueuedMail(**row) for row in await self._pool.fetch(Q["claim_mail"], limit, lease)]

    @translated
    async def mail_sent(self, mail_id: int) -> None:
        await self._pool.execute(Q["mail_sent"], mail_id)

    @translated
    async def mail_failed(self, mail_id: int, retry_in: timedelta, retry_for: timedelta, error: str) -> bool:
        """Try again in `retry_in`, unless it has been tried for `retry_for`: then it is given
        up (True)."""
        return bool(await self._pool.fetchval(Q["mail_failed"], mail_id, retry_in, retry_for, error))

    @translated
    async def claim_pings(self, limit: int, lease: timedelta) -> list[Ping]:
        """Due pings, leased for `lease`."""
        return [Ping(**row) for row in await self._pool.fetch(Q["claim_pings"], limit, lease)]

    @translated
    async def pings_done(self, ping_ids: list[int]) -> None:
        await self._pool.execute(Q["pings_done"], ping_ids)

    @translated
    async def pings_failed(self, ping_ids: list[int], retry_in: timedelta, retry_for: timedelta) -> int:
        """Try again in `retry_in`, unless they have been tried for `retry_for` already.
        Returns how many are given up."""
        return int(await self._pool.fetchval(Q["pings_failed"], ping_ids, retry_in, retry_for))

    @translated
    async def backlog(self) -> Backlog:
        """Outgoing mail waiting or given up, and ping calls waiting."""
        return Backlog(**one(await self._pool.fetchrow(Q["notification_backlog"])))
