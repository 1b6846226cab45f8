"""Mailings: stored whole at intake, canceled, ended, and purged after the retention."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import asyncpg
import structlog

from ecosms_gw.core.accounts import Spread
from ecosms_gw.core.compose import Composition
from ecosms_gw.store.connector import StoreConflict, columns, one, queries, translated
from ecosms_gw.store.reads import completed

log = structlog.get_logger()
Q = {name: completed(sql) for name, sql in queries("mailings").items()}
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
_NO_ROUTING = (None, None, None)
_COPY_FROM = 100  # messages; fewer go in one INSERT, which saves COPY's extra round trips
_MESSAGE_COLUMNS = ("mailing_id", "account_id", "recipient", "text", "encoding", "segments", "line", "due_at",
                    "sender_id", "flash", "priority", "validity_min", "zones")


@dataclass(frozen=True, slots=True)
class Enqueued:
    mailing_id: int
    messages: int
    parts: int
    duplicate: bool = False  # an earlier mailing of the same source: nothing was stored
    items: str | None = None  # its messages as the sms resource shows them (JSON), when asked


@dataclass(frozen=True, slots=True)
class Canceled:
    status: str  # 'canceled', or 'interrupted' when some messages were being sent already
    messages: int


class Acted(NamedTuple):
    """What a pause, resume or cancel did: the messages it changed, the mailing's status."""
    messages: int
    status: str


@dataclass(frozen=True, slots=True)
class Change:
    """What an update changes of mailings: a name (None: kept) and, when given, the date
    (None: at once)."""
    name: str | None = None
    date_given: bool = False
    send_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    mailing_id: int
    account_id: int
    account: str


@dataclass(frozen=True, slots=True)
class Purged:
    mailings: int = 0
    messages: int = 0
    events: int = 0
    replies: int = 0
    pings: int = 0
    mails: int = 0
    early_receipts: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class ReplyRouting(NamedTuple):
    """How replies to a mailing's messages are mailed; each None: the account's way."""
    email: str | None = None  # None: the account's --reply-email
    sender: str | None = None  # the mail's From
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """What a mailing is stored with besides its composition."""
    account_id: int
    source: str
    source_ref: str | None = None
    dedupe_window: timedelta | None = None  # a mailing of the same source_ref within it is a duplicate
    name: str | None = None
    ping_url: str | None = None
    sender_id: str | None = None  # of its messages; None: the account's default when sent
    flash: bool = False  # message class 0
    priority: int = 1  # 0-3, 3 the most urgent
    validity_min: int | None = None  # how long the SMSC may keep trying; None: its default
    spread: Spread | None = None  # sent in packets; None: all at its date
    zones: tuple[str | None, ...] | None = None  # per message, the time zones its recipient may be in
    # (comma-separated), kept for an account with quiet hours
    replies: ReplyRouting | None = None  # None: replies go to the account's --reply-email
    request_hash: str | None = None  # an API call's parameters: another under the same source_ref is refused
    text: str | None = None  # an API mailing's text as written (placeholders and all)


@dataclass(frozen=True, slots=True)
class Pending:
    """One mailing of a group commit; with `zone`, its messages come back as the sms
    resource shows them, dates in that zone."""
    submission: Submission
    composition: Composition
    report: dict[str, Any]
    zone: str | None = None

    def size(self) -> int:
        """Its number of messages, for the group commit's bound."""
        return len(self.composition.messages)


