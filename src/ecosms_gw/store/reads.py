"""Reads for the HTTP API, the monitor and `ecosms-gw queue`: typed filters in, typed
rows out. Each API resource's properties are named once, in the tables below; the
queries of reads.sql are completed with the JSON objects these tables describe."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from ecosms_gw.store.connector import one, queries, translated

View = Literal["sms", "status"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the property, as the API shows it
    column: str  # its column in the row `r` of the read
    time: bool = False  # a moment, shown in the account's time zone


@dataclass(frozen=True, slots=True)
class Resource:
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    def json(self, zone: str) -> str:
        """The SQL of one row's JSON object; `zone` is the parameter holding the time zone."""
        values = (f"to_char({f.column} AT TIME ZONE {zone}, 'YYYY-MM-DD HH24:MI:SS')" if f.time else f.column
                  for f in self.fields)
        return "json_build_object(" + ", ".join(f"'{f.name}', {value}"
                                                for f, value in zip(self.fields, values, strict=True)) + ")"


SMS = Resource((
    Field("id", "r.id"), Field("status", "r.status"), Field("text", "r.text"), Field("date", "r.date", time=True),
    Field("recipient", "r.recipient"), Field("mailingId", "r.mailing_id"), Field("mailingName", "r.mailing_name"),
    Field("code", "r.code"), Field("description", "r.description"), Field("response", "r.response"),
    Field("segments", "r.segments"), Field("encoding", "r.encoding"), Field("parts", "part.parts"),
    Field("sender", "r.sender_id"), Field("flash", "r.flash"), Field("email", "r.reply_email"),
    Field("emailSender", "r.reply_from"), Field("emailSubject", "r.reply_subject"),
    Field("dialingCode", "dialing_code(r.recipient)"), Field("pingUrl", "r.ping_url"),
    Field("priority", "r.priority"), Field("validity", "r.validity_min")))
# The answer to an sms create, written by the insert itself: the seed's properties and the
# sender id chosen. The other options are the caller's own, echoed by reads when asked
# (each property is a cost on the busiest path: 7 more made single creates 11% slower).
SMS_CREATED = Resource(tuple(f for f in SMS.fields if f.name in (
    "id", "status", "text", "date", "recipient", "mailingId", "mailingName", "code", "description", "response",
    "segments", "encoding", "parts", "sender"))
)
REPLY = Resource((
    Field("id", "r.id"), Field("text", "r.text"), Field("date", "r.date", time=True),
    Field("recipient", "r.recipient"), Field("smsId", "r.sms_id"), Field("mailingId", "r.mailing_id"),
    Field("mailingName", "r.mailing_name")))
STATUS = Resource((
    Field("smsId", "r.id"), Field("status", "r.status"), Field("recipient", "r.recipient"),
    Field("mailingId", "r.mailing_id"), Field("date", "r.status_date", time=True), Field("code", "r.code"),
    Field("description", "r.description"), Field("response", "r.response")))
MAILING = Resource((
    Field("id", "r.id"), Field("name", "r.name"), Field("status", "r.status"), Field("text", "r.text"),
    Field("date", "r.date", time=True), Field("messages", "r.messages"), Field("parts", "r.parts"),
    Field("source", "r.source"), Field("createdAt", "r.created_at", time=True), Field("sender", "r.sender"),
    Field("pingUrl", "r.ping_url"), Field("email", "r.reply_email"), Field("emailSender", "r.reply_from"),
    Field("emailSubject", "r.reply_subject"), Field("paused", "r.status = 'paused'"), Field("stats", "r.stats")))
MAILING_DEFAULT = tuple(name for name in MAILING.names if name != "stats")  # counted only when asked
OPTOUT = Resource((Field("number", "r.number"), Field("date", "r.date", time=True), Field("reason", "r.reason")))
RESOURCES = {"optout": OPTOUT, "sms": SMS, "sms_created": SMS_CREATED, "reply": REPLY, "status": STATUS,
             "mailing": MAILING}


def completed(sql: str) -> str:
    """`/*json:RESOURCE:ZONE*/` replaced by the JSON object of a row `r`; ZONE is the
    parameter (`$N`) or the column (`r.zone`) that holds the time zone."""
    return re.sub(r"/\*json:(\w+):(\$\d+|r\.\w+)\*/", lambda match: RESOURCES[match[1]].json(match[2]), sql)


Q = {name: completed(sql) for name, sql in queries("reads").items()}


@dataclass(frozen=True, slots=True)
class Filter:
    """Which messages or replies: each None is no condition."""
    ids: list[int] | None = None
    recipients: list[str] | None = None
    mailing_names: list[str] | None = None
    mailing_ids: list[int] | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    sort: str = "id"  # a sort key of the read
    descending: bool = False
    limit: int = 2000
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """One read: how many rows, how many before limit and offset, and the rows as a JSON
    array written by PostgreSQL, every property of the resource in its order."""
    size: int
    total: int
    items: str


@dataclass(frozen=True, slots=True)
class Stats:
    wait: int
    ok: int
    on: int
    no: int
    ko: int
    rep: int
    optout: int
    total: int
    stops: int = 0  # the account's STOP replies (when no mailing is named)
    period: str | None = None  # `2026-11-02` or `2026-11`, when counted by period


@dataclass(frozen=True, slots=True)
class QueueState:
    queued: int
    oldest_due_s: float  # how late the oldest due message is
    held: int = 0  # of the queued, held by quiet hours
    paused: int = 0  # held by a pause (not counted as queued)


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """A mailing's messages counted by status."""
    wait: int
    on: int
    ok: int
    ko: int
    rep: int
    no: int


