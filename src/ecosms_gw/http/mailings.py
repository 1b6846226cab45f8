"""Changes to a mailing once stored: rename or reschedule (the seed's update), cancel,
pause and resume; each for the account's own mailings only."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import structlog

from ecosms_gw.http import params
from ecosms_gw.http.params import ApiError
from ecosms_gw.store import StoreConflict
from ecosms_gw.store.mailings import Change

if TYPE_CHECKING:
    from ecosms_gw.http.resources import Answer, Call

log = structlog.get_logger()


async def update(call: Call) -> Answer:
    """The seed's update (section 1.5): filters `id` and `name`, and `metaData` with a new
    `name` (at any time) and `date` (while nothing of the mailing was sent)."""
    values = call.params
    ids, names = params.ids(values, "id"), params.values(values, "name")
    if not ids and not names:
        raise ApiError(417, "id or name is required: the mailings to update")
    meta = params.meta_data(values)
    if unknown := sorted(set(meta) - {"name", "date"}):
        raise ApiError(400, f"metaData: {', '.join(unknown)} cannot be changed (name and date can)")
    name = meta.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise ApiError(400, "metaData: name is a text of at most 200 characters")
    date = meta.get("date")
    if date is not None and not isinstance(date, str):
        raise ApiError(400, "metaData: date is a text like 2017-05-07 11:12:25")
    change = Change(name, "date" in meta, params.moment(date, call.zone, "date")[0] if date else None)
    try:
        count = await call.store.mailings.update(call.account_id, ids, names, change)
    except StoreConflict as refusal:
        raise ApiError(400, f"date: {refusal}; only the name can still change") from None
    log.info("mailings_updated", account=call.account.code, mailings=count, renamed=name is not None,
             rescheduled=change.date_given)
    return 200, {"count": count}


def _about(call: Call, mailing_id: int) -> AbstractContextManager[None]:
    """The mailing and its account, bound to every log line of the change."""
    return structlog.contextvars.bound_contextvars(mailing_id=mailing_id, account=call.account.code)


async def _own_mailing(call: Call, verb: str) -> int:
    """The one mailing `id` names, if it is the account's."""
    found = params.ids(call.params, "id")
    if not found or len(found) != 1:
        raise ApiError(417, f"id is required: the mailing to {verb}")
    if not await call.store.mailings.owns(call.account_id, found[0]):
        raise ApiError(404, f"no mailing {found[0]}")
    return found[0]


async def cancel(call: Call) -> Answer:
    mailing_id = await _own_mailing(call, "cancel")
    with _about(call, mailing_id):
        canceled = await call.store.mailings.cancel(mailing_id)
        if canceled is None:
            raise ApiError(304, f"mailing {mailing_id} has nothing left to cancel")
        log.info("mailing_canceled", status=canceled.status, messages=canceled.messages)
    return 200, {"count": canceled.messages, "status": canceled.status}


async def pause(call: Call) -> Answer:
    """Nothing more of it is written once this is answered (but the parts left of a
    message already begun)."""
    mailing_id = await _own_mailing(call, "pause")
    with _about(call, mailing_id):
        held = await call.store.mailings.pause(mailing_id)
        if held is None:
            raise ApiError(400, f"mailing {mailing_id} is not sending: only a mailing sending can be paused")
        log.info("mailing_paused", messages=held)
    return 200, {"count": held, "status": "paused"}


async def resume(call: Call) -> Answer:
    mailing_id = await _own_mailing(call, "resume")
    with _about(call, mailing_id):
        queued = await call.store.mailings.resume(mailing_id)
        if queued is None:
            raise ApiError(400, f"mailing {mailing_id} is not paused")
        log.info("mailing_resumed", messages=queued)
    return 200, {"count": queued, "status": "created"}
