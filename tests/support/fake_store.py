"""An in-memory store for the unit tier: the accounts and the intake of mailings, with
the behaviour the contract tests (tests/store/test_contract.py) pin down on PostgreSQL
too. Only what the intake pipeline uses."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ecosms_gw.core.accounts import Account
from ecosms_gw.core.compose import Composition
from ecosms_gw.store import StoreConflict, StoreError
from ecosms_gw.store.intake import GroupCommit
from ecosms_gw.store.mailings import Enqueued, Pending, Submission


@dataclass
class StoredMailing:
    id: int
    submission: Submission
    composition: Composition
    report: dict[str, Any]
    created_at: datetime


@dataclass
class FakeAccounts:
    rows: dict[int, Account] = field(default_factory=dict)
    mailing_counts: dict[int, int] = field(default_factory=dict)
    opted_out: dict[int, set[str]] = field(default_factory=dict)

    async def add(self, account: Account) -> Account:
        if await self.get(account.code) is not None:
            raise StoreConflict(f"Key (lower(code))=({account.code.lower()}) already exists.")
        stored = replace(account, id=len(self.rows) + 1)
        self.rows[stored.id] = stored  # type: ignore[index]
        return stored

    async def get(self, code: str) -> Account | None:
        return next((a for a in self.rows.values() if a.code.lower() == code.lower()), None)

    async def all(self) -> list[tuple[Account, int]]:
        return [(a, self.mailing_counts.get(a.id or 0, 0)) for a in sorted(self.rows.values(),
                                                                            key=lambda a: a.code.lower())]

    async def update(self, account: Account) -> Account:
        if account.id not in self.rows:
            raise StoreError(f"account {account.code} no longer exists")
        self.rows[account.id] = account
        return account

    async def remove(self, account: Account) -> None:
        if mailings := self.mailing_counts.get(account.id or 0, 0):
            raise StoreConflict(f"account {account.code} has {mailings} mailings")
        self.rows.pop(account.id or 0, None)

    async def opt_outs(self, account_id: int) -> frozenset[str]:
        return frozenset(self.opted_out.get(account_id, set()))


@dataclass
class FakeMailings:
    accounts: FakeAccounts
    stored: list[StoredMailing] = field(default_factory=list)

    async def enqueue(self, submission: Submission, composition: Composition, report: dict[str, Any]) -> Enqueued:
        now = datetime.now(UTC)
        if submission.dedupe_window and submission.source_ref:
            for earlier in self.stored:
                if (earlier.submission.account_id, earlier.submission.source_ref) == \
                        (submission.account_id, submission.source_ref) and \
                        earlier.created_at > now - submission.dedupe_window:
                    return Enqueued(earlier.id, len(earlier.composition.messages), earlier.composition.parts, True)
        mailing = StoredMailing(len(self.stored) + 1, submission, composition, report, now)
        self.stored.append(mailing)
        counts = self.accounts.mailing_counts
        counts[submission.account_id] = counts.get(submission.account_id, 0) + 1
        return Enqueued(mailing.id, len(composition.messages), composition.parts)

    async def enqueue_many(self, pending: list[Pending]) -> list[Enqueued]:
        stored = [await self.enqueue(p.submission, p.composition, p.report) for p in pending]
        return [replace(e, items="[]" if p.zone else None) for e, p in zip(stored, pending, strict=True)]


class FakeStore:
    def __init__(self) -> None:
        self.accounts = FakeAccounts()
        self.known = self.accounts  # nothing to keep: the rows are in memory already
        self.mailings = FakeMailings(self.accounts)
        self.intake = GroupCommit(self.mailings.enqueue_many, Pending.size)

    async def opt_out(self, account_id: int, number: str) -> None:
        """What a STOP reply does, for the tests (the store does it in record_reply)."""
        self.accounts.opted_out.setdefault(account_id, set()).add(number)
