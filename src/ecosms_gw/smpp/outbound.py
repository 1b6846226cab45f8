"""Receipts and replies to SMPP clients: taken from the outbox for the accounts bound
here as receivers or transceivers, sent as deliver_sm over their binds (spread across
them), deleted once acknowledged, and retried with backoff otherwise. A daemon that dies
with some taken leaves them to the next, when the lease ends: a client may see one twice,
never none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import structlog

from ecosms_gw.core.ratelimit import backoff
from ecosms_gw.smpp.codec import ESME_ROK
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.outbox import Outgoing

log = structlog.get_logger()

TAKE = 1_000  # deliver_sm taken at once
LEASE = timedelta(seconds=60)
KEEP = timedelta(hours=24)
IDLE_S = 0.2  # nothing to send (or nobody bound): how long until the next look


class Receiver(Protocol):
    async def deliver(self, fields: dict[str, Any]) -> int: ...


def deliver_fields(outgoing: Outgoing) -> dict[str, Any]:
    """The deliver_sm of a receipt (esm_class 0x04, with the receipted_message_id and
    message_state TLVs) or of a reply (Latin-1 when it fits, else UCS-2; a long one in
    message_payload)."""
    alphanumeric = not outgoing.destination.isdigit()
    fields: dict[str, Any] = {"source_addr": outgoing.source, "source_addr_ton": 1, "source_addr_npi": 1,
                              "destination_addr": outgoing.destination,
                              "dest_addr_ton": 5 if alphanumeric else 1, "dest_addr_npi": 0 if alphanumeric else 1}
    if outgoing.kind == "receipt":
        return fields | {"esm_class": 0x04, "data_coding": 0, "short_message": outgoing.body.encode("ascii", "replace"),
                         "receipted_message_id": str(outgoing.message_id), "message_state": outgoing.state}
    try:
        coding, payload = 0x03, outgoing.body.encode("latin-1")
    except UnicodeEncodeError:
        coding, payload = 0x08, outgoing.body.encode("utf-16-be")
    if len(payload) > 254:
        return fields | {"esm_class": 0, "data_coding": coding, "short_message": b"", "message_payload": payload}
    return fields | {"esm_class": 0, "data_coding": coding, "short_message": payload}


class Outbound:
    def __init__(self, store: Store, receivers: Callable[[], Mapping[int, Sequence[Receiver]]]) -> None:
        self.store = store
        self.receivers = receivers

    async def run(self) -> None:
        while True:
            bound = self.receivers()
            try:
                batch = await self.store.outbox.take(list(bound), TAKE, LEASE, KEEP) if bound else []
                if batch:
                    await self._send(batch, bound)
                    continue
            except StoreError as error:
                log.warning("smpp_outbox_unavailable", error=str(error))
            await asyncio.sleep(IDLE_S)

    async def _send(self, batch: list[Outgoing], bound: Mapping[int, Sequence[Receiver]]) -> None:
        """Each to one of its account's binds, in turn; all at once (each bind has its window)."""
        turns: dict[int, int] = {}

        def receiver(account_id: int) -> Receiver:
            turn = turns[account_id] = turns.get(account_id, -1) + 1
            binds = bound[account_id]
            return binds[turn % len(binds)]

        statuses = await asyncio.gather(*(receiver(o.account_id).deliver(deliver_fields(o)) for o in batch),
                                        return_exceptions=True)
        acknowledged = [o.id for o, status in zip(batch, statuses, strict=True) if status == ESME_ROK]
        again = [(o.id, backoff(o.attempts, cap=300.0)) for o, status in zip(batch, statuses, strict=True)
                 if status != ESME_ROK]
        if again:
            log.info("smpp_deliver_not_acknowledged", count=len(again))
        await self.store.outbox.acknowledged(acknowledged)
        if again:
            await self.store.outbox.retry(again)
