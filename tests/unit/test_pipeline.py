"""The intake pipeline every door shares, on the in-memory store: what is accepted,
refused and deduplicated, and the report each door renders."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from ecosms_gw.config import Config
from ecosms_gw.core import report
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.ingest import pipeline
from ecosms_gw.ingest.smtp import reply
from tests.support.fake_store import FakeStore

BODY = "U-ACME\nT-Hello\n#-+33612345678\n#-+33612345679\n"


async def allow(account: Account) -> Rejected | None:
    return None


@pytest.fixture
async def store() -> FakeStore:
    fake = FakeStore()
    await fake.accounts.add(Account(id=None, code="ACME", international=True))
    return fake


async def submit(store: FakeStore, texts: list[str], source_ref: str | None = None, authorise=allow):
    return await pipeline.submit(store, Config(), texts, source="smtp", source_ref=source_ref,  # type: ignore[arg-type]
                                 dedupe_window=timedelta(hours=1), authorise=authorise)


async def test_a_body_is_stored_whole_and_its_report_says_so(store: FakeStore) -> None:
    outcome = await submit(store, [BODY])
    assert outcome.accepted and (outcome.messages, outcome.parts, outcome.mailing_id) == (2, 2, 1)
    assert [m.recipient for m in store.mailings.stored[0].composition.messages] == ["+33612345678", "+33612345679"]
    assert outcome.report.document()["mailing_id"] == 1
    assert reply(outcome) == "250 2.0.0 mailing 1 queued: 2 messages, 2 parts"
    assert store.mailings.stored[0].report == {"dropped": [], "warnings": [], "transliterated": {},
                                               "totals": {"messages": 2, "segments": 2, "dropped": 0}}


async def test_an_unknown_account_is_refused_and_nothing_stored(store: FakeStore) -> None:
    outcome = await submit(store, [BODY.replace("U-ACME", "U-NOBODY")])
    assert outcome.reason == "unknown_account" and outcome.account is None
    assert reply(outcome).startswith("550 5.7.1 unknown_account")
    assert store.mailings.stored == []


async def test_the_doors_refusal_comes_before_composing(store: FakeStore) -> None:
    async def deny(account: Account) -> Rejected | None:
        return Rejected("sender_not_allowed", f"not for {account.code}")

    outcome = await submit(store, ["U-ACME\nT-x\n#-not a number at all\n"], authorise=deny)
    assert outcome.reason == "sender_not_allowed" and outcome.account is not None
    assert store.mailings.stored == []


async def test_a_body_error_names_its_line(store: FakeStore) -> None:
    outcome = await submit(store, ["U-ACME\nD-2017-13-01\nT-x\n#-+33612345678\n"])
    assert outcome.report.refusal == report.Refusal("invalid_date", "D-2017-13-01: month 13", 2, 1)
    assert reply(outcome) == "554 5.6.0 invalid_date (line 2): D-2017-13-01: month 13"


async def test_the_same_source_again_is_a_duplicate(store: FakeStore) -> None:
    first = await submit(store, [BODY], source_ref="message-id:<a@x>")
    again = await submit(store, [BODY], source_ref="message-id:<a@x>")
    assert again.duplicate and again.mailing_id == first.mailing_id and len(store.mailings.stored) == 1
    assert reply(again) == f"250 2.0.0 duplicate of mailing {first.mailing_id}, nothing re-sent"


async def test_opted_out_numbers_are_left_out_and_reported(store: FakeStore) -> None:
    await store.opt_out(1, "+33612345679")
    outcome = await submit(store, [BODY])
    assert outcome.messages == 1
    assert outcome.report.dropped_document() == [{"line": 4, "recipient": "+33612345679", "reason": "opted_out"}]
    text = report.as_text(outcome.report, ZoneInfo("Europe/Paris"))
    assert "Total: 1 messages, 1 parts, 1 recipients left out" in text and "opted_out" in text
