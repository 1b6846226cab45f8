"""This daemon's copy of the accounts and their opt-out lists, read by every API call and
every submission. A change anywhere (another daemon, an `ecosms-gw account` command, SQL
by hand) is notified at its commit and empties the copy; entries also live at most
`FRESH_S`, so that a notification lost with its connection costs at most that. Without
a listener (commands, tests), nothing is kept."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from ecosms_gw.core.accounts import Account
from ecosms_gw.store.accounts import Accounts

FRESH_S = 1.0
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class AccountCache:
    def __init__(self, accounts: Accounts, clock: Callable[[], float] = time.monotonic) -> None:
        self._accounts = accounts
        self._clock = clock
        self.listening = False
        self._generation = 0  # a read that began before a change is not kept
        self._by_code: dict[str, tuple[float, Account]] = {}
        self._opt_outs: dict[int, tuple[float, frozenset[str]]] = {}

    def changed(self) -> None:
        """An account or an opt-out changed somewhere: forget everything."""
        self._generation += 1
        self._by_code.clear()
        self._opt_outs.clear()

    def listen(self, on: bool) -> None:
        """Changes are notified (on), or no longer (off: keep nothing)."""
        self.listening = on
        self.changed()

    async def get(self, code: str) -> Account | None:
        """The account of this code, in any case; unknown codes are not kept."""
        return await self._read(self._by_code, code.lower(), lambda: self._accounts.get(code))

    async def opt_outs(self, account_id: int) -> frozenset[str]:
        found = await self._read(self._opt_outs, account_id, lambda: self._accounts.opt_outs(account_id))
        return found if found is not None else frozenset()

    async def _read(self, kept: dict[K, tuple[float, T]], key: K, read: Callable[[], Awaitable[T | None]]) -> T | None:
        now = self._clock()
        hit = kept.get(key)
        if hit is not None and now - hit[0] < FRESH_S:
            return hit[1]
        generation = self._generation
        value = await read()
        if value is not None and self.listening and generation == self._generation:
            kept[key] = (now, value)
        return value
