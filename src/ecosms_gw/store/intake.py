"""Group commit of small mailings: concurrent creates (API calls) share one statement and
one transaction instead of a transaction each.

No timer: the first call of a burst is written at once, and those that come while it is
being written wait for the next write, all together. Each caller gets its answer only
after the commit that holds its mailing; when that commit fails, every caller of the
group gets the error, and none of their mailings is stored."""

from __future__ import annotations

import asyncio

import structlog

from ecosms_gw.store.connector import StoreUnavailable
from ecosms_gw.store.mailings import Enqueued, Mailings, Pending

log = structlog.get_logger()

MAX_GROUP_MESSAGES = 10_000  # messages in one statement; more wait for the next
Waiting = tuple[Pending, "asyncio.Future[Enqueued]"]


class GroupCommit:
    def __init__(self, mailings: Mailings) -> None:
        self._mailings = mailings
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def enqueue(self, pending: Pending) -> Enqueued:
        """Stored with the others waiting now: returns once committed, or raises the
        group's `StoreError`."""
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._waiting.append((pending, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await future  # a caller that goes away is still stored with its group

    async def _write(self) -> None:
        try:
            while self._waiting:
                group = self._take()
                try:
                    stored = await self._mailings.enqueue_many([pending for pending, _ in group])
                except Exception as error:  # noqa: BLE001 - every caller of the group gets it
                    _answer(group, error)
                    continue
                except BaseException:
                    _answer(group + self._waiting, StoreUnavailable("the daemon is stopping"))
                    self._waiting = []
                    raise
                _answer(group, stored)
                log.debug("group_committed", mailings=len(group), messages=sum(e.messages for e in stored))
        finally:
            self._writer = None

    def _take(self) -> list[Waiting]:
        """The next group: every waiting mailing, up to `MAX_GROUP_MESSAGES` (at least one)."""
        count, end = 0, len(self._waiting)
        for index, (pending, _) in enumerate(self._waiting):
            count += len(pending.composition.messages)
            if count > MAX_GROUP_MESSAGES and index > 0:
                end = index
                break
        group, self._waiting = self._waiting[:end], self._waiting[end:]
        return group


def _answer(group: list[Waiting], outcome: list[Enqueued] | BaseException) -> None:
    """Each caller of the group: its own mailing, or the group's error."""
    for index, (_, future) in enumerate(group):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[index])
