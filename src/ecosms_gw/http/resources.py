"""The seed's resources (section 3): sms, mailing, status, smsstatus and stats, each
action one function of a `Call`. Every read is scoped by the caller's account; another
account's ids are answered exactly as ids that do not exist."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from ecosms_gw.config import Config
from ecosms_gw.core import numbers, ping
from ecosms_gw.core.accounts import ADDRESS, Account, InvalidSender, Spread
from ecosms_gw.core.gsm import MODES
from ecosms_gw.http import mailings, optouts, params
from ecosms_gw.http.params import ApiError
from ecosms_gw.http.render import Listed
from ecosms_gw.http.status_cache import StatusCache
from ecosms_gw.ingest import pipeline
from ecosms_gw.store import Store, StoreConflict
from ecosms_gw.store.mailings import ReplyRouting
from ecosms_gw.store.reads import (
    MAILING,
    MAILING_DEFAULT,
    REPLY,
    SMS,
    SMS_CREATED,
    STATUS,
    Filter,
    Listing,
    Page,
    Resource,
    Stats,
)

log = structlog.get_logger()

STATS = tuple(field.name for field in dataclasses.fields(Stats) if field.name not in ("period", "stops"))
STATS_ASKED = (*STATS, "stops")  # `stops` only when asked: the seed's default stays as it was
# The names a resource sorts by -> the key its query sorts by.
SORT_MESSAGES = {"id": "id", "date": "date", "status": "status", "recipient": "recipient", "smsId": "id"}
SORT_MAILINGS = {"id": "id", "date": "date", "name": "name"}

Answer = tuple[int, dict[str, Any] | Listed]
IDEMPOTENCY_WINDOW = timedelta(hours=24)  # a create repeated with its key within it sends nothing


@dataclass
class Call:
    """One authenticated /rest call: its account, parameters and the account's time zone
    (the API's dates are in it, as in its mail bodies)."""
    store: Store
    config: Config
    statuses: StatusCache
    account: Account
    params: dict[str, Any]
    zone: ZoneInfo
    idempotency_key: str | None = None  # the create's Idempotency-Key header

    @property
    def account_id(self) -> int:
        assert self.account.id is not None, "accounts read from the store have an id"
        return self.account.id

    def chosen(self, resource: Resource, default: tuple[str, ...] | None = None) -> list[str]:
        """The properties asked for (checked before the query: a bad one is a 400)."""
        return params.properties(self.params, resource.names, resource.names if default is None else default)

    def listed(self, listing: Listing, resource: Resource, chosen: list[str]) -> Listed:
        total = listing.total if params.flag(self.params, "total") else None
        return Listed(listing.size, total, listing.items, chosen, chosen == list(resource.names))


def page_of(values: dict[str, Any], sorts: dict[str, str]) -> Page:
    limit, offset = params.page(values)
    sort, descending = params.sort(values, sorts)
    return Page(sort, descending, limit, offset)


async def read_sms(call: Call) -> Answer:
    values = call.params
    page = page_of(values, SORT_MESSAGES)
    since, until = params.date_range(values, call.zone)
    way = params.single(values, "way") or "mt"
    if way not in ("mt", "mo"):
        raise ApiError(400, "way: mt or mo")
    where = Filter(params.ids(values, "id"), params.values(values, "recipient"), params.values(values, "mailingName"),
                   params.ids(values, "mailingId"), since, until)
    reads, zone = call.store.reads, call.zone.key
    if way == "mo":
        chosen = call.chosen(REPLY, ("id",))
        return 200, call.listed(await reads.replies(call.account_id, where, page, zone), REPLY, chosen)
    chosen = call.chosen(SMS, ("id",))
    return 200, call.listed(await reads.messages(call.account_id, where, page, zone), SMS, chosen)


async def create_sms(call: Call) -> Answer:
    outcome = await _create(call, at_most=1, zone=call.zone.key)
    names = list(SMS_CREATED.names)
    if outcome.created is not None:
        document = Listed(outcome.messages, None, outcome.created, names, True).document()
    else:  # stored on its own (Idempotency-Key), perhaps by an earlier call: read back
        assert outcome.mailing_id is not None, "a duplicate names the mailing stored first"
        stored = await call.store.reads.messages(call.account_id, Filter(mailing_ids=[outcome.mailing_id]),
                                                 Page(), call.zone.key)
        document = Listed(outcome.messages, None, stored.items, names, False).document()
    return 201, document["list"][0] | {"dropped": outcome.report.dropped_document()}


async def create_mailing(call: Call) -> Answer:
    outcome = await _create(call, at_most=params.MAX_CONTACTS, spread=_spread(call.params))
    return 201, {"id": outcome.mailing_id, "name": params.single(call.params, "name"),
                 "messages": outcome.messages, "parts": outcome.parts,
                 "dropped": outcome.report.dropped_document(), "warnings": outcome.report.warnings}


async def _create(call: Call, at_most: int, zone: str | None = None, spread: Spread | None = None) -> pipeline.Outcome:
    """An sms or a mailing, composed exactly as a mail body with these contacts would be."""
    values = call.params
    text = params.single(values, "text")
    if not text:
        raise ApiError(417, "text is required")
    people = params.contacts(values, at_most)
    date = params.single(values, "date")
    send_at = params.moment(date, call.zone, "date")[0] if date else None
    name = params.single(values, "name")
    if name is not None and len(name) > 200:
        raise ApiError(400, "name: at most 200 characters")
    ping_url = params.single(values, "pingUrl") or None
    if ping_url and (problem := ping.url_problem(ping_url)):
        raise ApiError(400, f"pingUrl: {problem}")
    options = pipeline.Options(name, ping_url, _sender_id(call), params.choice(values, "encoding", MODES),
                               params.flag(values, "flash"), params.whole(values, "priority", 0, 3),
                               params.whole(values, "validity", 5, 4320), spread, _reply_routing(values), text=text)
    body = params.body(call.account.code, text, people, send_at)
    key = call.idempotency_key
    if key is not None:
        options = dataclasses.replace(options, request_hash=hashlib.sha256(
            json.dumps(values, sort_keys=True).encode()).hexdigest())
    try:
        outcome = pipeline.counted("http", await pipeline.enqueue(
            call.store, call.config, call.account, [body], size=len(text) * len(people), source="http",
            source_ref=None if key is None else f"idempotency-key:{key}",
            dedupe_window=None if key is None else IDEMPOTENCY_WINDOW, options=options, zone=zone))
    except StoreConflict:
        raise ApiError(422, "Idempotency-Key: used within 24 h for a call with other parameters") from None
    if outcome.report.refusal is not None:
        raise ApiError(400, f"{outcome.report.refusal.reason}: {outcome.report.refusal.detail}")
    return outcome


def _spread(values: dict[str, Any]) -> Spread | None:
    """`batchVolume` messages every `batchDelay` minutes: both or neither."""
    volume, delay = params.whole(values, "batchVolume", 1, 100_000), params.whole(values, "batchDelay", 1, 1440)
    if (volume is None) != (delay is None):
        raise ApiError(400, "batchVolume and batchDelay go together")
    return None if volume is None or delay is None else Spread(volume, delay)


def _sender_id(call: Call) -> str | None:
    """`sender` (one of the account's sender ids) and `type` (2: replies wanted, which needs
    a numeric sender id)."""
    kind = params.choice(call.params, "type", ("1", "2"))
    try:
        return call.account.sender_id(params.single(call.params, "sender") or None, numeric=kind == "2")
    except InvalidSender as error:
        raise ApiError(400, str(error)) from None


def _reply_routing(values: dict[str, Any]) -> ReplyRouting | None:
    """`email`, `emailSender` and `emailSubject`: where and how this mailing's replies are
    mailed, each instead of the account's."""
    email, sender = params.single(values, "email") or None, params.single(values, "emailSender") or None
    subject = params.single(values, "emailSubject") or None
    for name, address in (("email", email), ("emailSender", sender)):
        if address is not None and not ADDRESS.fullmatch(address):
            raise ApiError(400, f"{name}: {address!r} is not an address like jane@example.com")
    if subject is not None and (len(subject) > 200 or not subject.isprintable()):
        raise ApiError(400, "emailSubject: at most 200 characters, on one line")
    return ReplyRouting(email, sender, subject) if email or sender or subject else None


async def read_mailing(call: Call) -> Answer:
    values = call.params
    page = page_of(values, SORT_MAILINGS)
    chosen = call.chosen(MAILING, MAILING_DEFAULT)
    listing = await call.store.reads.mailings(call.account_id, params.ids(values, "id"), params.values(values, "name"),
                                              page, call.zone.key, "stats" in chosen)
    return 200, call.listed(listing, MAILING, chosen)


async def cancel_sms(call: Call) -> Answer:
    found = params.ids(call.params, "id")
    if not found:
        raise ApiError(417, "id is required: the messages to cancel")
    count = await call.store.mailings.cancel_messages(call.account_id, found)
    if not count:
        raise ApiError(304, "nothing to cancel: sent already, or no such message")
    log.info("messages_canceled", account=call.account.code, messages=count)
    return 200, {"count": count}


async def read_status(call: Call) -> Answer:
    values = call.params
    page = page_of(values, SORT_MESSAGES)
    where = Filter(ids=params.ids(values, "smsId"), mailing_names=params.values(values, "mailingName"),
                   mailing_ids=params.ids(values, "mailingId"))
    chosen = call.chosen(STATUS)
    if where.mailing_ids and not where.ids and not where.mailing_names:
        listing = await call.statuses.statuses(call.store.reads, call.account_id, where, page, call.zone.key)
    else:
        listing = await call.store.reads.messages(call.account_id, where, page, call.zone.key, "status")
    return 200, call.listed(listing, STATUS, chosen)


async def status_queue(call: Call) -> Answer:
    limit, _ = params.page(call.params)
    chosen = call.chosen(STATUS)
    return 200, call.listed(await call.store.reads.status_queue(call.account_id, limit, call.zone.key), STATUS,
                            chosen)


async def read_history(call: Call) -> Answer:
    found = params.ids(call.params, "smsId")
    if not found:
        raise ApiError(417, "smsId is required")
    limit, offset = params.page(call.params)
    chosen = call.chosen(STATUS)
    return 200, call.listed(await call.store.reads.history(call.account_id, found, limit, offset, call.zone.key),
                            STATUS, chosen)


async def read_stats(call: Call) -> Answer:
    values = call.params
    mailing_ids, names = params.ids(values, "mailingId"), params.values(values, "mailingName")
    month = params.single(values, "month")
    if month and (mailing_ids or names):
        raise ApiError(400, "month cannot be combined with mailingId or mailingName")
    since, until = params.between(values, call.zone)
    if month:
        if since or until:
            raise ApiError(400, "month cannot be combined with dateStart or dateEnd")
        since, until = params.month_range(month, call.zone)
    period = params.choice(values, "period", ("day", "month"))
    chosen = params.properties(values, STATS_ASKED, STATS)
    shown = ["period", *chosen] if period else chosen
    rows = await call.store.reads.stats(call.account_id, mailing_ids, names, since, until, period, call.zone.key)
    return 200, {"size": len(rows), "total": None,
                 "list": [{name: getattr(stats, name) for name in shown} for stats in rows]}


async def read_numbers(call: Call) -> Answer:
    """Up to 2,000 numbers checked by the rules a mailing of this account follows."""
    found = params.values(call.params, "number")
    if not found:
        raise ApiError(417, "number is required: a comma list or number[0]= array, up to 2,000")
    rules = call.account.rules(call.config.defaults)
    opted_out = await call.store.known.opt_outs(call.account_id)
    chosen = params.properties(call.params, (*numbers.PROPERTIES, numbers.HISTORY), numbers.PROPERTIES)
    checked = [numbers.check(number, rules.country, rules.international, opted_out).document() for number in found]
    if numbers.HISTORY in chosen:
        e164 = [str(item["e164"]) for item in checked if item["e164"]]
        changes = await call.store.optouts.history(call.account_id, e164, call.zone.key)
        for item in checked:
            item[numbers.HISTORY] = [change.document() for change in changes.get(str(item["e164"]), [])]
    return 200, {"size": len(checked), "total": None,
                 "list": [{name: item[name] for name in chosen} for item in checked]}


Handler = Callable[[Call], Awaitable[Answer]]
ROUTES: dict[tuple[str, str], Handler] = {
    ("sms", "read"): read_sms, ("sms", "create"): create_sms, ("sms", "delete"): cancel_sms,
    ("mailing", "read"): read_mailing, ("mailing", "create"): create_mailing,
    ("mailing", "delete"): mailings.cancel, ("mailing", "update"): mailings.update,
    ("mailing", "pause"): mailings.pause, ("mailing", "resume"): mailings.resume,
    ("status", "read"): read_status, ("status", "queue"): status_queue,
    ("smsstatus", "read"): read_history,
    ("stats", "read"): read_stats, ("number", "read"): read_numbers,
    ("optout", "read"): optouts.read, ("optout", "create"): optouts.add, ("optout", "delete"): optouts.remove,
}
