"""PostgreSQL: the only module that imports asyncpg.

All SQL lives in `sql/` (numbered migrations, named queries). Driver errors leave this
module as `StoreUnavailable` (temporary: retry later, SMTP 451) or `StoreError`
(permanent), so that callers never see asyncpg.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any, NamedTuple, ParamSpec, TypeVar

import asyncpg
import structlog

from .accounts import Account
from .compose import Composition

log = structlog.get_logger()

WORK_CHANNEL = "ecosms_work"
HEARTBEAT_S = 5.0  # a daemon's heartbeat; three missed and its links count as unbound
ALIVE = timedelta(seconds=3 * HEARTBEAT_S)
_MIGRATION_LOCK = 0x6563_6F73_6D73  # advisory lock key: one migrator at a time
_TEMPORARY = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError, asyncpg.exceptions.CannotConnectNowError,
)
_COPY_FROM = 100  # messages; fewer go in one INSERT, which saves COPY's extra round trips
_MESSAGE_COLUMNS = ("mailing_id", "account_id", "recipient", "text", "encoding", "segments",
                    "line", "due_at")


class StoreError(Exception):
    """A database operation that cannot succeed as asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is overloaded: a temporary fault of ours."""


class StoreConflict(StoreError):
    """The operation collides with existing data (a duplicate account code...)."""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool connections are handed back as they are: the store never changes session state
    (no SET, no LISTEN, no session lock left held), so asyncpg's reset query on every
    release would be one wasted round trip per operation."""


P = ParamSpec("P")
T = TypeVar("T")


def _translated(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Driver errors to the project's own, keeping the cause."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except StoreError:
            raise
        except asyncpg.UniqueViolationError as error:
            raise StoreConflict(error.detail or str(error)) from error
        except _TEMPORARY as error:
            raise StoreUnavailable(f"database unavailable: {error}") from error
        except asyncpg.PostgresError as error:
            raise StoreError(f"database error: {error}") from error
    return wrapper


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("sql/queries.sql").read_text(encoding="utf-8")
    queries = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, sql = block.partition("\n")
        queries[name.strip()] = sql.strip()
    return queries


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files(__package__).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        if match := re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name):
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


Q = _load_queries()


@dataclass(frozen=True, slots=True)
class Enqueued:
    mailing_id: int
    messages: int
    parts: int
    duplicate: bool = False  # an earlier mailing of the same source: nothing was stored


class Mail(NamedTuple):
    to: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Answered:
    """The message a reply answers."""
    message_id: int
    text: str
    account: str
    reply_email: str | None


@dataclass(frozen=True, slots=True)
class Purged:
    mailings: int = 0
    messages: int = 0
    events: int = 0
    replies: int = 0
    pings: int = 0
    mails: int = 0
    early_receipts: int = 0


@dataclass(frozen=True, slots=True)
class Daemon:
    key: int
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    owner: int | None
    owner_host: str | None
    owner_pid: int | None
    bound_since: datetime | None  # None: no living daemon has it bound
    tps: int
    tps_now: float
    window_size: int
    in_flight: int
    routes: tuple[str, ...]
    in_doubt: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """What `ecosms-gw status` shows: every daemon on this database, every SMSC link."""
    daemons: list[Daemon]
    links: list[Link]
    queued: int
    oldest_due_s: float
    mail_backlog: int
    mail_failed: int
    ping_backlog: int


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    mailing_id: int
    account_id: int
    recipient: str
    text: str
    encoding: str
    segments: int
    attempts: int
    sender_id: str | None = None
    account_tps: int | None = None


_ACCOUNT_FIELDS = tuple(f.name for f in fields(Account))


def _patterns(prefixes: tuple[str, ...]) -> list[str]:
    """Route prefixes as LIKE patterns on E.164 recipients: `*` is any, `33` is `+33%`."""
    return ["%" if prefix == "*" else "+" + prefix.lstrip("+").replace("%", "").replace("_", "") + "%"
            for prefix in prefixes]


def _account(row: asyncpg.Record) -> Account:
    values = {name: row[name] for name in _ACCOUNT_FIELDS}
    values["senders"] = tuple(values["senders"])
    return Account(**values)


def _account_values(account: Account) -> list[Any]:
    """The account's columns after code/id, in the order of the insert and update queries."""
    return [account.name, list(account.senders), account.smtp_password, account.ftp_password,
            account.api_secret, account.country, account.timezone, account.international,
            account.mode, account.sender_id, account.reply_email, account.ping_url,
            account.max_messages, account.tps, account.submission_report]


