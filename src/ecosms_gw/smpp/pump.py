"""The pump of one bound link: take each small group of due messages (claimed and marked
"being submitted" by the call that stores the answers so far) as the window's places
and the link's rate allow, and write it while the next is taken, at the link's rate.
Which messages come next (priorities, fairness, accounts' caps) is the scheduler's, in
the claim. Throttling answers slow the bucket down and the part is sent again, never
failed; temporary errors are retried with backoff. A part never answered (while others
are) follows the in-doubt policy: `no`, or written again under `resend`.

A group is taken just before it is written (at most `GROUP_S` of sending at the link's
rate, and never more than the free places), so that few marked messages were not written
yet when a crash comes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import structlog

from ecosms_gw import metrics
from ecosms_gw.config import SmscConfig
from ecosms_gw.core import gsm
from ecosms_gw.core.accounts import is_number
from ecosms_gw.core.ratelimit import TokenBucket, backoff
from ecosms_gw.core.receipts import normalise_id
from ecosms_gw.smpp.codec import ESME_ROK, status_name
from ecosms_gw.smpp.outcomes import InFlight, Outcomes
from ecosms_gw.smpp.session import TEMPORARY, THROTTLED, Response, Session, SessionClosed
from ecosms_gw.store import StoreError
from ecosms_gw.store.dispatch import Claimed, Dispatch, Take

log = structlog.get_logger()

POLL_INTERVAL_S = 1.0
RETRY_S = 0.02  # a take that comes back empty just after a full one: the queues were being claimed, look again soon
GROUP_S = 0.02  # a group marked at once holds at most this much sending at the link's rate
MAX_PART_ATTEMPTS = 5
RESPONSE_TIMEOUT_S = 30.0


def source_address(sender_id: str | None) -> tuple[str, int, int]:
    """(address, TON, NPI): alphanumeric senders are TON 5 NPI 0, numbers TON 1 NPI 1."""
    if not sender_id:
        return "", 0, 0
    if is_number(sender_id):
        return sender_id.lstrip("+"), 1, 1
    return sender_id, 5, 0


def submit_fields(recipient: str, payload: bytes, encoding: str, multipart: bool,
                  source: tuple[str, int, int], flash: bool = False, priority: int = 0,
                  validity_min: int | None = None) -> dict[str, Any]:
    """A part's submit_sm; flash is message class 0 (data_coding 0x10 for GSM, 0x18 for
    UCS-2); a validity (minutes) tells the SMSC when to stop trying."""
    address, ton, npi = source
    return {
        "source_addr": address, "source_addr_ton": ton, "source_addr_npi": npi,
        "destination_addr": recipient.lstrip("+"), "dest_addr_ton": 1, "dest_addr_npi": 1,
        "esm_class": 0x40 if multipart else 0x00, "priority_flag": priority,
        "validity_period": relative_time(validity_min) if validity_min else "", "registered_delivery": 1,
        "data_coding": (0x00 if encoding == "gsm7" else 0x08) | (0x10 if flash else 0), "short_message": payload,
    }


def relative_time(minutes: int) -> str:
    """SMPP's relative time format (YYMMDDhhmmss000R) for a number of minutes."""
    days, rest = divmod(minutes, 24 * 60)
    return f"0000{days:02d}{rest // 60:02d}{rest % 60:02d}00000R"


