"""SMPP submits: each a message of its bind session's mailing of the day, stored by group
commit (many sessions' submits in one statement) before the client is answered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg

from ecosms_gw.store.connector import columns, one, queries, translated

Q = queries("submits")


class Submitted(NamedTuple):
    """One submit as stored: a message of mailing `mailing_id`."""
    mailing_id: int
    account_id: int
    recipient: str
    text: str
    encoding: str
    segments: int
    sender_id: str | None
    flash: bool
    priority: int
    validity_min: int | None
    zones: str | None  # for an account with quiet hours: where the recipient may be

    def size(self) -> int:
        return 1


class SubmitState(NamedTuple):
    """A message as query_sm tells it: SMPP's message_state (1 en route until final, then
    2 delivered, 5 undeliverable...), and when it became final."""
    state: int
    final_at: datetime | None


class Submits:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def session_mailing(self, account_id: int, source_ref: str, name: str) -> int:
        """The mailing a session's submits of the day go to (made at the first)."""
        return int(one(await self._pool.fetchrow(Q["session_mailing"], account_id, source_ref, name))["id"])

    @translated
    async def insert_many(self, submits: Sequence[Submitted]) -> list[int]:
        """All in one transaction, or none; their message ids, in order."""
        rows = await self._pool.fetch(Q["submits_insert"], *columns(submits, 11))
        return [row["id"] for row in rows]

    @translated
    async def state(self, account_id: int, message_id: int) -> SubmitState | None:
        """None when the account has no such message (another's included)."""
        row = await self._pool.fetchrow(Q["submit_state"], account_id, message_id)
        return SubmitState(row["state"], row["final_at"]) if row else None
