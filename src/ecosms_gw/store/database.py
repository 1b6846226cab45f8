"""Where the database is: the configured server, or an embedded PostgreSQL for a first try.

The embedded one (pgserver, the `embedded` extra) is for evaluation: one machine, unix
socket only. pgserver leaks its server when its process dies without cleanup, so it is
always stopped explicitly here.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from ecosms_gw.config import Config
from ecosms_gw.errors import GatewayError

log = structlog.get_logger()


class DatabaseSetupError(GatewayError):
    """The database could not be provided (no embedded extra, data dir unusable...)."""


@contextlib.asynccontextmanager
async def database_dsn(config: Config) -> AsyncIterator[str]:
    """The DSN to connect to, for as long as the context lasts."""
    if config.database.dsn:
        yield config.database.dsn
        return
    # pgserver asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is unset.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pgserver  # noqa: PLC0415 - optional: only the embedded default needs it
    except ImportError:
        raise DatabaseSetupError(
            "database.dsn is empty and the embedded PostgreSQL is not installed: "
            "set database.dsn, or pip install 'ecosms-gw[embedded]'") from None
    pgdata = Path(config.database.data_dir) / "pgdata"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as error:  # pgserver raises whatever its subprocesses did
        raise DatabaseSetupError(f"embedded PostgreSQL in {pgdata} did not start: {error}") from error
    log.warning("embedded_database", pgdata=str(pgdata),
                note="for evaluation only: set database.dsn to a PostgreSQL server in production")
    try:
        await asyncio.to_thread(server.psql, "ALTER SYSTEM SET max_wal_size = '256MB'; SELECT pg_reload_conf();")
        yield server.get_uri()
    finally:
        await asyncio.to_thread(server.cleanup)
