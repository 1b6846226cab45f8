"""What comes back from the SMSC: delivery receipts and replies from phones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

import asyncpg

from ecosms_gw.store import notifications, optouts
from ecosms_gw.store.connector import queries, translated
from ecosms_gw.store.notifications import Mail

Q = queries("receipts")


class Receipt(NamedTuple):
    """A final state of one part, by the id the SMSC gave it."""
    smsc_message_id: str
    state: str
    code: str | None


Keyword = Literal["stop", "start"] | None  # what a reply asks of the opt-out list


class PartsKey(NamedTuple):
    """The parts of one message from a phone: the SMSC, who sent it, to whom, its reference."""
    smsc: str
    source: str
    destination: str
    reference: int


class StaleReply(NamedTuple):
    """A message from a phone whose other parts did not come in time."""
    key: PartsKey
    data_coding: int
    payloads: list[bytes]


class Decided(NamedTuple):
    """A part a receipt decided: its final state, and how long after its submission."""
    state: str
    latency_s: float | None


class Applied(NamedTuple):
    applied: int  # receipts that decided a part
    kept: int  # receipts that came before their part was recorded: applied when it is
    decided: tuple[Decided, ...] = ()


@dataclass(frozen=True, slots=True)
class Answered:
    """The message a reply answers."""
    message_id: int
    text: str
    account: str
    reply_email: str | None  # the mailing's `email`, else the account's
    reply_from: str | None  # the mailing's `emailSender`
    reply_subject: str | None  # the mailing's `emailSubject`


class Receipts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def apply(self, smsc: str, receipts: Sequence[Receipt]) -> Applied:
        """Final part states in one transaction, and the messages they decide. Receipts for
        parts not recorded yet are kept for later."""
        if not receipts:
            return Applied(0, 0)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["lock_smsc_parts"], smsc)
            rows = await connection.fetch(Q["apply_receipts"], smsc, *map(list, zip(*receipts, strict=True)))
            matched = {row["smsc_message_id"] for row in rows}
            unmatched = [receipt for receipt in receipts if receipt.smsc_message_id not in matched]
            early: list[Receipt] = []
            if unmatched:
                known = {row["smsc_message_id"] for row in await connection.fetch(
                    Q["known_parts"], smsc, [receipt.smsc_message_id for receipt in unmatched])}
                early = [receipt for receipt in unmatched if receipt.smsc_message_id not in known]
                if early:
                    await connection.execute(Q["keep_pending_receipts"], smsc, *map(list, zip(*early, strict=True)))
            if rows:
                await connection.fetchval(Q["settle_messages"], list({row["message_id"] for row in rows}))
        return Applied(len(matched), len(early), tuple(Decided(row["state"], row["latency_s"]) for row in rows))

    @translated
    async def keep_reply_part(self, key: PartsKey, total: int, seq: int, data_coding: int,
                              payload: bytes) -> list[bytes] | None:
        """Keep one part of a message from a phone; every part's payload in order once all
        `total` are there, else None."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(Q["lock_reply_parts"], *key[:3], str(key.reference))
            rows = await connection.fetch(Q["keep_reply_part"], *key, total, seq, data_coding, payload)
        return [row["payload"] for row in rows] if len(rows) >= total else None

    @translated
    async def stale_reply_parts(self, wait: timedelta) -> list[StaleReply]:
        """Messages from phones whose last part came more than `wait` ago."""
        return [StaleReply(PartsKey(row["smsc"], row["source"], row["destination"], row["reference"]),
                           row["data_coding"], list(row["payloads"]))
                for row in await self._pool.fetch(Q["stale_reply_parts"], wait)]

    @translated
    async def record_reply(self, smsc: str, source: str, destination: str, text: str, keyword: Keyword,
                           mail: Callable[[Answered], Mail | None], parts: PartsKey | None = None,
                           everywhere: bool = False) -> Answered | None:
        """Store a message from a phone; the message it answers (if any) becomes `rep`, a
        STOP opts the number out of that account and a START back in, and the mail `mail`
        makes of it is queued, all in one transaction (`everywhere`: the STOP or START is
        for every account). Returns what it answers. With `parts`, its kept parts go in the
        same transaction (nothing is stored when another call took them)."""
        async with self._pool.acquire() as connection, connection.transaction():
            if parts is not None and await connection.execute(Q["take_reply_parts"], *parts) == "DELETE 0":
                return None
            await connection.execute(optouts.Q["set_source"], "reply")
            row = await connection.fetchrow(Q["record_reply"], smsc, source, destination, text, keyword == "stop",
                                            keyword == "start", everywhere)
            answered = Answered(**row) if row else None
            if answered is not None and (outgoing := mail(answered)) is not None:
                await connection.execute(notifications.Q["queue_mail"], *outgoing)
        return answered