@dataclass(frozen=True, slots=True)
class MailingProgress(StatusCounts):
    """A recent mailing with its progress (the monitor)."""
    id: int
    name: str | None
    account: str
    status: str
    source: str
    messages: int
    created_at: datetime
    send_at: datetime | None


@dataclass(frozen=True, slots=True)
class Waiting(StatusCounts):
    """A mailing with work left, as `ecosms-gw queue` shows it."""
    mailing_id: int
    account: str
    source: str
    mailing_status: str
    created_at: datetime
    send_at: datetime | None
    messages: int
    priority: int | None  # of its waiting messages (3 the most urgent)
    paused: int  # its messages held by a pause
    held: int  # its messages held by quiet hours
    next_attempt: datetime | None
    last_error: str | None


def _listing(row: asyncpg.Record) -> Listing:
    return Listing(row["size"], row["total"], row["list"])


def _messages_args(account_id: int, where: Filter, page: Page, zone: str, view: View) -> tuple[object, ...]:
    return (account_id, where.ids, where.recipients, where.mailing_names, where.mailing_ids, where.since,
            where.until, page.sort, page.descending, page.limit, page.offset, view, zone)


class Reads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def messages(self, account_id: int, where: Filter, page: Page, zone: str, view: View = "sms") -> Listing:
        """Messages sent, as the sms resource or as their current statuses."""
        return _listing(one(await self._pool.fetchrow(
            Q["api_messages"], *_messages_args(account_id, where, page, zone, view))))

    @translated
    async def replies(self, account_id: int, where: Filter, page: Page, zone: str) -> Listing:
        return _listing(one(await self._pool.fetchrow(
            Q["api_replies"], account_id, where.ids, where.recipients, where.mailing_names, where.mailing_ids,
            where.since, where.until, page.sort, page.descending, page.limit, page.offset, zone)))

    @translated
    async def mailings(self, account_id: int, ids: list[int] | None, names: list[str] | None, page: Page,
                       zone: str, stats: bool = False) -> Listing:
        """With `stats`, each mailing's messages counted by status (else `stats` is null)."""
        return _listing(one(await self._pool.fetchrow(
            Q["api_mailings"], account_id, ids, names, page.sort, page.descending, page.limit, page.offset, zone,
            stats)))

    @translated
    async def history(self, account_id: int, sms_ids: list[int], limit: int, offset: int, zone: str) -> Listing:
        """Every status these messages had, oldest first."""
        return _listing(one(await self._pool.fetchrow(Q["api_history"], account_id, sms_ids, limit, offset, zone)))

    @translated
    async def status_queue(self, account_id: int, limit: int, zone: str) -> Listing:
        """The oldest unread status changes, read once."""
        return _listing(one(await self._pool.fetchrow(Q["api_status_queue"], account_id, limit, zone)))

    @translated
    async def status_version(self, account_id: int, mailing_ids: list[int]) -> str:
        """What changes whenever one of these mailings' messages changes."""
        return str(await self._pool.fetchval(Q["status_version"], account_id, mailing_ids))

    @translated
    async def statuses_at_version(self, account_id: int, where: Filter, page: Page,
                                  zone: str) -> tuple[str, Listing]:
        """The statuses of `where.mailing_ids` and their `status_version`, seen at the same
        moment (one snapshot)."""
        async with self._pool.acquire() as connection, connection.transaction(isolation="repeatable_read",
                                                                             readonly=True):
            version = await connection.fetchval(Q["status_version"], account_id, where.mailing_ids)
            row = await connection.fetchrow(Q["api_messages"], *_messages_args(account_id, where, page, zone,
                                                                                "status"))
            return str(version), _listing(one(row))

    @translated
    async def stats(self, account_id: int, mailing_ids: list[int] | None, names: list[str] | None,
                    since: datetime | None, until: datetime | None, period: str | None = None,
                    zone: str = "UTC") -> list[Stats]:
        """Counts of the mailings created in [since, until): one `Stats`, or with `period`
        (day, month: in `zone`) one per period that has any, oldest first."""
        return [Stats(**row) for row in await self._pool.fetch(Q["api_stats"], account_id, mailing_ids, names,
                                                                since, until, period, zone)]

    @translated
    async def queue_state(self) -> QueueState:
        row = one(await self._pool.fetchrow(Q["queue_state"]))
        return QueueState(row["queued"], float(row["oldest_s"]), row["held"], row["paused"])

    @translated
    async def message_counts(self) -> dict[str, int]:
        """Messages by status, counted (for /metrics)."""
        return {row["status"]: row["n"] for row in await self._pool.fetch(Q["message_counts"])}

    @translated
    async def expired_tally(self) -> int:
        """Messages ended unsent (validity, maximum age) since the database was made."""
        return int(await self._pool.fetchval(Q["expired_tally"]))

    @translated
    async def recent_mailings(self, account_id: int | None, limit: int) -> list[MailingProgress]:
        """The latest mailings of an account (None: of all) with their progress."""
        return [MailingProgress(**row) for row in await self._pool.fetch(Q["monitor_mailings"], account_id, limit)]

    @translated
    async def waiting(self, account: str | None = None) -> list[Waiting]:
        """Mailings with work left, like mailq."""
        return [Waiting(**row) for row in await self._pool.fetch(Q["queue_view"], account)]
