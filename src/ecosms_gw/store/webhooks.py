"""Event webhooks waiting in the database: claimed per account (leased), settled after the
call. Events are written by the triggers of migration 0012."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from ecosms_gw.store.connector import queries, translated

Q = queries("webhooks")
BATCH = 100  # events per POST


@dataclass(frozen=True, slots=True)
class Batch:
    """An account's oldest events (JSON objects, in order) and where they go."""
    account_id: int
    attempts: int
    url: str | None
    secret: str | None
    ids: list[int]
    payloads: list[str]
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Failing:
    """An account whose webhook failed its last batch: its events wait for the retry."""
    account: str
    attempts: int
    last_error: str | None
    next_attempt: datetime
    waiting: int
    oldest: datetime | None


class Webhooks:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def claim(self, accounts: int, lease: timedelta) -> list[Batch]:
        return [Batch(row["account_id"], row["attempts"], row["url"], row["secret"], list(row["ids"]),
                      list(row["payloads"]), row["oldest"])
                for row in await self._pool.fetch(Q["claim_webhooks"], accounts, lease, BATCH)]

    @translated
    async def delivered(self, account_id: int, ids: list[int]) -> None:
        await self._pool.execute(Q["webhook_delivered"], account_id, ids)

    @translated
    async def failed(self, account_id: int, retry_in: timedelta, give_up: timedelta, error: str) -> int:
        """Retry later; the events older than `give_up` are dropped (how many)."""
        return int(await self._pool.fetchval(Q["webhook_failed"], account_id, retry_in, give_up, error[:500]))

    @translated
    async def wake(self) -> None:
        await self._pool.execute(Q["webhook_wake"])

    @translated
    async def backlog(self, account_id: int | None = None) -> int:
        """Events waiting, of one account or of all."""
        return int(await self._pool.fetchval(Q["webhook_backlog"], account_id))

    @translated
    async def failing(self, account_id: int | None = None) -> list[Failing]:
        """Accounts whose receiver refused their last batch (at most 100)."""
        return [Failing(**row) for row in await self._pool.fetch(Q["webhook_failing"], account_id)]
