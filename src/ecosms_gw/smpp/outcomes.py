"""What the SMSC answered, stored in batches: accepted parts, messages whose parts are all
accepted (`on`), failures. Each batch is stored by the same call that takes the next group
(claimed and marked "being submitted"), so that at every commit at most `window` messages
are marked without a stored outcome (the `Places`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from ecosms_gw import metrics
from ecosms_gw.store import StoreError
from ecosms_gw.store.dispatch import Accepted, Claimed, Dispatch, Failed, Take

log = structlog.get_logger()

FLUSH_DELAY_S = 0.005  # answers wait this long for the pump's next call before their own
STORE_RETRY_FLUSH_S = 1.0
NOTHING = Take(0, 0)  # answers stored, no message taken


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
        if self.free <= 0:
            return False
        self.used += 1
        return True

    @property
    def free(self) -> int:
        return self.size - (self.used - self.known)

    async def take_when_free(self, at_least: int = 1) -> None:
        """Take one place once `at_least` are free (fewer calls, each for more messages)."""
        while self.free < min(at_least, self.size) or not self.take():
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
class InFlight:
    """A message being written: its encoded parts and what the SMSC said of each."""
    message: Claimed
    parts: list[bytes]
    written: int = 0
    accepted: dict[int, str] = field(default_factory=dict)  # seq -> SMSC message id
    failed: bool = False


class Outcomes:
    """The answers of one link waiting to be stored, and the places they hold."""

    def __init__(self, dispatch: Dispatch, smsc: str, window: int) -> None:
        self.dispatch = dispatch
        self.smsc = smsc
        self.window = window
        self.places = Places(window)
        self.answered = asyncio.Event()  # answers wait to be stored
        self._storing = asyncio.Lock()
        self.accepted: list[Accepted] = []
        self.done: list[int] = []
        self.failed: list[Failed] = []

    def accept(self, flight: InFlight, seq: int, smsc_id: str) -> bool:
        """A part accepted; True when it was the message's last."""
        flight.accepted[seq] = smsc_id
        self.accepted.append(Accepted(flight.message.id, seq, smsc_id))
        complete = len(flight.accepted) == len(flight.parts)
        if complete:
            self.done.append(flight.message.id)
            self.places.settled()
        self.answered.set()
        return complete

    def fail(self, flight: InFlight, status: str, code: str, description: str) -> None:
        flight.failed = True
        self.failed.append(Failed(flight.message.id, status, code, description))
        self.places.settled()
        self.answered.set()

    def in_doubt(self, message_id: int, description: str) -> None:
        """Written, the link lost before every answer came: `no`, never resent. Its place
        is not counted: the places start again with the next link."""
        self.failed.append(Failed(message_id, "no", "in_doubt", description))

    def restart(self) -> None:
        """A new link: no place is held (what is left is settled, or left to the reaper)."""
        self.places = Places(self.window)

    async def store(self, take: Take | None = None) -> list[Claimed]:
        """What the SMSC answered so far, and (with `take`) the next due messages taken, in
        one call; the places of the messages settled are freed. One store at a time, so
        that messages are never taken before the answers whose places they use are
        committed. Returns the messages taken."""
        async with self._storing:
            accepted, done, failed = self.accepted, self.done, self.failed
            if not (accepted or done or failed or take):
                return []
            self.accepted, self.done, self.failed = [], [], []
            try:
                taken = await self.dispatch.record_and_take(self.smsc, accepted, done, failed, take or NOTHING)
            except BaseException:  # not written: kept (recording is idempotent)
                self.accepted[:0], self.done[:0], self.failed[:0] = accepted, done, failed
                raise
        metrics.PARTS_SUBMITTED.labels(self.smsc).inc(len(accepted))
        metrics.IN_DOUBT_TOTAL.labels(self.smsc).inc(sum(1 for failure in failed if failure.code == "in_doubt"))
        self.places.stored(len(done) + len(failed))
        return taken

    async def flush(self) -> bool:
        """Store what the SMSC answered; on a database fault keep it for later (False)."""
        try:
            await self.store()
        except StoreError as error:
            log.error("submissions_not_recorded", error=str(error), parts=len(self.accepted))
            return False
        return True

    async def flush_every(self) -> None:
        """Answers are stored with the next group the pump marks; when it marks none soon
        (idle, or waiting for the rate), they are stored on their own."""
        while True:
            await self.answered.wait()
            await asyncio.sleep(FLUSH_DELAY_S)
            self.answered.clear()
            if not await self.flush():
                await asyncio.sleep(STORE_RETRY_FLUSH_S)
                self.answered.set()
