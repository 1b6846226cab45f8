"""Due messages out through one SMPP connection, at the contracted rate, never twice.

The loop: claim due messages (SKIP LOCKED, so several daemons share the queue), then, a
small group at a time, record that they are being submitted and write their parts when
the token bucket allows. Responses are collected and written as soon as the previous
write is done: accepted parts, messages whose parts are all accepted (`on`), permanent
failures (`ko` with the SMPP status). Throttling answers slow the bucket down and the part
is sent again, never failed.

What a crash leaves in doubt is bounded by the window: a message is marked "being
submitted" only when one of `window` places is free, and its place is freed only once
its outcome is stored. So at most `window` messages are ever marked without a stored
outcome, and a group is marked just before it is written (at most `GROUP_S` of sending
at the link's rate), so that few marked messages were not written yet.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from . import gsm, metrics
from .config import SmscConfig
from .ratelimit import TokenBucket
from .receipts import normalise_id
from .smpp import THROTTLED, ESME_ROK, TEMPORARY, BindError, Response, Session, SessionClosed, status_name
from .store import Claimed, Store, StoreError

log = structlog.get_logger()

POLL_INTERVAL_S = 1.0
REPORT_INTERVAL_S = 2.0  # the cluster view, and routes decided from it
STANDBY_RETRY_S = 5.0
STORE_RETRY_S = 5.0
STORE_RETRY_FLUSH_S = 1.0
FLUSH_DELAY_S = 0.005  # answers wait this long for the pump's next call before their own
GROUP_S = 0.02  # a group marked at once holds at most this much sending at the link's rate
MAX_PART_ATTEMPTS = 5
RESPONSE_TIMEOUT_S = 30.0


def backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential, clamped and jittered: attempt 1 waits about `base`."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def source_address(sender_id: str | None) -> tuple[str, int, int]:
    """(address, TON, NPI): alphanumeric senders are TON 5 NPI 0, numbers TON 1 NPI 1."""
    if not sender_id:
        return "", 0, 0
    if sender_id.lstrip("+").isdigit():
        return sender_id.lstrip("+"), 1, 1
    return sender_id, 5, 0


def submit_fields(recipient: str, payload: bytes, encoding: str, multipart: bool,
                  source: tuple[str, int, int]) -> dict[str, Any]:
    address, ton, npi = source
    return {
        "source_addr": address, "source_addr_ton": ton, "source_addr_npi": npi,
        "destination_addr": recipient.lstrip("+"), "dest_addr_ton": 1, "dest_addr_npi": 1,
        "esm_class": 0x40 if multipart else 0x00, "registered_delivery": 1,
        "data_coding": 0x00 if encoding == "gsm7" else 0x08, "short_message": payload,
    }


class Places:
    """Messages marked "being submitted" whose outcome is not stored yet (`used`), at most
    `size` at any commit. Those whose outcome is known (`known`) are stored by the same
    call that marks the next ones, so their places may be taken already."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.known = 0
        self._changed = asyncio.Event()

    def take(self) -> bool:
        if self.used - self.known >= self.size:
            return False
        self.used += 1
        return True

    async def take_when_free(self) -> None:
        while not self.take():
            self._changed.clear()
            await self._changed.wait()

    def settled(self) -> None:
        """One message's outcome is known, to be stored."""
        self.known += 1
        self._changed.set()

    def stored(self, count: int) -> None:
        self.used -= count
        self.known -= count
        self._changed.set()

    def release(self, count: int) -> None:
        """Taken, but not marked after all."""
        self.used -= count
        self._changed.set()


@dataclass
class _InFlight:
    message: Claimed
    parts: list[bytes]
    written: int = 0
    accepted: dict[int, str] = field(default_factory=dict)  # seq -> SMSC message id
    failed: bool = False


