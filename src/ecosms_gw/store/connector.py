"""PostgreSQL: the only package that imports asyncpg.

All SQL lives in `sql/`: numbered migrations, and one file of named queries per module of
this package. Driver errors leave the package as `StoreUnavailable` (temporary: retry
later, SMTP 451) or `StoreError` (permanent), so that callers never see asyncpg.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import asyncpg
import structlog

from ecosms_gw.errors import GatewayError

log = structlog.get_logger()

_MIGRATION_LOCK = 0x6563_6F73_6D73  # advisory lock key: one migrator at a time
_TEMPORARY = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError, asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,  # a connection dropped mid-operation (MagicStack/asyncpg#1069)
)


class StoreError(GatewayError):
    """A database operation that cannot succeed as asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is overloaded: a temporary fault of ours."""


class StoreConflict(StoreError):
    """The operation collides with existing data (a duplicate account code...)."""


P = ParamSpec("P")
T = TypeVar("T")


def translated(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
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


def lost_event(connection: asyncpg.Connection) -> asyncio.Event:
    """Set when the connection ends (closed by the server: a restart, a terminated backend)."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda *_: lost.set())
    return lost


def queries(module: str) -> dict[str, str]:
    """The named queries of `sql/<module>.sql`: each starts with a `-- name:` line."""
    text = resources.files(__package__).joinpath(f"sql/{module}.sql").read_text(encoding="utf-8")
    found = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, sql = block.partition("\n")
        found[name.strip()] = sql.strip()
    return found


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as the arrays `unnest` takes, one per column (`width` of them when no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row a query always returns (an aggregate, a RETURNING of a known row)."""
    if row is None:
        raise StoreError("the database returned no row where one was expected")
    return row


def migrations() -> list[tuple[int, str, str]]:
    folder = resources.files(__package__).joinpath("sql/migrations")
    found = []
    for entry in folder.iterdir():
        if match := re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name):
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool connections are handed back as they are: the store never changes session state
    (no SET, no LISTEN, no session lock left held), so asyncpg's reset query on every
    release would be one wasted round trip per operation."""


async def create_pool(dsn: str, max_connections: int) -> asyncpg.Pool:
    # Custom plans: the API's optional filters (`$2 IS NULL OR ...`) are planned with their
    # values, so an index serves whichever filter is given. Every other statement
    # handles a batch, where planning costs nothing in comparison.
    return await asyncpg.create_pool(dsn, min_size=1, max_size=max_connections,
                                     command_timeout=60, timeout=10, reset=_keep_session,
                                     server_settings={"plan_cache_mode": "force_custom_plan"})


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply pending migrations, each in its own transaction, one migrator at a time."""
    applied: list[int] = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                             version, name)
                log.info("migration_applied", version=version, name=name)
                applied.append(version)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