class Mailings:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def enqueue(self, submission: Submission, composition: Composition, report: dict[str, Any]) -> Enqueued:
        """One mailing and all its messages in one transaction (COPY), and a wake-up for the
        dispatchers that fires at commit. Once this returns, the submission is durable.

        With a dedupe window, a mailing of the same account and `source_ref` within the
        window is returned instead (`duplicate=True`), checked under a lock so that two
        copies arriving at once cannot both pass; one stored with another `request_hash`
        is a `StoreConflict`.

        A date in the past means now: a message is due at the later of its date and its
        acceptance, so it is never older than its submission (and the maximum age counts
        from then). The mailing keeps the date as written, which the API shows."""
        async with self._pool.acquire() as connection, connection.transaction():
            if submission.dedupe_window and submission.source_ref:
                earlier = await _earlier(connection, submission)
                if earlier is not None:
                    return earlier
            mailing_id = await connection.fetchval(
                Q["mailing_insert"], submission.account_id, submission.source, submission.source_ref,
                composition.send_at, len(composition.messages), composition.parts, json.dumps(report),
                submission.name, submission.ping_url, *(submission.replies or _NO_ROUTING),
                submission.request_hash, submission.text)
            await _insert_messages(connection, mailing_id, submission, composition)
        return Enqueued(mailing_id, len(composition.messages), composition.parts)

    @translated
    async def enqueue_many(self, pending: Sequence[Pending]) -> list[Enqueued]:
        """Mailings without a dedupe window, all in one statement (one transaction, one
        wake-up): stored all together, or none of them."""
        mailings = [(p.submission.account_id, p.submission.source, p.submission.source_ref, p.composition.send_at,
                     len(p.composition.messages), p.composition.parts, json.dumps(p.report), p.submission.name,
                     p.submission.ping_url, *(p.submission.replies or _NO_ROUTING), p.submission.text)
                    for p in pending]
        messages = [(k, p.submission.account_id, *row) for k, p in enumerate(pending, 1)
                    for row in _message_rows(p.submission, p.composition)]
        rows = await self._pool.fetch(Q["mailings_insert_many"], *columns(mailings, 13), *columns(messages, 14),
                                      [p.zone for p in pending])
        return [Enqueued(row["id"], len(p.composition.messages), p.composition.parts, items=row["items"])
                for row, p in zip(rows, pending, strict=True)]

    @translated
    async def update(self, account_id: int, ids: list[int] | None, names: list[str] | None,
                     change: Change) -> int:
        """Rename and reschedule the account's mailings the filters name, all or none; how
        many. A new date needs every message of each still waiting (`StoreConflict`, which
        names the first that started, otherwise)."""
        async with self._pool.acquire() as connection, connection.transaction():
            found = await connection.fetch(Q["lock_mailings_to_update"], account_id, ids, names)
            chosen = [row["id"] for row in found]
            if change.date_given:
                for row in found:
                    if row["status"] != "created":
                        raise StoreConflict(f"mailing {row['id']} is {row['status']}")
                started = await connection.fetch(Q["written_messages"], chosen)
                if started:
                    raise StoreConflict(f"mailing {started[0]['mailing_id']} has started: {started[0]['written']} "
                                        "of its messages are sent or being sent")
            return int(await connection.fetchval(Q["update_mailings"], chosen, change.name, change.date_given,
                                                 change.send_at))

    @translated
    async def cancel(self, mailing_id: int) -> Canceled | None:
        """Cancel what is not yet being submitted, or None when the mailing does not exist or
        was already ended or canceled."""
        row = await self._pool.fetchrow(Q["cancel_mailing"], mailing_id)
        return Canceled(row["status"], row["canceled"]) if row else None

    @translated
    async def pause(self, mailing_id: int, settle_s: float = 10.0) -> int | None:
        """Hold a sending mailing's waiting messages (how many), or None when it is not
        sending. Answered once the messages a dispatcher had already taken are written and
        answered (at most `settle_s`), so that nothing more of it is written afterwards,
        but the parts left of a message already begun."""
        held = await self._pool.fetchval(Q["pause_mailing"], mailing_id)
        if held is None:
            return None
        deadline = asyncio.get_running_loop().time() + settle_s
        while await self._pool.fetchval(Q["mailing_in_hand"], mailing_id):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("pause_not_settled", mailing_id=mailing_id, settle_s=settle_s)
                break
            await asyncio.sleep(0.05)
        return int(held)

    async def act(self, mailing_id: int, action: str) -> Acted:
        """Pause, resume or cancel, as every door asks it (HTTP, the monitor, the command
        line); StoreConflict says why when there is nothing to do."""
        if action == "pause":
            if (held := await self.pause(mailing_id)) is None:
                raise StoreConflict(f"mailing {mailing_id} is not sending: only a mailing sending can be paused")
            return Acted(held, "paused")
        if action == "resume":
            if (queued := await self.resume(mailing_id)) is None:
                raise StoreConflict(f"mailing {mailing_id} is not paused")
            return Acted(queued, "created")
        if action == "cancel":
            if (canceled := await self.cancel(mailing_id)) is None:
                raise StoreConflict(f"mailing {mailing_id} has nothing left to cancel")
            return Acted(canceled.messages, canceled.status)
        raise ValueError(f"{action}: pause, resume or cancel")

    @translated
    async def resume(self, mailing_id: int) -> int | None:
        """A paused mailing sending again: how many messages are queued again, or None when
        it was not paused."""
        async with self._pool.acquire() as connection, connection.transaction():
            if await connection.fetchval(Q["resume_mailing"], mailing_id) is None:
                return None
            return int(await connection.fetchval(Q["resume_messages"], mailing_id))

    @translated
    async def cancel_messages(self, account_id: int, message_ids: list[int]) -> int:
        """Cancel those of the account's messages not yet being submitted; how many."""
        return int(await self._pool.fetchval(Q["cancel_messages"], account_id, message_ids))

    @translated
    async def owner(self, mailing_id: int) -> Owner | None:
        row = await self._pool.fetchrow(Q["mailing_owner"], mailing_id)
        return Owner(row["id"], row["account_id"], row["account"]) if row else None

    @translated
    async def owns(self, account_id: int, mailing_id: int) -> bool:
        return await self._pool.fetchval(Q["api_mailing_of"], account_id, mailing_id) is not None

    @translated
    async def end_finished(self) -> int:
        """Mailings whose every message is final become `ended`, each told in one canonical
        log line (its messages by status, how long it took); how many."""
        ended = await self._pool.fetch(Q["end_mailings"])
        for row in ended:
            log.info("mailing_ended", mailing_id=row["id"], account=row["account"], channel=row["source"],
                     duration_s=round(row["duration_s"], 1), statuses=json.loads(row["statuses"]))
        return len(ended)

    @translated
    async def purge(self, horizon: timedelta, batch: int, dry_run: bool = False) -> Purged:
        """Remove what is older than `horizon`, `batch` mailings a transaction, until none
        is left; with `dry_run`, count it all in one transaction rolled back."""
        if dry_run:
            async with self._pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    return Purged(**one(await connection.fetchrow(Q["purge"], horizon, None)))
                finally:
                    await transaction.rollback()
        total = Purged()
        while True:
            batch_purged = Purged(**one(await self._pool.fetchrow(Q["purge"], horizon, batch)))
            total += batch_purged
            if batch_purged == Purged():
                return total