class Dispatcher:
    """One `[[smsc]]` connection: connects, binds, pumps, reconnects with backoff."""

    def __init__(self, smsc: SmscConfig, store: Store, worker: int, wake: asyncio.Event,
                 on_deliver: Callable[[Any], Any], address: tuple[str, int] | None = None,
                 own: Callable[[str], Awaitable[bool]] | None = None,
                 in_doubt: str = "unknown") -> None:
        self.smsc = smsc
        self.in_doubt = in_doubt
        self.store = store
        self.worker = worker
        self.own = own  # one daemon per SMSC connection, so that its TPS holds across daemons
        self.cluster: dict[str, tuple[str, ...]] = {}  # links bound by any daemon: their routes
        self.written = 0  # PDUs written, for the rate shown in the cluster view
        self.account_buckets: dict[int, TokenBucket] = {}
        self.wake = wake
        self.on_deliver = on_deliver
        self.address = address or (smsc.host, smsc.port)
        self.bucket = TokenBucket(smsc.tps)
        self.window = asyncio.Semaphore(smsc.window)  # PDUs on the wire without an answer
        self.places = Places(smsc.window)
        self.answered = asyncio.Event()  # answers wait to be stored
        self.storing = asyncio.Lock()
        self.batch = max(10, smsc.window * 4)
        self.in_flight: dict[int, _InFlight] = {}
        self.not_started: set[int] = set()
        self.unreturned: list[int] = []
        self.retries: set[asyncio.Task[None]] = set()
        self.parts: list[tuple[int, int, str]] = []
        self.done: list[int] = []
        self.failed: list[tuple[int, str, str, str]] = []
        self.bound = False

    def excluded_routes(self) -> tuple[str, ...]:
        """Prefixes that a more specific link, bound now by any daemon of the cluster,
        serves instead of this one; when it is down its messages fall back here."""
        mine = self.smsc.routes
        return tuple(route for name, routes in self.cluster.items() if name != self.smsc.name
                     for route in routes if route != "*" and route not in mine
                     and any(m == "*" or (route.startswith(m) and len(route) > len(m)) for m in mine))

    async def run(self) -> None:
        while self.own is not None and not await self.own(self.smsc.name):
            log.info("smsc_served_elsewhere", smsc=self.smsc.name)  # standby: take over later
            await asyncio.sleep(STANDBY_RETRY_S)
        attempt = 0
        while True:
            receiver = None
            try:
                session = await self._open(self.smsc.bind)
                if self.smsc.bind == "transmitter":  # receipts and replies come on a second link
                    try:
                        receiver = await self._open("receiver")
                    except BaseException:
                        await session.close()
                        raise
            except (OSError, TimeoutError, SessionClosed, BindError) as error:
                attempt += 1
                delay = backoff(attempt, cap=60.0)
                log.warning("smpp_connect_failed", smsc=self.smsc.name, error=str(error),
                            retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.bound = True
            log.info("smpp_bound", smsc=self.smsc.name, address=f"{self.address[0]}:{self.address[1]}")
            await self._report(bound=True)  # routes known before the first claim
            flusher = asyncio.create_task(self._flush_every())
            reporter = asyncio.create_task(self._report_every())
            database_down = False
            try:
                await self._pump_while(session, receiver)
            except SessionClosed as error:
                log.warning("smpp_session_lost", smsc=self.smsc.name, error=str(error))
            except StoreError as error:  # the database is down: unbind, wait, start again
                log.error("dispatch_store_unavailable", smsc=self.smsc.name, error=str(error))
                database_down = True
            finally:
                stopping = bool(asyncio.current_task().cancelling())  # type: ignore[union-attr]
                if stopping:  # shutdown: let the answers to what was written arrive first
                    await self._drain(session)
                self.bound = False
                await session.close(unbind=stopping)
                if receiver is not None:
                    await receiver.close(unbind=stopping)
                for task in (flusher, reporter):
                    task.cancel()
                await asyncio.gather(flusher, reporter, return_exceptions=True)
                await self._settle_lost()
                await self._report(bound=False)
            if database_down:
                await asyncio.sleep(STORE_RETRY_S)

    async def _report_every(self) -> None:
        """The link in the cluster view, and the cluster's bound links for routing."""
        loop = asyncio.get_running_loop()
        since, written = loop.time(), self.written
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            await self._report(bound=True, tps_now=(self.written - written) / (loop.time() - since))
            since, written = loop.time(), self.written

    async def _report(self, bound: bool, tps_now: float = 0.0) -> None:
        try:
            await self.store.report_link(self.smsc.name, self.worker, self.smsc.routes, self.smsc.tps,
                                         self.smsc.window, bound, tps_now, self.places.used)
            self.cluster = await self.store.bound_links()
        except StoreError as error:  # the pump meets the same fault and waits for the database
            log.warning("link_report_failed", smsc=self.smsc.name, error=str(error))

    async def _open(self, bind: str) -> Session:
        return await Session.open(self.smsc.name, *self.address, bind, self.smsc.system_id,
                                  self.smsc.password, self.smsc.system_type, self.on_deliver)

    async def _pump_while(self, session: Session, receiver: Session | None) -> None:
        """Pump for as long as the links live (a pump waiting for places whose answers the
        dead link will never bring must not wait for ever). A receiver-only connection
        just listens (for receipts and replies)."""
        if self.smsc.bind == "receiver":
            await session.closed.wait()
            return
        pump = asyncio.create_task(self._pump(session))
        lost = [asyncio.create_task(link.closed.wait()) for link in (session, receiver) if link is not None]
        try:
            done, _ = await asyncio.wait({pump, *lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, *lost):
                task.cancel()
            await asyncio.gather(pump, *lost, return_exceptions=True)
        if pump in done and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]
        raise SessionClosed(f"{self.smsc.name}: link lost")

    async def _pump(self, session: Session) -> None:
        """Claim; then, group by group, mark (with the answers so far) and hand the group
        to the writer, which writes it while the next group is being marked."""
        await self._return_unsent()
        groups: asyncio.Queue[list[Claimed]] = asyncio.Queue()
        writer = asyncio.create_task(self._write(session, groups))
        try:
            while not session.closed.is_set():
                claimed = await self.store.claim(self.batch, self.worker, self.smsc.routes,
                                                 self.excluded_routes())
                if not claimed:
                    await self._idle()
                    continue
                self.not_started.update(m.id for m in claimed)
                waiting = deque(claimed)
                while waiting:
                    group = await self._admit(waiting)
                    try:
                        allowed = await self.store_answers(group)
                    except BaseException:
                        self.places.release(len(group))
                        raise
                    canceled = [m.id for m in group if m.id not in allowed]  # since their claim
                    self.not_started.difference_update(canceled)
                    self.places.release(len(canceled))
                    groups.put_nowait([m for m in group if m.id in allowed])
                    if writer.done():
                        writer.result()  # the link failed: raise why
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _write(self, session: Session, groups: asyncio.Queue[list[Claimed]]) -> None:
        while True:
            for message in await groups.get():
                self.not_started.discard(message.id)
                await self._submit_message(session, message)

    async def _idle(self) -> None:
        """Nothing due: until work is enqueued, or the poll interval."""
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), POLL_INTERVAL_S)
        except TimeoutError:
            pass

    async def _admit(self, waiting: deque[Claimed]) -> list[Claimed]:
        """The next group to mark and write: the first message once a place is free and
        the rate allows it, then those that need no wait, up to `GROUP_S` of sending."""
        await self.places.take_when_free()
        group = [waiting.popleft()]
        delay = max(self.bucket.wait_time(), self._account_bucket(group[0]).wait_time())
        if delay > 0:
            await asyncio.sleep(delay)
        limit = max(1, int(self.bucket.rate * GROUP_S))
        while waiting and len(group) < limit and self._account_bucket(waiting[0]).wait_time() == 0:
            if not self.places.take():
                break
            group.append(waiting.popleft())
        return group

    def _account_bucket(self, message: Claimed) -> TokenBucket:
        """The account's own cap, or the link's bucket when it has none."""
        if not message.account_tps:
            return self.bucket
        bucket = self.account_buckets.get(message.account_id)
        if bucket is None or bucket.ceiling != message.account_tps:
            bucket = self.account_buckets[message.account_id] = TokenBucket(message.account_tps)
        return bucket

    async def _submit_message(self, session: Session, message: Claimed) -> None:
        reference = secrets.randbelow(256)
        parts = gsm.encode_parts(message.text, message.encoding, reference)
        flight = self.in_flight[message.id] = _InFlight(message, parts)
        for seq in range(1, len(parts) + 1):
            await self._submit_part(session, flight, seq, attempt=1)

    async def _submit_part(self, session: Session, flight: _InFlight, seq: int, attempt: int) -> None:
        await self.window.acquire()
        try:
            message = flight.message
            if message.account_tps:
                await self._account_bucket(message).acquire()
            await self.bucket.acquire()
            fields = submit_fields(message.recipient, flight.parts[seq - 1], message.encoding,
                                   len(flight.parts) > 1,
                                   source_address(message.sender_id or self.smsc.source_addr))
            future = session.send("submit_sm", **fields)
        except BaseException:
            self.window.release()
            raise
        flight.written += 1
        self.written += 1
        timer = asyncio.get_running_loop().call_later(
            RESPONSE_TIMEOUT_S, lambda: future.done() or future.set_exception(TimeoutError()))
        future.add_done_callback(lambda done: (timer.cancel(),
                                               self._answered(session, flight, seq, attempt, done)))
        await session.drain()

    def _answered(self, session: Session, flight: _InFlight, seq: int, attempt: int,
                  done: asyncio.Future[Response]) -> None:
        self.window.release()
        if done.cancelled():
            return
        error = done.exception()
        if isinstance(error, TimeoutError) and attempt < MAX_PART_ATTEMPTS:
            log.warning("submit_sm_timeout", smsc=self.smsc.name, message_id=flight.message.id, part=seq)
            self._retry(session, flight, seq, attempt + 1, backoff(attempt))
            return
        if isinstance(error, TimeoutError) and not flight.failed:  # still no answer: in doubt
            self._fail(flight, "no", "in_doubt", "no answer from the SMSC: not resent")
            return
        if error is not None:
            return  # link lost: settled by _settle_lost
        response = done.result()
        if flight.failed:
            return
        if response.status == ESME_ROK:
            smsc_id = normalise_id(response.message_id or "")
            flight.accepted[seq] = smsc_id
            self.parts.append((flight.message.id, seq, smsc_id))
            if len(flight.accepted) == len(flight.parts):
                self.done.append(flight.message.id)
                self.in_flight.pop(flight.message.id, None)
                self.places.settled()
            self.answered.set()
            return
        name = status_name(response.status)
        if response.status in THROTTLED:
            self.bucket.slow_down()
            log.info("smpp_throttled", smsc=self.smsc.name, status=name, rate=round(self.bucket.rate, 1))
            self._retry(session, flight, seq, attempt, 0.0)
        elif response.status in TEMPORARY and attempt < MAX_PART_ATTEMPTS:
            self._retry(session, flight, seq, attempt + 1, backoff(attempt))
        else:
            log.info("submit_sm_refused", smsc=self.smsc.name, message_id=flight.message.id, status=name)
            self._fail(flight, "ko", str(response.status), name)

    def _fail(self, flight: _InFlight, status: str, code: str, description: str) -> None:
        flight.failed = True
        self.failed.append((flight.message.id, status, code, description))
        self.in_flight.pop(flight.message.id, None)
        self.places.settled()
        self.answered.set()

    def _retry(self, session: Session, flight: _InFlight, seq: int, attempt: int, delay: float) -> None:
        task = asyncio.create_task(self._resubmit(session, flight, seq, attempt, delay))
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    async def _resubmit(self, session: Session, flight: _InFlight, seq: int, attempt: int,
                        delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._submit_part(session, flight, seq, attempt)
        except SessionClosed:
            pass  # settled by _settle_lost

    async def _drain(self, session: Session, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while session.pending and not session.closed.is_set() and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def _flush_every(self) -> None:
        """Answers are stored with the next group the pump marks; when it marks none soon
        (idle, or waiting for the rate), they are stored on their own."""
        while True:
            await self.answered.wait()
            await asyncio.sleep(FLUSH_DELAY_S)
            self.answered.clear()
            if not await self.flush():
                await asyncio.sleep(STORE_RETRY_FLUSH_S)
                self.answered.set()

    async def flush(self) -> bool:
        """Store what the SMSC answered; on a database fault keep it for later (False)."""
        try:
            await self.store_answers()
        except StoreError as error:
            log.error("submissions_not_recorded", error=str(error), parts=len(self.parts))
            return False
        return True

    async def store_answers(self, group: list[Claimed] | None = None) -> set[int]:
        """What the SMSC answered so far and the next group marked "being submitted", in
        one call; the places of the messages settled are freed. One store at a time, so
        that a group is never committed before the answers whose places it took. Returns
        the messages of the group that may be written."""
        async with self.storing:
            parts, done, failed = self.parts, self.done, self.failed
            if not (parts or done or failed or group):
                return set()
            self.parts, self.done, self.failed = [], [], []
            try:
                allowed = await self.store.record_submissions(self.smsc.name, parts, done, failed,
                                                              [m.id for m in group or ()])
            except BaseException:  # not written: kept (recording is idempotent)
                self.parts[:0], self.done[:0], self.failed[:0] = parts, done, failed
                raise
        metrics.PARTS_SUBMITTED.labels(self.smsc.name).inc(len(parts))
        self.places.stored(len(done) + len(failed))
        return allowed

    async def _settle_lost(self) -> None:
        """After the link died: messages nothing was written for go back to the queue;
        those with parts written but not all answered follow the in-doubt policy: `no`
        (never a duplicate SMS) or sent again (never a loss)."""
        for task in self.retries:
            task.cancel()
        unsent = self.unreturned + list(self.not_started)
        for flight in self.in_flight.values():
            if flight.written == 0 or self.in_doubt == "resend":
                unsent.append(flight.message.id)
            else:
                self.failed.append((flight.message.id, "no", "in_doubt",
                                    "link lost before the SMSC answered: not resent"))
        self.in_flight.clear()
        self.not_started = set()
        await self.flush()
        self.places = Places(self.smsc.window)  # what is left is settled below or by a restart
        self.window = asyncio.Semaphore(self.smsc.window)
        self.unreturned = unsent
        await self._return_unsent()

    async def _return_unsent(self) -> None:
        """Messages nothing was written for, back to the queue; if the database is away,
        kept for the next connection (or, should the daemon die, its reaper)."""
        if not self.unreturned:
            return
        try:
            await self.store.return_unsent(self.unreturned)
        except StoreError as error:
            log.error("unsent_not_returned", error=str(error), messages=len(self.unreturned))
            return
        self.unreturned = []
