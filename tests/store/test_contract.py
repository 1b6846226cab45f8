"""The store's contract for the intake: one class of tests, run against the in-memory
fake of the unit tier and against PostgreSQL, so that the fake cannot drift."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store, StoreConflict, StoreError
from ecosms_gw.store.mailings import Pending, Submission
from tests.support.fake_store import FakeStore
from tests.support.samples import composition


@pytest.fixture(params=["fake", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """"fake", or the DSN of a fresh PostgreSQL database (asked only for that one)."""
    return "fake" if request.param == "fake" else str(request.getfixturevalue("dsn"))


@pytest.fixture
async def contract_store(backend: str) -> AsyncIterator[Any]:
    if backend == "fake":
        yield FakeStore()
        return
    store = await Store.open(backend)

    async def opt_out(account_id: int, number: str) -> None:
        connection = await asyncpg.connect(backend)
        await connection.execute("INSERT INTO opt_outs (account_id, recipient, reason) VALUES ($1, $2, 'test')",
                                 account_id, number)
        await connection.close()

    store.opt_out = opt_out  # type: ignore[attr-defined]
    yield store
    await store.close()


class TestIntakeContract:
    async def test_an_account_is_found_by_its_code_in_any_case(self, contract_store: Any) -> None:
        added = await contract_store.accounts.add(Account(id=None, code="AcMe", name="Acme", senders=("@acme.test",)))
        assert added.id is not None
        assert await contract_store.accounts.get("acme") == added
        assert await contract_store.accounts.get("OTHER") is None

    async def test_a_code_is_unique_whatever_its_case(self, contract_store: Any) -> None:
        await contract_store.accounts.add(Account(id=None, code="ACME"))
        with pytest.raises(StoreConflict):
            await contract_store.accounts.add(Account(id=None, code="acme"))

    async def test_accounts_are_listed_by_code_with_their_mailings(self, contract_store: Any) -> None:
        beta = await contract_store.accounts.add(Account(id=None, code="beta"))
        await contract_store.accounts.add(Account(id=None, code="ALPHA"))
        await contract_store.mailings.enqueue(Submission(beta.id, "smtp"), composition(2), {})
        assert [(a.code, n) for a, n in await contract_store.accounts.all()] == [("ALPHA", 0), ("beta", 1)]

    async def test_an_update_is_read_back_and_a_gone_account_refused(self, contract_store: Any) -> None:
        added = await contract_store.accounts.add(Account(id=None, code="ACME"))
        changed = await contract_store.accounts.update(replace(added, name="Acme Ltd", tps=5))
        assert await contract_store.accounts.get("ACME") == changed
        with pytest.raises(StoreError):
            await contract_store.accounts.update(replace(added, id=999))

    async def test_only_an_account_that_never_sent_is_removed(self, contract_store: Any) -> None:
        sent = await contract_store.accounts.add(Account(id=None, code="SENT"))
        idle = await contract_store.accounts.add(Account(id=None, code="IDLE"))
        await contract_store.mailings.enqueue(Submission(sent.id, "ftp"), composition(1), {})
        with pytest.raises(StoreConflict, match="1 mailings"):
            await contract_store.accounts.remove(sent)
        await contract_store.accounts.remove(idle)
        assert await contract_store.accounts.get("IDLE") is None

    async def test_a_mailing_is_counted_as_stored(self, contract_store: Any) -> None:
        account = await contract_store.accounts.add(Account(id=None, code="ACME"))
        enqueued = await contract_store.mailings.enqueue(Submission(account.id, "http"), composition(3, segments=2), {})
        assert (enqueued.messages, enqueued.parts, enqueued.duplicate) == (3, 6, False)

    async def test_a_group_stores_each_mailing_and_answers_each_its_own(self, contract_store: Any) -> None:
        account = await contract_store.accounts.add(Account(id=None, code="ACME"))
        group = [Pending(Submission(account.id, "http"), composition(count), {}, zone)
                 for count, zone in ((1, "Europe/Paris"), (3, None), (2, None))]
        stored = await contract_store.mailings.enqueue_many(group)
        assert [(e.messages, e.parts, e.duplicate) for e in stored] == [(1, 1, False), (3, 3, False), (2, 2, False)]
        assert len({e.mailing_id for e in stored}) == 3
        assert stored[0].items is not None and stored[1].items is None  # the messages, where asked
        assert [count for _, count in await contract_store.accounts.all()] == [3]

    async def test_the_same_source_within_the_window_is_a_duplicate(self, contract_store: Any) -> None:
        account = await contract_store.accounts.add(Account(id=None, code="ACME"))
        window = timedelta(hours=24)
        first = await contract_store.mailings.enqueue(Submission(account.id, "smtp", "<a@x>", window), composition(2), {})
        again = await contract_store.mailings.enqueue(Submission(account.id, "smtp", "<a@x>", window), composition(5), {})
        other = await contract_store.mailings.enqueue(Submission(account.id, "smtp", "<b@x>", window), composition(1), {})
        unchecked = await contract_store.mailings.enqueue(Submission(account.id, "smtp", "<a@x>"), composition(1), {})
        assert (again.mailing_id, again.messages, again.duplicate) == (first.mailing_id, 2, True)
        assert not other.duplicate and not unchecked.duplicate
        assert len({first.mailing_id, other.mailing_id, unchecked.mailing_id}) == 3

    async def test_opt_outs_are_per_account(self, contract_store: Any) -> None:
        acme = await contract_store.accounts.add(Account(id=None, code="ACME"))
        other = await contract_store.accounts.add(Account(id=None, code="OTHER"))
        assert await contract_store.accounts.opt_outs(acme.id) == frozenset()
        await contract_store.opt_out(acme.id, "+33600000001")
        assert await contract_store.accounts.opt_outs(acme.id) == {"+33600000001"}
        assert await contract_store.accounts.opt_outs(other.id) == frozenset()
