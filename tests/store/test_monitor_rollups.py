"""The monitor's rollups against a real PostgreSQL: every status event of a complete step
counted once, per account and for all, however many daemons roll up at once."""

from __future__ import annotations

import asyncio

import asyncpg

from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store
from ecosms_gw.store.dispatch import Failed
from ecosms_gw.store.mailings import Submission
from tests.support.samples import composition
from tests.support.smsc import apply_receipts


async def sent(store: Store, code: str, count: int, failing: int) -> None:
    """`count` messages of a new account submitted on link `main`, each with its receipt
    (delivered), but `failing` refused by the SMSC (code 0045)."""
    account = await store.accounts.add(Account(id=None, code=code))
    await store.mailings.enqueue(Submission(account.id, "http", None), composition(count), {})
    claimed: list[int] = []
    while len(claimed) < count:  # a claim may take fewer than asked (the scheduler's shares)
        claimed += [c.id for c in await store.dispatch.claim(count - len(claimed), worker=1)]
    await store.dispatch.record_submissions("main", [], [], [], mark=claimed)
    refused, accepted = claimed[:failing], claimed[failing:]
    await store.dispatch.record_submissions("main", [(m, 1, f"{code}-{m}") for m in accepted], accepted,
                                            [Failed(m, "ko", "0045", "ESME_RINVDSTADR") for m in refused])
    await apply_receipts(store, "main", [(f"{code}-{m}", "delivered", "000") for m in accepted])


async def test_each_event_is_rolled_up_once_per_account_and_for_all(store: Store, dsn: str) -> None:
    await sent(store, "ACME", 30, failing=3)
    await sent(store, "BETA", 10, failing=0)
    connection = await asyncpg.connect(dsn)
    # the events happened a minute ago: their steps are complete
    await connection.execute("UPDATE status_events SET created_at = created_at - interval '1 minute'")
    steps = await asyncio.gather(*(store.monitor.sample() for _ in range(4)))  # four daemons at once
    # a first start rolls up the last 2 minutes (not an hour of nothing), by one of them
    assert 10 <= sum(steps) <= 11 and sorted(steps)[:-1] == [0, 0, 0]
    assert await store.monitor.sample() == 0  # nothing new is complete
    acme = await connection.fetchval("SELECT id FROM accounts WHERE code = 'ACME'")
    await connection.close()

    every, one = await store.monitor.charts(None), await store.monitor.charts(acme)
    per_second = {name: round(sum(line) * 10) for name, line in every.submitted.lines.items()}
    assert per_second == {"main": 37}
    assert {name: round(sum(line) * 10) for name, line in every.finals.lines.items()} == {"ok": 37, "ko": 3}
    assert {name: round(sum(line) * 10) for name, line in one.finals.lines.items()} == {"ok": 27, "ko": 3}
    assert [(e.code, e.description, e.n) for e in every.top_errors] == [("0045", "ESME_RINVDSTADR", 3)]
    assert every.delivery_rate.lines["delivered %"][-1] == round(100 * 37 / 40, 1)
    assert one.delivery_rate.lines["delivered %"][-1] == 90.0
    assert set(every.latency.lines) == {"p50", "p95"}
