"""PostgreSQL fixtures: one real server per test session, one fresh database per test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from importlib import resources

import asyncpg
import pytest

from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store
from tests.support import postgres

# Every schema version the package ships, in order.
MIGRATIONS = sorted(int(path.name[:4]) for path in resources.files("ecosms_gw.store").joinpath("sql/migrations").iterdir()
                    if path.name.endswith(".sql"))

TEMPLATE = "ecosms_template"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[str, postgres.Cluster | None]]:
    with postgres.server() as (dsn, cluster):
        async def make_template() -> None:
            admin = await asyncpg.connect(dsn)
            await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            await admin.execute(f"CREATE DATABASE {TEMPLATE}")
            await admin.close()
            store = await Store.open(postgres.with_database(dsn, TEMPLATE))
            await store.migrate()
            await store.close()
        asyncio.run(make_template())
        yield dsn, cluster


@pytest.fixture
def empty_database(pg_server: tuple[str, postgres.Cluster | None]) -> str:
    """DSN of a new database without schema."""
    return _create(pg_server[0], "template0")


@pytest.fixture
def dsn(pg_server: tuple[str, postgres.Cluster | None]) -> str:
    """DSN of a new database with the schema applied."""
    return _create(pg_server[0], TEMPLATE)


def _create(admin_dsn: str, template: str) -> str:
    name = f"test_{next(_numbers)}"

    async def create() -> None:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        await admin.close()
    asyncio.run(create())
    return postgres.with_database(admin_dsn, name)


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[Store]:
    opened = await Store.open(dsn, max_connections=20)
    yield opened
    await opened.close()


@pytest.fixture
async def account(store: Store) -> Account:
    """The account ACME, which may send abroad."""
    return await store.accounts.add(Account(id=None, code="ACME", international=True))
