"""Accounts and their opt-out lists."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import asyncpg

from ecosms_gw.core.accounts import Account
from ecosms_gw.store.connector import StoreConflict, StoreError, one, queries, translated

Q = queries("accounts")
_FIELDS = tuple(f.name for f in fields(Account))


def _account(row: asyncpg.Record) -> Account:
    values = {name: row[name] for name in _FIELDS}
    values["senders"] = tuple(values["senders"])
    values["sender_ids"] = tuple(values["sender_ids"])
    return Account(**values)


def _values(account: Account) -> list[Any]:
    """The account's columns after code/id, in the order of the insert and update queries."""
    return [account.name, list(account.senders), account.smtp_password, account.ftp_password,
            account.api_secret, account.country, account.timezone, account.international,
            account.mode, list(account.sender_ids), account.reply_email, account.ping_url,
            account.max_messages, account.tps, account.submission_report, account.priority,
            account.validity_hours, account.webhook_url, account.webhook_secret, account.weight,
            account.batch_volume, account.batch_delay_min, account.quiet_hours, account.smpp_password]


class Accounts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def add(self, account: Account) -> Account:
        return _account(one(await self._pool.fetchrow(Q["account_insert"], account.code, *_values(account))))

    @translated
    async def get(self, code: str) -> Account | None:
        row = await self._pool.fetchrow(Q["account_by_code"], code)
        return _account(row) if row else None

    @translated
    async def all(self) -> list[tuple[Account, int]]:
        """Every account with its number of mailings."""
        return [(_account(row), row["mailings"]) for row in await self._pool.fetch(Q["account_list"])]

    @translated
    async def update(self, account: Account) -> Account:
        row = await self._pool.fetchrow(Q["account_update"], account.id, *_values(account))
        if row is None:
            raise StoreError(f"account {account.code} no longer exists")
        return _account(row)

    @translated
    async def remove(self, account: Account) -> None:
        """Only an account that never sent: its mailings keep their history."""
        async with self._pool.acquire() as connection, connection.transaction():
            mailings = await connection.fetchval(Q["account_mailing_count"], account.id)
            if mailings:
                raise StoreConflict(f"account {account.code} has {mailings} mailings")
            await connection.execute(Q["account_delete"], account.id)

    @translated
    async def opt_outs(self, account_id: int) -> frozenset[str]:
        """Numbers that asked this account to stop (STOP replies)."""
        return frozenset(row["recipient"] for row in await self._pool.fetch(Q["opt_outs"], account_id))
