"""One submission, whatever door it came through (SMTP, FTP, HTTP): bodies to account,
authorisation, composition and one durable enqueue, with a single outcome that each door
turns into its own reply (SMTP code, FTP report file, HTTP status)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

import structlog

from ecosms_gw import metrics
from ecosms_gw.config import Config
from ecosms_gw.core import numbers
from ecosms_gw.core.accounts import Account, Spread
from ecosms_gw.core.compose import Composition, compose
from ecosms_gw.core.mail2sms import Body, Rejected, parse_all
from ecosms_gw.core.report import Report
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Pending, ReplyRouting, Submission

log = structlog.get_logger()

# The refusal for an account this submission may not use, or None.
Authorise = Callable[[Account], Awaitable[Rejected | None]]

# Reasons that come from who sent, not from what was sent.
ACCESS_REASONS = frozenset({"unknown_account", "sender_not_allowed"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a submission: its report (the same for every door), and once stored
    the mailing's size."""

    report: Report
    account: Account | None = None
    messages: int = 0
    parts: int = 0
    created: str | None = None  # the messages as the sms resource shows them (JSON), when asked

    @property
    def accepted(self) -> bool:
        return self.report.refusal is None

    @property
    def reason(self) -> str | None:
        return self.report.refusal.reason if self.report.refusal else None

    @property
    def mailing_id(self) -> int | None:
        return self.report.mailing_id

    @property
    def duplicate(self) -> bool:
        return self.report.duplicate


@dataclass(frozen=True, slots=True)
class Options:
    """What an API call may choose for its mailing; mails and files take the defaults."""

    name: str | None = None
    ping_url: str | None = None
    sender_id: str | None = None  # one of the account's (checked); None: its default
    mode: str | None = None  # text, ucs2 or auto; None: the account's
    flash: bool = False
    priority: int | None = None  # 0-3; None: the account's
    validity_min: int | None = None  # None: the account's
    spread: Spread | None = None  # None: mails and files as the account spreads them, API calls not at all
    replies: ReplyRouting | None = None  # None: replies go the account's way
    request_hash: str | None = None  # with an idempotency key: the call's parameters
    text: str | None = None  # the text as written, shown as the mailing's


SPREAD_BY_DEFAULT = ("smtp", "ftp")  # the sources an account's --batch-volume applies to
INLINE_LIMIT = 256 * 1024  # below this, parsing costs less than a hop to a worker thread
T = TypeVar("T")


async def cpu_bound(size: int, function: Callable[..., T], *args: Any) -> T:
    """Run CPU-bound work on a worker thread when the input is large, so that a 5 MB body
    does not stall every other session, and inline when it is small: a thread hop and the
    GIL ping-pong that follows cost more than parsing a few kilobytes."""
    if size < INLINE_LIMIT:
        return function(*args)
    return await asyncio.to_thread(function, *args)


def counted(channel: str, outcome: Outcome) -> Outcome:
    """Every submission's outcome, whatever its door, in the ingestion counters; a mailing
    accepted is told in one canonical log line (channel, account, counts)."""
    metrics.INGESTED.labels(channel, "duplicate" if outcome.duplicate else outcome.reason or "accepted").inc()
    composition = outcome.report.composition
    if outcome.accepted and not outcome.duplicate and outcome.account and composition is not None:
        dropped = Counter(drop.reason for drop in composition.dropped)
        metrics.INGESTED_MESSAGES.labels(channel).inc(outcome.messages)
        metrics.OPTED_OUT.labels(channel).inc(dropped["opted_out"])
        log.info("mailing_accepted", channel=channel, account=outcome.account.code, mailing_id=outcome.mailing_id,
                 messages=outcome.messages, parts=outcome.parts, dropped=dict(dropped))
    return outcome


def refused(refusal: Rejected, bodies: int, account: Account | None = None) -> Outcome:
    return Outcome(Report.rejected(refusal, bodies), account)


async def submit(store: Store, config: Config, texts: Sequence[str], *, source: str,
                 source_ref: str | None, dedupe_window: timedelta | None,
                 authorise: Authorise) -> Outcome:
    """Parse, authorise, compose and enqueue; `StoreError` (ours, temporary) propagates."""
    size = sum(map(len, texts))
    try:
        bodies = await cpu_bound(size, parse_all, texts)
    except Rejected as refusal:
        return refused(refusal, len(texts))
    account = await store.known.get(bodies[0].account)
    if account is None:
        return refused(Rejected("unknown_account", f"no account {bodies[0].account}"), len(texts))
    if denied := await authorise(account):
        return refused(denied, len(texts), account)
    return await enqueue(store, config, account, bodies, size=size, source=source,
                         source_ref=source_ref, dedupe_window=dedupe_window)


async def enqueue(store: Store, config: Config, account: Account, bodies: list[Body], *, size: int,
                  source: str, source_ref: str | None = None, dedupe_window: timedelta | None = None,
                  options: Options = Options(), zone: str | None = None) -> Outcome:
    """Compose bodies of an account allowed to send them, and store the mailing: with a
    dedupe window on its own (checked under a lock), else committed together with the
    others of the moment. With `zone`, its messages come back as the sms resource shows
    them."""
    with structlog.contextvars.bound_contextvars(account=account.code, channel=source):
        assert account.id is not None, "accounts read from the store have an id"
        opted_out = await store.known.opt_outs(account.id)
        try:
            composition, zones = await cpu_bound(size, _compose, bodies, account, config, opted_out, options.mode)
        except Rejected as refusal:
            return refused(refusal, len(bodies), account)
        accepted = Report.accepted(composition, len(bodies))
        submission = Submission(
            account.id, source, source_ref, dedupe_window, options.name, options.ping_url,
            sender_id=options.sender_id or account.sender_id(), flash=options.flash,
            priority=account.priority if options.priority is None else options.priority,
            validity_min=options.validity_min or (account.validity_hours and account.validity_hours * 60),
            spread=options.spread or (account.spread if source in SPREAD_BY_DEFAULT else None),
            zones=zones,
            replies=options.replies, request_hash=options.request_hash, text=options.text)
        if dedupe_window and source_ref:
            stored = await store.mailings.enqueue(submission, composition, accepted.kept())
        else:
            stored = await store.intake.enqueue(Pending(submission, composition, accepted.kept(), zone))
        if stored.duplicate:
            log.info("mailing_duplicate", mailing_id=stored.mailing_id, account=account.code, source=source)
        return Outcome(replace(accepted, mailing_id=stored.mailing_id, duplicate=stored.duplicate), account,
                       stored.messages, stored.parts, stored.items)

def _compose(bodies: list[Body], account: Account, config: Config, opted_out: frozenset[str],
             mode: str | None) -> tuple[Composition, tuple[str | None, ...] | None]:
    """The composition, and for an account with quiet hours the time zones each recipient
    may be in (comma-separated; None when unknown), looked up with the rest of the CPU work."""
    composition = compose(bodies, account.rules(config.defaults, mode), opted_out)
    if account.quiet_hours is None:
        return composition, None
    return composition, tuple(",".join(numbers.zones(m.recipient)) or None for m in composition.messages)
