"""Opt-out lists as people and programs manage them: add, remove, list. Every change is
an event of the number's history, with its source (the trigger of migration 0011)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import asyncpg

from ecosms_gw.store.connector import one, queries, translated
from ecosms_gw.store.reads import Listing, Page, completed

Q = {name: completed(sql) for name, sql in queries("optouts").items()}
SOURCES = ("reply", "api", "cli", "import")


class Change(NamedTuple):
    """One change of a number's opt-out: when (in the zone asked), which way, by what."""
    date: str
    opted_out: bool  # True: out of the account's sending; False: back in
    source: str  # one of SOURCES, or sql for a change made by hand

    def document(self) -> dict[str, object]:
        return {"date": self.date, "optedOut": self.opted_out, "source": self.source}


History = dict[str, list[Change]]  # per number (E.164), oldest first


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
    async def history(self, account_id: int, numbers: list[str], zone: str) -> History:
        """The numbers' changes (E.164), oldest first; a number never changed has none."""
        found: History = {}
        for row in await self._pool.fetch(Q["opt_out_history"], account_id, numbers, zone):
            found.setdefault(row["recipient"], []).append(Change(row["date"], row["opted_out"], row["source"]))
        return found

    @translated
    async def list(self, account_id: int, numbers: list[str] | None, since: datetime | None, until: datetime | None,
                   page: Page, zone: str) -> Listing:
        row = one(await self._pool.fetchrow(Q["list_opt_outs"], account_id, numbers, since, until, page.limit,
                                            page.offset, zone))
        return Listing(row["size"], row["total"], row["list"])
