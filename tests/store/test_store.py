"""The store against a real PostgreSQL: migrations, accounts, enqueue, claim, crashes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store, StoreConflict, StoreUnavailable
from ecosms_gw.store.dispatch import Take
from ecosms_gw.store.mailings import Submission
from tests.support.fixtures import MIGRATIONS
from tests.support.samples import composition


async def new_account(store: Store, code: str = "ACME") -> Account:
    return await store.accounts.add(Account(id=None, code=code, name="Acme"))


async def test_migrations_apply_from_empty_and_rerun_applies_nothing(empty_database: str) -> None:
    store = await Store.open(empty_database)
    try:
        assert await store.migrate() == MIGRATIONS
        assert await store.migrate() == []
        assert await store.accounts.all() == []
    finally:
        await store.close()


async def test_concurrent_migrators_apply_once(empty_database: str) -> None:
    stores = [await Store.open(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(results) == [[], [], MIGRATIONS]
    finally:
        for store in stores:
            await store.close()


async def test_accounts_add_find_any_case_update_remove(store: Store) -> None:
    added = await new_account(store, "Acme01")
    assert added.id is not None
    assert (await store.accounts.get("ACME01")).code == "Acme01"
    with pytest.raises(StoreConflict):
        await new_account(store, "acme01")
    updated = await store.accounts.update(replace(added, name="New", senders=("@acme.example",)))
    assert (updated.code, updated.name, updated.senders) == ("Acme01", "New", ("@acme.example",))
    await store.accounts.remove(added)
    assert await store.accounts.get("acme01") is None


async def test_an_account_with_mailings_is_not_removed(store: Store) -> None:
    account = await new_account(store)
    await store.mailings.enqueue(Submission(account.id, "smtp", "<id@x>"), composition(1), {})
    with pytest.raises(StoreConflict, match="1 mailings"):
        await store.accounts.remove(account)


async def test_enqueue_claim_submit(store: Store) -> None:
    account = await new_account(store)
    enqueued = await store.mailings.enqueue(Submission(account.id, "ftp", "sha256:ab"), composition(3, segments=2), {"dropped": []})
    assert (enqueued.messages, enqueued.parts) == (3, 6)
    claimed = await store.dispatch.claim(10, worker=1)
    assert [c.recipient for c in claimed] == ["+33600000000", "+33600000001", "+33600000002"]
    assert {(c.mailing_id, c.attempts, c.segments) for c in claimed} == {(enqueued.mailing_id, 1, 2)}
    assert await store.dispatch.claim(10, worker=1) == []
    await store.dispatch.record_submissions("main", [], [], [], mark=[c.id for c in claimed])
    await store.dispatch.record_submissions("main", [(c.id, seq, f"{c.id}-{seq}") for c in claimed
                                            for seq in (1, 2)], [c.id for c in claimed], [])
    assert await store.dispatch.claim(10, worker=1) == []
    view = await store.reads.waiting()
    assert view == []  # nothing waits any more


async def test_released_claims_come_back_without_counting_an_attempt(store: Store) -> None:
    account = await new_account(store)
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(2), {})
    first = await store.dispatch.record_and_take("main", [], [], [], Take(10, 1))
    await store.dispatch.return_unwritten(1, "main")
    again = await store.dispatch.claim(10, worker=2)
    assert [c.id for c in again] == [c.id for c in first]
    assert {c.attempts for c in again} == {1}


async def test_future_messages_wait_for_their_time(store: Store) -> None:
    account = await new_account(store)
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(2, send_at=later), {})
    past = datetime.now(UTC) - timedelta(days=3)
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(1, send_at=past), {})
    claimed = await store.dispatch.claim(10, worker=1)
    assert len(claimed) == 1
    view = await store.reads.waiting("acme")
    # Both mailings still wait: one for its time, one being sent (claimed, no next attempt).
    assert [(row.wait, row.next_attempt) for row in view] == [
        (2, later.replace(microsecond=later.microsecond)), (1, None)]


async def test_ten_concurrent_claimers_never_share_a_row(store: Store) -> None:
    """Five accounts' queues: claimers share them (one queue is claimed by one at a time:
    a claim skips a queue another is claiming, and waits for no lock)."""
    for n in range(5):
        account = await new_account(store, f"ACME{n}")
        await store.mailings.enqueue(Submission(account.id, "http", None), composition(2000), {})

    taken: list[int] = []

    async def claimer(worker: int) -> list[int]:
        """Like the pump: an empty take (every queue being claimed) looks again shortly."""
        mine: list[int] = []
        while len(taken) < 10_000:
            batch = [c.id for c in await store.dispatch.claim(100, worker)]
            mine += batch
            taken.extend(batch)
            await asyncio.sleep(0 if batch else 0.02)
        return mine

    results = await asyncio.wait_for(asyncio.gather(*(claimer(n) for n in range(10))), 120)
    every = [message_id for result in results for message_id in result]
    assert len(every) == 10_000
    assert len(set(every)) == 10_000
    assert sum(1 for result in results if result) > 1  # they really shared the work


async def test_claims_of_a_crashed_daemon_return_at_the_next_start(store: Store, dsn: str) -> None:
    account = await new_account(store)
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(30), {})
    crashed = await store.dispatch.register_worker()
    alive = await store.dispatch.register_worker()
    lost = await store.dispatch.claim(20, crashed.key)
    kept = await store.dispatch.claim(5, alive.key)
    # The crashed daemon's connections drop: its lock goes with them.
    admin = await asyncpg.connect(dsn)
    terminated = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
        " AND ((classid::bigint << 32) | objid::bigint) = $1", crashed.key)
    await admin.close()
    assert terminated == 1
    assert await store.dispatch.reap_dead_workers() == 20
    again = await store.dispatch.claim(100, alive.key)
    assert len(again) == 25  # the 20 lost and the 5 never claimed
    assert {c.id for c in lost} <= {c.id for c in again}
    assert not {c.id for c in kept} & {c.id for c in again}
    assert await store.dispatch.reap_dead_workers() == 0  # the live worker keeps its claims
    await alive.close()


async def terminate(dsn: str, where: str, *args: object) -> int:
    """Connections of the database dropped by the server, as a restart drops them."""
    admin = await asyncpg.connect(dsn)
    try:
        return await admin.fetchval(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}",
                                    *args)
    finally:
        await admin.close()


async def test_listeners_hear_of_new_work_and_listen_again_when_dropped(store: Store, dsn: str) -> None:
    account = await new_account(store)
    woken = asyncio.Event()
    listening = asyncio.create_task(store.listen(woken.set))
    try:
        for _ in range(2):
            await asyncio.wait_for(woken.wait(), 5)  # woken once listening: work may have come meanwhile
            woken.clear()
            await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(1), {})
            await asyncio.wait_for(woken.wait(), 5)
            woken.clear()
            assert await terminate(dsn, "query LIKE 'LISTEN%' AND datname = current_database()") == 1
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_a_worker_whose_connection_dropped_takes_its_key_and_links_again(store: Store, dsn: str) -> None:
    """The database dropped the lock connection (a restart): within seconds the same key
    and the same SMSC link are locked again, and no reaper took the daemon for dead."""
    worker = await store.dispatch.register_worker()
    assert await worker.own("main")
    watching = asyncio.create_task(worker.watch(interval_s=0.2))
    try:
        dropped = await terminate(dsn, "pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                                       " AND ((classid::bigint << 32) | objid::bigint) = $1)", worker.key)
        assert dropped == 1
        for expected in (False, True):  # the loss noticed, then the lock taken again
            for _ in range(100):
                if worker.holding is expected:
                    break
                await asyncio.sleep(0.05)
        assert worker.holding and worker.owns("main") and await worker.own("main")
        other = await store.dispatch.register_worker()
        assert not await other.own("main")  # still this daemon's link
        assert [daemon.key for daemon in await store.dispatch.daemons()] == [worker.key, other.key]
        await other.close()
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await worker.close()


async def test_database_down_is_a_temporary_error(pg_server, dsn: str) -> None:
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    store = await Store.open(dsn)
    account = await new_account(store)
    cluster.stop("immediate")
    try:
        with pytest.raises(StoreUnavailable):
            await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(5), {})
    finally:
        cluster.start()
    # Nothing half-written, and the store works again once the server is back.
    for _ in range(50):
        try:
            await store.ping()
            break
        except StoreUnavailable:
            await asyncio.sleep(0.1)
    assert await store.dispatch.claim(10, worker=1) == []
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(5), {})
    assert len(await store.dispatch.claim(10, worker=1)) == 5
    await store.close()


async def test_dialing_code_finds_every_calling_code_phonenumbers_knows(dsn: str, store: Store) -> None:
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
    codes = sorted(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)
    connection = await asyncpg.connect(dsn)
    found = await connection.fetch("SELECT dialing_code('+' || code || '612345678') FROM unnest($1::text[]) AS code",
                                   codes)
    await connection.close()
    assert [row[0] for row in found] == codes
