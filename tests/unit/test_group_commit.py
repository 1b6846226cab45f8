"""The group commit's grouping and the accounts kept in memory, with stand-ins for the
database (tests/system/test_intake.py has them on real parts)."""

from __future__ import annotations

import asyncio

import pytest

from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.store import StoreError, StoreUnavailable
from ecosms_gw.store.cache import FRESH_S, AccountCache
from ecosms_gw.store.intake import MAX_GROUP_MESSAGES, GroupCommit
from ecosms_gw.store.mailings import Enqueued, Pending, Submission


def pending(recipients: int = 1) -> Pending:
    body = "U-A\nT-hi\n" + "".join(f"#-+336{n:08d}\n" for n in range(recipients))
    return Pending(Submission(1, "http"), compose(parse_all([body]), AccountRules(max_messages=20_000)), {})


class Recorder:
    """Mailings that record each statement's group; the first statement waits for `go`."""

    def __init__(self, fail_when: int | None = None) -> None:
        self.groups: list[int] = []
        self.go = asyncio.Event()
        self.fail_when = fail_when

    async def enqueue_many(self, group: list[Pending]) -> list[Enqueued]:
        self.groups.append(len(group))
        await self.go.wait()
        if self.fail_when == len(self.groups):
            raise StoreUnavailable("connection lost")
        first = sum(self.groups[:-1])
        return [Enqueued(first + k, len(p.composition.messages), p.composition.parts) for k, p in enumerate(group)]


async def test_the_first_is_written_at_once_and_those_that_came_meanwhile_together() -> None:
    mailings = Recorder()
    intake = GroupCommit(mailings.enqueue_many, Pending.size)
    calls = [asyncio.create_task(intake.enqueue(pending()))]
    await asyncio.sleep(0.01)
    calls += [asyncio.create_task(intake.enqueue(pending())) for _ in range(49)]
    await asyncio.sleep(0.01)
    assert mailings.groups == [1]  # no timer: the first did not wait for company
    mailings.go.set()
    answers = await asyncio.gather(*calls)
    assert mailings.groups == [1, 49]
    assert [a.mailing_id for a in answers] == list(range(50))  # each its own, in order


async def test_a_failed_statement_fails_its_whole_group_and_only_it() -> None:
    mailings = Recorder(fail_when=2)
    intake = GroupCommit(mailings.enqueue_many, Pending.size)
    first = asyncio.create_task(intake.enqueue(pending()))
    await asyncio.sleep(0)
    group = [asyncio.create_task(intake.enqueue(pending())) for _ in range(3)]
    await asyncio.sleep(0)
    mailings.go.set()
    assert (await first).mailing_id == 0
    for call in group:
        with pytest.raises(StoreError, match="connection lost"):
            await call
    assert (await intake.enqueue(pending())).mailing_id == 4  # and the next one is written again


async def test_a_group_holds_at_most_max_group_messages_but_always_one_mailing() -> None:
    mailings = Recorder()
    mailings.go.set()
    intake = GroupCommit(mailings.enqueue_many, Pending.size)
    large = MAX_GROUP_MESSAGES // 2 + 1
    await asyncio.gather(*(intake.enqueue(pending(large)) for _ in range(3)))
    assert mailings.groups == [1, 1, 1]


class Accounts:
    def __init__(self) -> None:
        self.reads = 0
        self.secret = "one"

    async def get(self, code: str) -> Account | None:
        self.reads += 1
        await asyncio.sleep(0)  # a round trip
        return Account(id=1, code="ACME", api_secret=self.secret) if code.lower() == "acme" else None

    async def opt_outs(self, account_id: int) -> frozenset[str]:
        self.reads += 1
        return frozenset({"+33600000001"})


async def test_accounts_are_kept_only_while_their_changes_are_heard_and_never_past_fresh_s() -> None:
    accounts, now = Accounts(), [0.0]
    cache = AccountCache(accounts, clock=lambda: now[0])  # type: ignore[arg-type]
    await cache.get("ACME")
    await cache.get("ACME")
    assert accounts.reads == 2  # not listening: nothing kept
    cache.listen(True)
    for code in ("ACME", "acme", "Acme"):
        assert (await cache.get(code)).api_secret == "one"  # type: ignore[union-attr]
    assert await cache.opt_outs(1) == await cache.opt_outs(1) == {"+33600000001"}
    assert accounts.reads == 4
    accounts.secret = "two"
    cache.changed()  # a notification
    assert (await cache.get("ACME")).api_secret == "two"  # type: ignore[union-attr]
    accounts.secret = "three"
    now[0] += FRESH_S  # a notification lost: the copy is read again anyway
    assert (await cache.get("ACME")).api_secret == "three"  # type: ignore[union-attr]
    assert await cache.get("nobody") is None and await cache.get("nobody") is None
    assert accounts.reads == 8  # unknown codes are asked each time


async def test_a_read_that_began_before_a_change_is_not_kept() -> None:
    accounts = Accounts()
    cache = AccountCache(accounts)  # type: ignore[arg-type]
    cache.listen(True)
    reading = asyncio.create_task(cache.get("ACME"))
    await asyncio.sleep(0)
    cache.changed()
    await reading
    await cache.get("ACME")
    assert accounts.reads == 2
