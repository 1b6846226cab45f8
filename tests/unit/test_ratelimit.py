"""Rate arithmetic on a fake monotonic clock: exact, never over the limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosms_gw.core.ratelimit import SlidingWindow, TokenBucket, backoff
from ecosms_gw.smpp.pump import source_address, submit_fields
from tests.support.smsc import busiest_second


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_bucket(bucket: TokenBucket, clock: Clock, seconds: float) -> list[float]:
    sent = []
    while clock.now < 100.0 + seconds:
        clock.now += bucket.wait_time()
        bucket.take()
        sent.append(clock.now)
    return sent




@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=500))
def test_no_one_second_window_holds_more_than_the_rate(rate: int) -> None:
    clock = Clock()
    sent = run_bucket(TokenBucket(rate, clock=clock), clock, 5)
    assert busiest_second(sent) <= rate
    assert len(sent) >= 5 * rate * 0.98  # and the rate is reached, not wasted


def test_throttling_halves_the_rate_which_climbs_back() -> None:
    clock = Clock()
    bucket = TokenBucket(50, clock=clock)
    bucket.slow_down()
    assert bucket.rate == 25
    bucket.slow_down()
    assert bucket.rate == 12.5
    clock.now += 5  # climbs by rate/20 = 2.5 per second
    bucket.wait_time()
    assert bucket.rate == 25
    clock.now += 60
    bucket.wait_time()
    assert bucket.rate == 50  # never above the contract
    for _ in range(20):
        bucket.slow_down()
    assert bucket.rate == 1.0  # never below the floor


def test_sliding_window_counts_per_key() -> None:
    clock = Clock()
    window = SlidingWindow(2, 60, clock=clock)
    assert [window.allow("a"), window.allow("a"), window.allow("a"), window.allow("b")] == [
        True, True, False, True]
    clock.now += 60
    assert window.allow("a")


def test_backoff_doubles_with_jitter_and_is_clamped() -> None:
    for attempt, high in ((1, 1), (2, 2), (3, 4), (10, 60)):
        waits = [backoff(attempt, base=1, cap=60) for _ in range(100)]
        assert all(high / 2 <= wait <= high for wait in waits)


def test_source_and_destination_addressing() -> None:
    assert source_address("ACME") == ("ACME", 5, 0)
    assert source_address("+33612345678") == ("33612345678", 1, 1)
    assert source_address("") == ("", 0, 0)
    fields = submit_fields("+33612345678", b"\x05\x00\x03\x01\x02\x01hi", "ucs2", True, ("ACME", 5, 0))
    assert (fields["destination_addr"], fields["dest_addr_ton"], fields["dest_addr_npi"]) == ("33612345678", 1, 1)
    assert (fields["esm_class"], fields["data_coding"], fields["registered_delivery"]) == (0x40, 8, 1)


def test_sleeping_late_does_not_lower_the_mean_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(50, clock=clock)
    sent = []
    for n in range(1000):
        clock.now += bucket.wait_time() + (n % 7) * 0.0003  # the event loop wakes a bit late
        bucket.take()
        sent.append(clock.now)
    assert (len(sent) - 1) / (sent[-1] - sent[0]) == pytest.approx(50, rel=0.02)
    assert busiest_second(sent) <= 50


def test_a_pause_does_not_turn_into_a_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(50, clock=clock)
    bucket.take()
    clock.now += 10  # idle
    sent = run_bucket(bucket, clock, 2)
    assert busiest_second(sent) <= 50
