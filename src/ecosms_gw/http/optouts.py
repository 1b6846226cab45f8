"""The `optout` resource: an account's opt-out list, read (also as CSV), added to (also
from a CSV body) and removed from; each change goes into the number's history as `api`
or `import`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from ecosms_gw.core import numbers
from ecosms_gw.http import params
from ecosms_gw.http.params import ApiError
from ecosms_gw.store.reads import OPTOUT, Page

if TYPE_CHECKING:
    from ecosms_gw.http.resources import Answer, Call

log = structlog.get_logger()


def _numbers(call: Call) -> list[str]:
    """The `number` list of an opt-out change (or the numbers of a CSV body), in E.164 by
    the account's default country (any country: a list may hold numbers the account cannot
    send to); all or a 400."""
    csv_body = params.single(call.params, "csv")
    found = numbers.listed(csv_body.splitlines()) if csv_body else params.values(call.params, "number")
    if not found:
        raise ApiError(417, "number is required: a comma list or number[0]= array")
    e164, bad = numbers.e164_all(found, call.account.rules(call.config.defaults).country)
    if bad:
        raise ApiError(400, f"number: not phone numbers: {', '.join(bad[:10])}")
    return e164


async def read(call: Call) -> Answer:
    values = call.params
    limit, offset = params.page(values)
    since, until = params.between(values, call.zone)
    found = params.values(values, "number")
    listing = await call.store.optouts.list(call.account_id, found, since, until, Page(limit=limit, offset=offset),
                                            call.zone.key)
    return 200, call.listed(listing, OPTOUT, call.chosen(OPTOUT))


async def add(call: Call) -> Answer:
    source = "import" if params.single(call.params, "csv") else "api"
    added = await call.store.optouts.add(call.account_id, _numbers(call), source, source)
    log.info("opt_outs_added", account=call.account.code, numbers=added, source=source)
    return 201, {"count": added}


async def remove(call: Call) -> Answer:
    removed = await call.store.optouts.remove(call.account_id, _numbers(call), "api")
    log.info("opt_outs_removed", account=call.account.code, numbers=removed, source="api")
    return 200, {"count": removed}
