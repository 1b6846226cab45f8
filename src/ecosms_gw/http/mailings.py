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


PAST = {"cancel": "canceled", "pause": "paused", "resume": "resumed"}


async def _act(call: Call, action: str, nothing_status: int = 400) -> Answer:
    """Pause, resume or cancel the account's mailing `id`; with nothing to do, the
    reason as `nothing_status`."""
    mailing_id = await _own_mailing(call, action)
    with _about(call, mailing_id):
        try:
            acted = await call.store.mailings.act(mailing_id, action)
        except StoreConflict as conflict:
            raise ApiError(nothing_status, str(conflict)) from None
        log.info(f"mailing_{PAST[action]}", status=acted.status, messages=acted.messages)
    return 200, {"count": acted.messages, "status": acted.status}


async def cancel(call: Call) -> Answer:
    return await _act(call, "cancel", nothing_status=304)  # the seed's answer


async def pause(call: Call) -> Answer:
    """Nothing more of it is written once this is answered (but the parts left of a
    message already begun)."""
    return await _act(call, "pause")


async def resume(call: Call) -> Answer:
    return await _act(call, "resume")