class Worker:
    """This daemon's registration: a connection holding the advisory lock of its key for
    as long as the daemon lives. When it dies, so does the lock, and its claims are
    returned to the queue by the next `reap_dead_workers`."""

    def __init__(self, key: int, connection: asyncpg.Connection) -> None:
        self.key = key
        self._connection = connection
        self._busy = asyncio.Lock()  # one query at a time on this connection

    @_translated
    async def watch(self, interval_s: float = HEARTBEAT_S) -> None:
        """The heartbeat, until the lock connection fails (then the daemon must stop)."""
        while True:
            async with self._busy:
                await self._connection.execute(Q["worker_beat"], self.key, timeout=interval_s)
            await asyncio.sleep(interval_s)

    @_translated
    async def own(self, resource: str) -> bool:
        """Try to become the one daemon serving `resource` (an SMSC connection), for as
        long as this daemon lives; when it dies, another one takes over."""
        async with self._busy:
            return await self._connection.fetchval(Q["own_resource"], resource)

    @_translated
    async def close(self) -> None:
        try:
            await self._connection.execute("DELETE FROM workers WHERE key = $1", self.key)
        finally:
            await self._connection.close()


class Store:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn

    @classmethod
    @_translated
    async def open(cls, dsn: str, *, max_connections: int = 10) -> Store:
        # Custom plans: the API's optional filters (`$2 IS NULL OR ...`) are planned with their
        # values, so an index serves whichever filter is given. Every other statement
        # handles a batch, where planning costs nothing in comparison.
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_connections,
                                         command_timeout=60, timeout=10, reset=_keep_session,
                                         server_settings={"plan_cache_mode": "force_custom_plan"})
        return cls(pool, dsn)

    async def close(self) -> None:
        await self._pool.close()

    @_translated
    async def ping(self) -> None:
        await self._pool.fetchval(Q["ping"], timeout=5)

    # ------------------------------------------------------------ schema

    @_translated
    async def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction, one migrator at a time."""
        applied: list[int] = []
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
                done = {row["version"] for row in await connection.fetch(
                    "SELECT version FROM schema_migrations")}
                for version, name, sql in _migrations():
                    if version in done:
                        continue
                    async with connection.transaction():
                        await connection.execute(sql)
                        await connection.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            version, name)
                    log.info("migration_applied", version=version, name=name)
                    applied.append(version)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied

    # ------------------------------------------------------------ accounts

    @_translated
    async def add_account(self, account: Account) -> Account:
        row = await self._pool.fetchrow(Q["account_insert"], account.code, *_account_values(account))
        return _account(row)

    @_translated
    async def account(self, code: str) -> Account | None:
        row = await self._pool.fetchrow(Q["account_by_code"], code)
        return _account(row) if row else None

    @_translated
    async def accounts(self) -> list[tuple[Account, int]]:
        """Every account with its number of mailings."""
        return [(_account(row), row["mailings"]) for row in await self._pool.fetch(Q["account_list"])]

    @_translated
    async def update_account(self, account: Account) -> Account:
        row = await self._pool.fetchrow(Q["account_update"], account.id, *_account_values(account))
        if row is None:
            raise StoreError(f"account {account.code} no longer exists")
        return _account(row)

    @_translated
    async def remove_account(self, account: Account) -> None:
        """Only an account that never sent: its mailings keep their history."""
        async with self._pool.acquire() as connection, connection.transaction():
            mailings = await connection.fetchval(Q["account_mailing_count"], account.id)
            if mailings:
                raise StoreConflict(f"account {account.code} has {mailings} mailings")
            await connection.execute(Q["account_delete"], account.id)

    # ------------------------------------------------------------ submissions

    @_translated
    async def opt_outs(self, account_id: int) -> frozenset[str]:
        """Numbers that asked this account to stop (STOP replies)."""
        return frozenset(row["recipient"] for row in await self._pool.fetch(Q["opt_outs"], account_id))

    @_translated
    async def enqueue(self, account_id: int, source: str, source_ref: str | None,
                      composition: Composition, report: dict[str, Any],
                      dedupe_window: timedelta | None = None, name: str | None = None,
                      ping_url: str | None = None) -> Enqueued:
        """One mailing and all its messages in one transaction (COPY), and a wake-up for the
        dispatchers that fires at commit. Once this returns, the submission is durable.

        With `dedupe_window`, a mailing of the same account and `source_ref` within the
        window is returned instead (`duplicate=True`), checked under a lock so that two
        copies arriving at once cannot both pass.

        A date in the past means now: a message is due at the later of its date and its
        acceptance, so it is never older than its submission (and the maximum age counts
        from then). The mailing keeps the date as written, which the API shows."""
        now = datetime.now(timezone.utc)

        def due(send_at: datetime | None) -> datetime:
            return send_at if send_at is not None and send_at > now else now

        async with self._pool.acquire() as connection, connection.transaction():
            if dedupe_window and source_ref:
                await connection.execute(Q["lock_submission"], f"{account_id}:{source_ref}")
                earlier = await connection.fetchrow(Q["recent_mailing"], account_id,
                                                    source_ref, dedupe_window)
                if earlier is not None:
                    return Enqueued(earlier["id"], earlier["messages"], earlier["parts"], duplicate=True)
            mailing_id = await connection.fetchval(
                Q["mailing_insert"], account_id, source, source_ref, composition.send_at,
                len(composition.messages), composition.parts, json.dumps(report), name, ping_url)
            messages = composition.messages
            if len(messages) <= _COPY_FROM:
                columns = list(zip(*((m.recipient, m.text, m.encoding, m.segments, m.line,
                                      due(m.send_at)) for m in messages)))
                await connection.execute(Q["messages_insert"], mailing_id, account_id, *columns)
            else:
                await connection.copy_records_to_table(
                    "messages", columns=_MESSAGE_COLUMNS,
                    records=[(mailing_id, account_id, m.recipient, m.text, m.encoding, m.segments,
                              m.line, due(m.send_at)) for m in messages])
        return Enqueued(mailing_id, len(composition.messages), composition.parts)

    # ------------------------------------------------------------ dispatch

    @_translated
    async def register_worker(self) -> Worker:
        """A fresh worker key, locked on a connection of its own for the daemon's life."""
        connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            while True:
                key = secrets.randbits(63)
                if await connection.fetchval(Q["worker_lock"], key):
                    break
            await connection.execute(Q["worker_register"], key, socket.gethostname(), os.getpid())
        except BaseException:
            await connection.close()
            raise
        return Worker(key, connection)

    @_translated
    async def reap_dead_workers(self, in_doubt: str = "unknown") -> int:
        """Work of daemons that died: claims go back to the queue, messages they had
        started writing follow the in-doubt policy. Returns how many were returned."""
        row = await self._pool.fetchrow(Q["workers_reap"], in_doubt)
        if row["returned"] or row["in_doubt"]:
            log.warning("dead_worker_reaped", returned=row["returned"], in_doubt=row["in_doubt"],
                        policy=in_doubt)
        return row["returned"]

    @_translated
    async def report_link(self, name: str, owner: int, routes: tuple[str, ...], tps: int, window: int,
                          bound: bool, tps_now: float, in_flight: int) -> None:
        """A link as its daemon sees it now; a standby never overwrites a living owner."""
        await self._pool.execute(Q["link_report"], name, owner, list(routes), tps, window, bound,
                                 tps_now, in_flight)

    @_translated
    async def bound_links(self) -> dict[str, tuple[str, ...]]:
        """Links bound now by a living daemon, with their routes: the cluster's routing."""
        return {row["name"]: tuple(row["routes"]) for row in await self._pool.fetch(Q["bound_links"], ALIVE)}

    @_translated
    async def links(self) -> list[Link]:
        """Every SMSC link the cluster knows, with the living daemon serving it (if any)."""
        return [Link(**{**row, "routes": tuple(row["routes"])})
                for row in await self._pool.fetch(Q["cluster_links"], ALIVE)]

    @_translated
    async def cluster(self) -> Cluster:
        daemons = [Daemon(**row) for row in await self._pool.fetch(Q["cluster_daemons"])]
        links = await self.links()
        queued, oldest_s = await self.queue_state()
        backlog = await self._pool.fetchrow(Q["notification_backlog"])
        return Cluster(daemons, links, queued, oldest_s, backlog["mail"], backlog["mail_failed"],
                       backlog["pings"])

    @_translated
    async def claim(self, limit: int, worker: int, routes: tuple[str, ...] = ("*",),
                    excluded: tuple[str, ...] = ()) -> list[Claimed]:
        """Due messages for one connection: `routes` are recipient prefixes (`*`: any),
        `excluded` the prefixes a more specific connection serves now."""
        rows = await self._pool.fetch(Q["claim_due"], limit, worker, _patterns(routes),
                                      _patterns(excluded))
        return [Claimed(*row) for row in rows]

    @_translated
    async def record_submissions(self, smsc: str, parts: list[tuple[int, int, str]], done: list[int],
                                 failed: list[tuple[int, str, str, str]], mark: Sequence[int] = ()) -> set[int]:
        """In one transaction: parts the SMSC accepted (message id, seq, SMSC message id),
        messages whose every part is accepted (now `on`), messages that failed (id, status,
        code, description), and messages about to be written (`mark`: "being submitted",
        their parts created). Receipts that came before these answers are applied now.
        Returns the marked messages that may be written (one canceled since its claim is
        left out)."""
        columns = [list(column) for column in zip(*parts)] or [[], [], []]
        failures = [list(column) for column in zip(*failed)] or [[], [], [], []]
        return set(await self._pool.fetchval(Q["record_submissions"], smsc, *columns, done, *failures, list(mark)))

    @_translated
    async def apply_receipts(self, smsc: str, receipts: list[tuple[str, str, str | None]]) -> tuple[int, int]:
        """Final part states (SMSC message id, part state, code) in one transaction, and the
        messages they decide. Receipts for parts not recorded yet are kept for later.
        Returns (applied, kept)."""
        if not receipts:
            return 0, 0
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["lock_smsc_parts"], smsc)
            rows = await connection.fetch(Q["apply_receipts"], smsc, *map(list, zip(*receipts)))
            matched = {row["smsc_message_id"] for row in rows}
            unmatched = [receipt for receipt in receipts if receipt[0] not in matched]
            early: list[tuple[str, str, str | None]] = []
            if unmatched:
                known = {row["smsc_message_id"] for row in await connection.fetch(
                    Q["known_parts"], smsc, [receipt[0] for receipt in unmatched])}
                early = [receipt for receipt in unmatched if receipt[0] not in known]
                if early:
                    await connection.execute(Q["keep_pending_receipts"], smsc, *map(list, zip(*early)))
            if rows:
                await connection.fetchval(Q["settle_messages"], list({row["message_id"] for row in rows}))
        return len(matched), len(early)

    @_translated
    async def record_reply(self, smsc: str, source: str, destination: str, text: str, stop: bool,
                           mail: Callable[[Answered], Mail | None]) -> Answered | None:
        """Store a message from a phone; the message it answers (if any) becomes `rep`, with
        `stop` the number is opted out of that account, and the mail `mail` makes of it
        is queued, all in one transaction. Returns what it answers."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(Q["record_reply"], smsc, source, destination, text, stop)
            answered = Answered(**row) if row else None
            if answered is not None and (outgoing := mail(answered)) is not None:
                await connection.execute(Q["queue_mail"], *outgoing)
        return answered

    @_translated
    async def queue_mail(self, mail: Mail) -> None:
        await self._pool.execute(Q["queue_mail"], *mail)

    @_translated
    async def claim_mail(self, limit: int, lease: timedelta) -> list[QueuedMail]:
        """Due outgoing mail, leased for `lease` (a daemon that dies while sending leaves it
        to be taken again)."""
        return [QueuedMail(**row) for row in await self._pool.fetch(Q["claim_mail"], limit, lease)]

    @_translated
    async def mail_sent(self, mail_id: int) -> None:
        await self._pool.execute(Q["mail_sent"], mail_id)

    @_translated
    async def mail_failed(self, mail_id: int, retry_in: timedelta, retry_for: timedelta, error: str) -> bool:
        """Try again in `retry_in`, unless it has been tried for `retry_for`: then it is given
        up (True)."""
        return bool(await self._pool.fetchval(Q["mail_failed"], mail_id, retry_in, retry_for, error))

    @_translated
    async def claim_pings(self, limit: int, lease: timedelta) -> list[dict[str, Any]]:
        """Due pings (id, message_id, attempts, created_at, url), leased for `lease`."""
        return [dict(row) for row in await self._pool.fetch(Q["claim_pings"], limit, lease)]

    @_translated
    async def pings_done(self, ping_ids: list[int]) -> None:
        await self._pool.execute(Q["pings_done"], ping_ids)

    @_translated
    async def pings_failed(self, ping_ids: list[int], retry_in: timedelta, retry_for: timedelta) -> int:
        """Try again in `retry_in`, unless they have been tried for `retry_for` already.
        Returns how many are given up."""
        return await self._pool.fetchval(Q["pings_failed"], ping_ids, retry_in, retry_for)

    @_translated
    async def purge(self, horizon: timedelta, batch: int, dry_run: bool = False) -> Purged:
        """Remove what is older than `horizon`, `batch` mailings a transaction, until none
        is left; with `dry_run`, count it all in one transaction rolled back."""
        if dry_run:
            async with self._pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    return Purged(**await connection.fetchrow(Q["purge"], horizon, None))
                finally:
                    await transaction.rollback()
        total = Purged()
        while True:
            row = await self._pool.fetchrow(Q["purge"], horizon, batch)
            total = Purged(**{name: getattr(total, name) + row[name] for name in row.keys()})
            if not any(row.values()):
                return total

    @_translated
    async def end_mailings(self) -> int:
        """Mailings whose every message is final become `ended`; how many."""
        return int((await self._pool.execute(Q["end_mailings"])).split()[-1])

    @_translated
    async def expire(self, max_age: timedelta, receipt_wait: timedelta) -> tuple[int, int]:
        """Messages not sent within `max_age` end `ko`, those without a final receipt
        within `receipt_wait` end `no`: (expired, silent)."""
        row = await self._pool.fetchrow(Q["expire"], max_age, receipt_wait)
        if row["expired"]:
            log.warning("messages_expired", messages=row["expired"])
        if row["silent"]:
            log.warning("receipts_missing", messages=row["silent"])
        return row["expired"], row["silent"]

    @_translated
    async def return_unsent(self, message_ids: list[int]) -> None:
        await self._pool.execute(Q["return_unsent"], message_ids)

    @_translated
    async def cancel(self, mailing_id: int) -> tuple[str, int] | None:
        """Cancel what is not yet being submitted: ('canceled' or 'interrupted', count), or
        None when the mailing does not exist or was already ended or canceled."""
        row = await self._pool.fetchrow(Q["cancel_mailing"], mailing_id)
        return (row["status"], row["canceled"]) if row else None

    @_translated
    async def cancel_messages(self, account_id: int, message_ids: list[int]) -> int:
        """Cancel those of the account's messages not yet being submitted; how many."""
        return await self._pool.fetchval(Q["cancel_messages"], account_id, message_ids)

    @_translated
    async def mailing(self, mailing_id: int) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(Q["mailing_by_id"], mailing_id)
        return dict(row) if row else None

    @_translated
    async def listen(self, on_work: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call `on_work` whenever work is enqueued; returns the coroutine that stops it.
        A lost listener only delays work until the next poll."""
        connection = await asyncpg.connect(self._dsn, timeout=10)
        await connection.add_listener(WORK_CHANNEL, lambda *_: on_work())
        return connection.close

    # ------------------------------------------------------------ reads

    @_translated
    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """One of the `api_*` or `monitor_*` queries of queries.sql, as dicts (their arguments are
        documented there)."""
        return [dict(row) for row in await self._pool.fetch(Q[query], *args)]

    @_translated
    async def status_version(self, account_id: int, mailing_ids: list[int]) -> str:
        return await self._pool.fetchval(Q["status_version"], account_id, mailing_ids)

    @_translated
    async def rows_at_version(self, account_id: int, mailing_ids: list[int], query: str,
                              *args: Any) -> tuple[str, list[dict[str, Any]]]:
        """`rows(query, *args)` and the `status_version` of these mailings, seen at the same
        moment (one snapshot)."""
        async with self._pool.acquire() as connection, connection.transaction(isolation="repeatable_read",
                                                                             readonly=True):
            version = await connection.fetchval(Q["status_version"], account_id, mailing_ids)
            return version, [dict(row) for row in await connection.fetch(Q[query], *args)]

    @_translated
    async def api_stats(self, account_id: int, mailing_ids: list[int] | None, names: list[str] | None,
                        month: tuple[datetime, datetime] | None) -> dict[str, int]:
        start, end = month or (None, None)
        return dict(await self._pool.fetchrow(Q["api_stats"], account_id, mailing_ids, names, start, end))

    @_translated
    async def queue_state(self) -> tuple[int, float]:
        """(messages waiting, seconds the oldest due one is late)."""
        row = await self._pool.fetchrow(Q["queue_state"])
        return row["queued"], float(row["oldest_s"])

    @_translated
    async def message_counts(self) -> dict[str, int]:
        return {row["status"]: row["n"] for row in await self._pool.fetch(Q["message_counts"])}

    @_translated
    async def owns_mailing(self, account_id: int, mailing_id: int) -> bool:
        return await self._pool.fetchval(Q["api_mailing_of"], account_id, mailing_id) is not None

    @_translated
    async def setting(self, name: str, default: str) -> str:
        """A value every daemon on this database shares; `default` if it is the first."""
        return await self._pool.fetchval(Q["setting"], name, default)

    @_translated
    async def queue_view(self, account: str | None = None) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._pool.fetch(Q["queue_view"], account)]
