"""An SMPP client's submit_sm to a stored message: the account's cap, the checks every
door makes (number, opt-outs, sender id, text), its bind session's mailing of the day,
and the group commit. The answer is the message's id, or the SMPP error that says why."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from ecosms_gw.config import Config
from ecosms_gw.core import numbers
from ecosms_gw.core.accounts import Account, InvalidSender
from ecosms_gw.core.compose import compose_one
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.core.ratelimit import SlidingWindow
from ecosms_gw.core.submit_sm import SubmitRequest
from ecosms_gw.smpp.codec import (
    ESME_RCANCELFAIL,
    ESME_RINVDSTADR,
    ESME_RINVMSGID,
    ESME_RINVMSGLEN,
    ESME_RINVSRCADR,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
)
from ecosms_gw.store import Store
from ecosms_gw.store.submits import Submitted

log = structlog.get_logger()

# A refusal's reason class (as every door names it) to its SMPP error.
REASON_STATUS = {"invalid_number": ESME_RINVDSTADR, "international_not_allowed": ESME_RINVDSTADR,
                 "opted_out": ESME_RINVDSTADR, "empty_text": ESME_RINVMSGLEN, "text_too_long": ESME_RINVMSGLEN,
                 "sender_not_allowed": ESME_RINVSRCADR, "throttled": ESME_RTHROTTLED,
                 "unknown_account": ESME_RSYSERR}


class Refused(Exception):
    """A submit not stored: the reason class, and the SMPP error that answers it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail
        self.status = REASON_STATUS.get(reason, ESME_RSYSERR)


@dataclass
class BindSession:
    """One bound client: its account, and the mailing its submits of the day go to."""
    account: str
    account_id: int
    address: str
    ref: str = field(default_factory=lambda: secrets.token_hex(6))
    day: str = ""
    mailing_id: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Intake:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.caps: dict[int, SlidingWindow] = {}  # per account with --tps: submits in the last second

    async def submit(self, session: BindSession, request: SubmitRequest) -> int:
        """The stored message's id; `Refused` (a class and an SMPP error) otherwise, and
        `StoreError` when the database is away (the client sends it again later)."""
        account = await self.store.known.get(session.account)
        if account is None or account.id is None:
            raise Refused("unknown_account", "the account was removed")
        if account.tps and not self._cap(account).allow(account.id):
            raise Refused("throttled", f"over the account's cap of {account.tps}/s")
        try:
            message = compose_one(request.recipient, request.text, account.rules(self.config.defaults, request.mode),
                                  await self.store.known.opt_outs(account.id))
            sender = account.sender_id(_own_spelling(request.sender, account))
        except Rejected as refusal:
            raise Refused(refusal.reason, refusal.detail) from None
        except InvalidSender as error:
            raise Refused("sender_not_allowed", str(error)) from None
        zones = ",".join(numbers.zones(message.recipient)) or None if account.quiet_hours else None
        validity = request.validity_min or (account.validity_hours and account.validity_hours * 60)
        mailing_id = await self._mailing(session, account.id)
        return await self.store.submit_intake.enqueue(Submitted(
            mailing_id, account.id, message.recipient, message.text, message.encoding, message.segments, sender,
            request.flash, account.priority, validity, zones))

    def _cap(self, account: Account) -> SlidingWindow:
        assert account.id is not None and account.tps is not None
        cap = self.caps.get(account.id)
        if cap is None or cap.limit != account.tps:
            cap = self.caps[account.id] = SlidingWindow(account.tps, 1.0)
        return cap

    async def _mailing(self, session: BindSession, account_id: int) -> int:
        """The session's mailing of the day (UTC), made by its first submit of the day."""
        day = datetime.now(UTC).date().isoformat()
        async with session.lock:
            if session.day != day:
                session.mailing_id = await self.store.submits.session_mailing(
                    account_id, f"smpp:{session.ref}:{day}", f"SMPP {session.account} {session.address} {day}")
                session.day = day
        return session.mailing_id


def _own_spelling(sender: str | None, account: Account) -> str | None:
    """A numeric sender as the account lists it (`+33…` for a client's `33…`)."""
    if sender and sender not in account.sender_ids and f"+{sender}" in account.sender_ids:
        return f"+{sender}"
    return sender




def _message_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 18 else None


async def query(store: Store, session: BindSession, message_id: str) -> tuple[int, dict[str, object]]:
    """query_sm: the status and the fields of its answer. Another account's ids, like
    unknown ones, are ESME_RINVMSGID."""
    number = _message_id(message_id)
    found = await store.submits.state(session.account_id, number) if number is not None else None
    if found is None:
        return ESME_RINVMSGID, {"message_id": message_id}
    final = found.final_at.astimezone(UTC).strftime("%y%m%d%H%M%S000+") if found.final_at else ""
    return ESME_ROK, {"message_id": message_id, "final_date": final, "message_state": found.state, "error_code": 0}


async def cancel(store: Store, session: BindSession, message_id: str) -> int:
    """cancel_sm of one of the account's messages not yet being sent; anything else
    (sent, final, another account's, unknown) is ESME_RCANCELFAIL."""
    number = _message_id(message_id)
    if number is None or not await store.mailings.cancel_messages(session.account_id, [number]):
        return ESME_RCANCELFAIL
    return ESME_ROK
