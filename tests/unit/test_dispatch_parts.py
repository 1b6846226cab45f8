"""The dispatcher's parts alone, without a link or a database: the places that bound what a
crash leaves in doubt, the outcomes stored in batches, the pump against a fake link, and the
routes of the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ecosms_gw.config import SmscConfig
from ecosms_gw.smpp.outcomes import InFlight, Outcomes, Places
from ecosms_gw.smpp.pump import Pump
from ecosms_gw.smpp.routes import excluded
from ecosms_gw.smpp.session import Response
from ecosms_gw.store import StoreUnavailable
from ecosms_gw.store.dispatch import Accepted, Claimed, Failed, Take


class Recorder:
    """Stands for the store's dispatch aggregate: records each call, or fails when asked;
    `messages` are the due messages, each taken once."""

    def __init__(self, messages: list[Claimed] | None = None) -> None:
        self.calls: list[tuple[list[Accepted], list[int], list[Failed], list[int]]] = []
        self.down = False
        self.messages = messages or []

    async def record_and_take(self, smsc: str, accepted: Sequence[Accepted], done: Sequence[int],
                              failed: Sequence[Failed], take: Take) -> list[Claimed]:
        if self.down:
            raise StoreUnavailable("database unavailable: test")
        taken, self.messages = self.messages[:take.limit], self.messages[take.limit:]
        self.calls.append((list(accepted), list(done), list(failed), [m.id for m in taken]))
        return taken


def message(id: int, segments: int = 1) -> Claimed:
    return Claimed(id, 1, 1, f"+3360000000{id}", "x", "gsm7", segments, 1)


def test_places_never_exceed_the_window_until_outcomes_are_stored() -> None:
    places = Places(2)
    assert places.take() and places.take() and not places.take()
    places.settled()  # known, not stored yet: its place may be taken by the call that stores it
    assert places.take() and not places.take()
    places.stored(1)
    assert (places.used, places.known) == (2, 0)
    places.release(1)
    assert places.take()


async def test_a_waiting_pump_takes_the_place_freed() -> None:
    places = Places(1)
    places.take()
    waiter = asyncio.create_task(places.take_when_free())
    await asyncio.sleep(0)
    assert not waiter.done()
    places.release(1)
    await asyncio.wait_for(waiter, 1)


async def test_answers_are_stored_with_the_next_group_taken() -> None:
    recorder = Recorder([message(3), message(4)])
    outcomes = Outcomes(recorder, "main", window=4)  # type: ignore[arg-type]
    first, second = message(1, segments=2), message(2)
    outcomes.places.take()
    outcomes.places.take()
    flight = InFlight(first, [b"a", b"b"])
    assert not outcomes.accept(flight, 1, "s1")
    assert outcomes.accept(flight, 2, "s2")  # the last part: the message is done
    outcomes.fail(InFlight(second, [b"c"]), "ko", "11", "ESME_RINVDSTADR")
    assert await outcomes.store(Take(1, worker=1)) == [message(3)]
    assert recorder.calls == [([Accepted(1, 1, "s1"), Accepted(1, 2, "s2")], [1],
                               [Failed(2, "ko", "11", "ESME_RINVDSTADR")], [3])]
    assert (outcomes.places.used, outcomes.places.known) == (0, 0)


async def test_answers_are_kept_while_the_database_is_away() -> None:
    recorder = Recorder()
    outcomes = Outcomes(recorder, "main", window=4)  # type: ignore[arg-type]
    outcomes.places.take()
    outcomes.accept(InFlight(message(1), [b"a"]), 1, "s1")
    recorder.down = True
    assert not await outcomes.flush()
    recorder.down = False
    assert await outcomes.flush()
    assert recorder.calls == [([Accepted(1, 1, "s1")], [1], [], [])]


async def test_nothing_to_store_makes_no_call() -> None:
    recorder = Recorder()
    assert await Outcomes(recorder, "main", 4).store() == []  # type: ignore[arg-type]
    assert recorder.calls == []


@pytest.mark.parametrize(("mine", "cluster", "expected"), [
    (("*",), {"fr": ("33",), "main": ("*",)}, ("33",)),
    (("*",), {"fr": ("33",)}, ("33",)),
    (("33",), {"paris": ("331",), "uk": ("44",)}, ("331",)),
    (("33",), {"main": ("33",)}, ()),  # the same route on this link: not excluded
    (("*",), {}, ()),
])
def test_a_more_specific_bound_link_takes_its_routes(mine: tuple[str, ...], cluster: dict[str, tuple[str, ...]],
                                                     expected: tuple[str, ...]) -> None:
    assert excluded("main", mine, cluster) == expected


class FakeSession:
    """An SMSC link that answers each submit_sm a moment later: OK with an id, or the
    status asked for by the destination."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.closed = asyncio.Event()
        self.written: list[dict[str, object]] = []
        self.refuse = refuse or {}
        self.in_flight = self.most_in_flight = 0

    def send(self, command: str, **fields: object) -> asyncio.Future[Response]:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.written.append(fields)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        status = self.refuse.get(str(fields["destination_addr"]), 0)
        asyncio.get_running_loop().call_later(0.001, self._answer, future, status, len(self.written))
        return future

    def _answer(self, future: asyncio.Future[Response], status: int, number: int) -> None:
        self.in_flight -= 1
        future.set_result(Response(status, f"id{number}" if status == 0 else None))

    async def drain(self) -> None:
        await asyncio.sleep(0)


class Queue(Recorder):
    """The store's dispatch aggregate while the link lives."""

    returned = 0

    async def return_unwritten(self, worker: int, smsc: str) -> None:
        self.returned += 1


async def test_the_pump_writes_each_message_once_within_the_window() -> None:
    messages = [Claimed(n, 1, 1, f"+336{n:08d}", "é" * 200 if n % 10 == 0 else "hi", "gsm7", 1, 1)
                for n in range(1, 101)]
    queue = Queue(messages)
    smsc = SmscConfig(name="main", tps=100_000, window=8)
    outcomes = Outcomes(queue, "main", smsc.window)  # type: ignore[arg-type]
    pump = Pump(smsc, queue, 1, asyncio.Event(), outcomes, lambda: ())  # type: ignore[arg-type]
    session = FakeSession(refuse={"33600000007": 0x0B})
    running = asyncio.create_task(pump.run(session))  # type: ignore[arg-type]
    flusher = asyncio.create_task(outcomes.flush_every())
    try:
        for _ in range(500):
            done = {m for call in queue.calls for m in call[1]} | {f.message_id for call in queue.calls for f in call[2]}
            if len(done) == 100:
                break
            await asyncio.sleep(0.01)
    finally:
        for task in (running, flusher):
            task.cancel()
        await asyncio.gather(running, flusher, return_exceptions=True)
    marked = [m for call in queue.calls for m in call[3]]
    assert sorted(marked) == list(range(1, 101))  # each marked once, before it was written
    assert [f for call in queue.calls for f in call[2]] == [Failed(7, "ko", "11", "ESME_RINVDSTADR")]
    assert len(session.written) == 99 + 10 + 1  # the ten long texts in two parts each
    assert session.most_in_flight <= smsc.window
    assert queue.returned == 1  # what an earlier link left, before the first take; none while it lives
