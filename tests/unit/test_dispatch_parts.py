"""The dispatcher's parts alone, without a link or a database: the places that bound what a
crash leaves in doubt, the outcomes stored in batches, and the routes of the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ecosms_gw.smpp.outcomes import InFlight, Outcomes, Places
from ecosms_gw.smpp.routes import excluded
from ecosms_gw.store import StoreUnavailable
from ecosms_gw.store.dispatch import Accepted, Claimed, Failed


class Recorder:
    """Stands for the store's dispatch aggregate: records each call, or fails when asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Accepted], list[int], list[Failed], list[int]]] = []
        self.down = False

    async def record_submissions(self, smsc: str, accepted: Sequence[Accepted], done: Sequence[int],
                                 failed: Sequence[Failed], mark: Sequence[int] = ()) -> set[int]:
        if self.down:
            raise StoreUnavailable("database unavailable: test")
        self.calls.append((list(accepted), list(done), list(failed), list(mark)))
        return set(mark)


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


async def test_answers_are_stored_with_the_next_group_marked() -> None:
    recorder = Recorder()
    outcomes = Outcomes(recorder, "main", window=4)  # type: ignore[arg-type]
    first, second = message(1, segments=2), message(2)
    outcomes.places.take()
    outcomes.places.take()
    flight = InFlight(first, [b"a", b"b"])
    assert not outcomes.accept(flight, 1, "s1")
    assert outcomes.accept(flight, 2, "s2")  # the last part: the message is done
    outcomes.fail(InFlight(second, [b"c"]), "ko", "11", "ESME_RINVDSTADR")
    allowed = await outcomes.store([message(3)])
    assert allowed == {3}
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
    assert await Outcomes(recorder, "main", 4).store() == set()  # type: ignore[arg-type]
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
