"""Receipts and replies waiting for SMPP clients (see migration 0016): taken with a lease
by the daemon where the account is bound, deleted once acknowledged, retried otherwise,
given up after 24 h."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

import asyncpg

from ecosms_gw.store.connector import queries, translated

Q = queries("outbox")


class Outgoing(NamedTuple):
    """One deliver_sm to send: a receipt (`state` set) or a reply."""
    id: int
    account_id: int
    kind: str  # receipt | reply
    message_id: int | None
    source: str
    destination: str
    body: str
    state: int | None
    attempts: int


class Outbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def take(self, account_ids: Sequence[int], limit: int, lease: timedelta, keep: timedelta) -> list[Outgoing]:
        rows = await self._pool.fetch(Q["outbox_take"], list(account_ids), limit, lease, keep)
        return sorted((Outgoing(*row) for row in rows), key=lambda outgoing: outgoing.id)

    @translated
    async def acknowledged(self, ids: Sequence[int]) -> None:
        await self._pool.execute(Q["outbox_acknowledged"], list(ids))

    @translated
    async def retry(self, delays: Sequence[tuple[int, float]]) -> None:
        """Each (id, seconds): due again then."""
        await self._pool.execute(Q["outbox_retry"], [id for id, _ in delays], [after for _, after in delays])

    @translated
    async def waiting(self, account_id: int | None = None) -> int:
        return int(await self._pool.fetchval(Q["outbox_waiting"], account_id))
