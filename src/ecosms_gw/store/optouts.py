"""Opt-out lists as people and programs manage them: add, remove, list. Every change is
an event of the number's history, with its source (the trigger of migration 0011)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from ecosms_gw.store.connector import one, queries, translated
from ecosms_gw.store.reads import Listing, Page, completed

Q = {name: completed(sql) for name, sql in queries("optouts").items()}
SOURCES = ("reply", "api", "cli", "import")


class OptOuts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def add(self, account_id: int, numbers: list[str], source: str, reason: str = "") -> int:
        """Numbers (E.164) out of the account's sending; how many were not already."""
        return await self._change("opt_out", source, account_id, numbers, reason)

    @translated
    async def remove(self, account_id: int, numbers: list[str], source: str) -> int:
        """Numbers back in the account's sending; how many were out."""
        return await self._change("opt_in", source, account_id, numbers)

    async def _change(self, query: str, source: str, *args: object) -> int:
        assert source in SOURCES, source
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["set_source"], source)
            return int(await connection.fetchval(Q[query], *args))

    @translated
    async def list(self, account_id: int, numbers: list[str] | None, since: datetime | None, until: datetime | None,
                   page: Page, zone: str) -> Listing:
        row = one(await self._pool.fetchrow(Q["list_opt_outs"], account_id, numbers, since, until, page.limit,
                                            page.offset, zone))
        return Listing(row["size"], row["total"], row["list"])
