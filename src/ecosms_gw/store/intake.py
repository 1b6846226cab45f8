"""Group commit: concurrent small writes (API calls' mailings, SMPP submits) share one
statement and one transaction instead of a transaction each.

No timer: the first call of a burst is written at once, and those that come while it is
being written wait for the next write, all together. Each caller gets its answer only
after the commit that holds its item; when that commit fails, every caller of the group
gets the error, and none of their items is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from ecosms_gw.store.connector import StoreUnavailable

log = structlog.get_logger()

MAX_GROUP_MESSAGES = 10_000  # messages in one statement; more wait for the next
Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """`write` stores a group in one transaction and answers each item, in order; `size`
    is an item's number of messages."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]], size: Callable[[Item], int]) -> None:
        self._write_group = write
        self._size = size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def enqueue(self, item: Item) -> Result:
        """Stored with the others waiting now: returns once committed, or raises the
        group's `StoreError`."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await future  # a caller that goes away is still stored with its group

    async def _write(self) -> None:
        try:
            while self._waiting:
                group = self._take()
                try:
                    stored = await self._write_group([item for item, _ in group])
                except Exception as error:  # noqa: BLE001 - every caller of the group gets it
                    _answer(group, error)
                    continue
                except BaseException:
                    _answer(group + self._waiting, StoreUnavailable("the daemon is stopping"))
                    self._waiting = []
                    raise
                _answer(group, stored)
                log.debug("group_committed", items=len(group))
        finally:
            self._writer = None

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The next group: every waiting item, up to `MAX_GROUP_MESSAGES` (at least one)."""
        count, end = 0, len(self._waiting)
        for index, (item, _) in enumerate(self._waiting):
            count += self._size(item)
            if count > MAX_GROUP_MESSAGES and index > 0:
                end = index
                break
        group, self._waiting = self._waiting[:end], self._waiting[end:]
        return group


def _answer(group: list[tuple[Item, asyncio.Future[Result]]], outcome: list[Result] | BaseException) -> None:
    """Each caller of the group: its own result, or the group's error."""
    for index, (_, future) in enumerate(group):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[index])