class Pump:
    """Claims and writes for one link; `excluded` gives the routes other links serve now."""

    def __init__(self, smsc: SmscConfig, dispatch: Dispatch, worker: int, wake: asyncio.Event,
                 outcomes: Outcomes, excluded: Callable[[], tuple[str, ...]], in_doubt: str = "unknown") -> None:
        self.smsc = smsc
        self.in_doubt = in_doubt  # a part written and never answered: `no` (unknown) or written again (resend)
        self.dispatch = dispatch
        self.worker = worker
        self.wake = wake
        self.outcomes = outcomes
        self.excluded = excluded
        self.bucket = TokenBucket(smsc.tps)
        self.window = asyncio.Semaphore(smsc.window)  # PDUs on the wire without an answer
        self.written = 0  # PDUs written, for the rate shown in the cluster view
        self.throttled = 0  # throttle answers since bound, for the cluster view
        self.response_time = metrics.SUBMIT_RESPONSE.labels(smsc.name)  # looked up once, observed per part
        self.in_flight: dict[int, InFlight] = {}
        self.retries: set[asyncio.Task[None]] = set()

    async def run(self, session: Session) -> None:
        """Group by group: take due messages (with the answers so far) and hand them to the
        writer, which writes them while the next group is taken. First, what an earlier
        connection left marked and unwritten goes back to the queue (the database away:
        raised, to wait for it)."""
        self.throttled = 0
        await self._return_unwritten()
        groups: asyncio.Queue[list[Claimed]] = asyncio.Queue()
        writer = asyncio.create_task(self._write(session, groups))
        try:
            busy = False
            while not session.closed.is_set():
                group = await self._take()
                if not group:
                    await self._idle(RETRY_S if busy else POLL_INTERVAL_S)
                    busy = False
                    continue
                busy = True
                groups.put_nowait(group)
                if writer.done():
                    writer.result()  # the link failed: raise why
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _take(self) -> list[Claimed]:
        """The next group, once a place is free and the link's rate allows: as many due
        messages as there are free places, up to `GROUP_S` of sending, claimed and marked
        "being submitted" by the call that stores the answers so far. It waits for a
        quarter of the window to be free: a call per answer would cost more than it saves."""
        places = self.outcomes.places
        limit = max(1, int(self.bucket.rate * GROUP_S))
        await places.take_when_free(at_least=min(limit, places.size // 4))
        count = 1
        while count < limit and places.take():
            count += 1
        try:
            if (delay := self.bucket.wait_time()) > 0:
                await asyncio.sleep(delay)
            group = await self._taken(Take(count, self.worker, self.smsc.routes, self.excluded()))
        except BaseException:
            places.release(count)
            raise
        places.release(count - len(group))
        return group

    async def _taken(self, take: Take) -> list[Claimed]:
        """The messages taken. A pump stopped while the call runs (the link lost) waits for
        its end, so that what it took is marked before the unwritten are returned."""
        call = asyncio.ensure_future(self.outcomes.store(take))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await call
            raise

    async def _write(self, session: Session, groups: asyncio.Queue[list[Claimed]]) -> None:
        while True:
            for message in await groups.get():
                await self._submit_message(session, message)

    async def _idle(self, interval: float) -> None:
        """Nothing due: until work is enqueued, or `interval`."""
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), interval)
        except TimeoutError:
            pass

    async def _submit_message(self, session: Session, message: Claimed) -> None:
        reference = secrets.randbelow(256)
        parts = gsm.encode_parts(message.text, message.encoding, reference)
        flight = self.in_flight[message.id] = InFlight(message, parts)
        for seq in range(1, len(parts) + 1):
            await self._submit_part(session, flight, seq, attempt=1)

    async def _submit_part(self, session: Session, flight: InFlight, seq: int, attempt: int) -> None:
        await self.window.acquire()
        try:
            message = flight.message
            await self.bucket.acquire()
            fields = submit_fields(message.recipient, flight.parts[seq - 1], message.encoding,
                                   len(flight.parts) > 1, source_address(message.sender_id or self.smsc.source_addr),
                                   message.flash, message.priority, message.validity_min)
            future = session.send("submit_sm", **fields)
        except BaseException:
            self.window.release()
            raise
        flight.written += 1
        self.written += 1
        loop = asyncio.get_running_loop()
        written_at = loop.time()
        timer = loop.call_later(RESPONSE_TIMEOUT_S, _time_out, future)

        def answered(done: asyncio.Future[Response]) -> None:
            timer.cancel()
            if not done.cancelled() and done.exception() is None:
                self.response_time.observe(loop.time() - written_at)
            self._answered(session, flight, seq, attempt, done)

        future.add_done_callback(answered)
        await session.drain()

    def _answered(self, session: Session, flight: InFlight, seq: int, attempt: int,
                  done: asyncio.Future[Response]) -> None:
        self.window.release()
        if done.cancelled():
            return
        error = done.exception()
        if isinstance(error, TimeoutError):  # the SMSC answers others, never this one
            log.warning("submit_sm_timeout", smsc=self.smsc.name, message_id=flight.message.id, part=seq)
            if self.in_doubt == "resend" and attempt < MAX_PART_ATTEMPTS:
                self._retry(session, flight, seq, attempt + 1, backoff(attempt))
            elif not flight.failed:
                self._fail(flight, "no", "in_doubt", "no answer from the SMSC: not resent")
        elif error is None and not flight.failed:
            self._response(session, flight, seq, attempt, done.result())
        # any other error: the link was lost, and settle_lost settles the message

    def _response(self, session: Session, flight: InFlight, seq: int, attempt: int, response: Response) -> None:
        if response.status == ESME_ROK:
            if self.outcomes.accept(flight, seq, normalise_id(response.message_id or "")):
                self.in_flight.pop(flight.message.id, None)
            return
        name = status_name(response.status)
        if response.status in THROTTLED:
            self.bucket.slow_down()
            self.throttled += 1
            metrics.THROTTLED.labels(self.smsc.name).inc()
            log.info("smpp_throttled", smsc=self.smsc.name, status=name, rate=round(self.bucket.rate, 1))
            self._retry(session, flight, seq, attempt, 0.0)
        elif response.status in TEMPORARY and attempt < MAX_PART_ATTEMPTS:
            self._retry(session, flight, seq, attempt + 1, backoff(attempt))
        else:
            log.info("submit_sm_refused", smsc=self.smsc.name, message_id=flight.message.id, status=name)
            self._fail(flight, "ko", str(response.status), name)

    def _fail(self, flight: InFlight, status: str, code: str, description: str) -> None:
        self.in_flight.pop(flight.message.id, None)
        self.outcomes.fail(flight, status, code, description)

    def _retry(self, session: Session, flight: InFlight, seq: int, attempt: int, delay: float) -> None:
        task = asyncio.create_task(self._resubmit(session, flight, seq, attempt, delay))
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    async def _resubmit(self, session: Session, flight: InFlight, seq: int, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._submit_part(session, flight, seq, attempt)
        except SessionClosed:
            pass  # settled by settle_lost

    async def settle_lost(self, in_doubt: str) -> None:
        """After the link died: messages with parts written but not all answered follow
        the in-doubt policy, `no` (never a duplicate SMS) or sent again (never a loss); the
        others go back to the queue. The database away: left for the next connection (or,
        should the daemon die, its reaper)."""
        for task in self.retries:
            task.cancel()
        if in_doubt != "resend":
            for flight in self.in_flight.values():
                if flight.written:
                    self.outcomes.in_doubt(flight.message.id, "link lost before the SMSC answered: not resent")
        self.in_flight.clear()
        try:
            await self._return_unwritten()
        except StoreError as error:
            log.error("unsent_not_returned", smsc=self.smsc.name, error=str(error))
        self.outcomes.restart()
        self.window = asyncio.Semaphore(self.smsc.window)

    async def _return_unwritten(self) -> None:
        """The answers so far stored, then every message this link marked and did not
        write back to the queue: with nothing in flight, that is every one still marked,
        those a lost answer of the database left marked unknown to the pump included."""
        await self.outcomes.store()
        await self.dispatch.return_unwritten(self.worker, self.smsc.name)


def _time_out(future: asyncio.Future[Response]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