async def _earlier(connection: Connection, submission: Submission) -> Enqueued | None:
    await connection.execute(Q["lock_submission"], f"{submission.account_id}:{submission.source_ref}")
    earlier = await connection.fetchrow(Q["recent_mailing"], submission.account_id, submission.source_ref,
                                        submission.dedupe_window)
    if earlier is None:
        return None
    if earlier["request_hash"] != submission.request_hash:
        raise StoreConflict(f"{submission.source_ref} was used for other parameters")
    return Enqueued(earlier["id"], earlier["messages"], earlier["parts"], duplicate=True)


def _message_rows(submission: Submission, composition: Composition) -> list[tuple[Any, ...]]:
    """(recipient, text, encoding, segments, line, date, after_s, sender id, flash, priority,
    validity, zones): a message is due `after_s` after the later of its date (None: none)
    and now, in the database's clock (see messages_insert); spread, packet k (of `volume`
    messages, in their order) is due k x `delay_min` minutes later."""
    options = submission.sender_id, submission.flash, submission.priority, submission.validity_min
    volume, delay = submission.spread or (1, 0)
    return [(m.recipient, m.text, m.encoding, m.segments, m.line, m.send_at, index // volume * delay * 60, *options,
             submission.zones[index] if submission.zones else None)
            for index, m in enumerate(composition.messages)]


def _due(date: datetime | None, after_s: int, now: datetime) -> datetime:
    """The SQL's rule, for COPY (which computes nothing): see messages_insert."""
    return max(date or now, now) + timedelta(seconds=after_s)


async def _insert_messages(connection: Connection, mailing_id: int, submission: Submission,
                           composition: Composition) -> None:
    rows = _message_rows(submission, composition)
    account_id = submission.account_id
    if len(rows) <= _COPY_FROM:
        await connection.execute(Q["messages_insert"], mailing_id, account_id, *columns(rows, 12))
    else:
        now = await connection.fetchval(Q["database_now"])
        await connection.copy_records_to_table("messages", columns=_MESSAGE_COLUMNS, records=[
            (mailing_id, account_id, *row[:5], _due(row[5], row[6], now), *row[7:]) for row in rows])
