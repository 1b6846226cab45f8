"""Rate arithmetic on the monotonic clock (wall-clock jumps never open or shut a limit)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable


def backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential, clamped and jittered: attempt 1 waits about `base`."""
    return min(cap, base * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


SWEEP_KEYS = 10_000  # keys kept before the idle ones are swept


class SlidingWindow:
    """At most `limit` events per key in any `window_s` seconds; safe across threads (the
    FTP server calls it from its connection threads)."""

    def __init__(self, limit: int, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._events: defaultdict[Hashable, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        """Count one event for `key` if the limit allows it."""
        now = self.clock()
        with self._lock:
            recent = self._recent(key, now)
            if len(recent) >= self.limit:
                return False
            recent.append(now)
            return True

    def exhausted(self, key: Hashable) -> bool:
        """Whether the next event for `key` would be refused; counts nothing (for limits on
        failures, counted only once they happen)."""
        with self._lock:
            return key in self._events and len(self._recent(key, self.clock())) >= self.limit

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        if len(self._events) > SWEEP_KEYS:
            self._sweep(now)
        recent = self._events[key]
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        return recent

    def _sweep(self, now: float) -> None:
        """Keys whose events are all past the window are forgotten: addresses that come
        once (an attacker's many) do not grow memory for ever."""
        for key in [key for key, recent in self._events.items() if not recent or recent[-1] <= now - self.window_s]:
            del self._events[key]


class TokenBucket:
    """`rate` events per second, spaced on an ideal timeline (GCRA): each event has a
    theoretical time, and the wait is computed exactly, not slept in whole ticks. A sleep
    that overshoots, or a short pause, keeps the timeline (the next waits are shorter), so
    the mean stays at the rate; a pause of over a second restarts the timeline from now.

    The last second's actual events are also kept (for contracts up to `LOGGED_RATE`), so
    that no one-second window ever holds more than the rate, even after a late wake-up.

    Adaptive: `slow_down()` halves the rate when the SMSC says it is throttled (never
    below `floor`), and the rate climbs back by `climb` events/s every second, up to the
    contracted rate (AIMD)."""

    LOGGED_RATE = 10_000
    LOG_WINDOW_S = 1.01  # a hair over a second: network jitter cannot crowd the SMSC's window
    CATCH_UP_S = 1.0

    def __init__(self, rate: float, floor: float = 1.0, climb: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = self.rate = float(rate)
        self.floor = min(floor, self.ceiling)
        self.climb = climb if climb is not None else max(1.0, rate / 20)
        self.clock = clock
        self.next_at = self.updated = clock()
        self.recent: deque[float] | None = deque() if rate <= self.LOGGED_RATE else None

    def _adapt(self, now: float) -> None:
        if self.rate < self.ceiling and now > self.updated:
            self.rate = min(self.ceiling, self.rate + self.climb * (now - self.updated))
        self.updated = now

    def wait_time(self) -> float:
        """Seconds until the next event may happen (0 when it may happen now)."""
        now = self.clock()
        self._adapt(now)
        allowed = self.next_at
        if self.recent is not None and len(self.recent) >= (limit := max(1, int(self.rate))):
            allowed = max(allowed, self.recent[-limit] + self.LOG_WINDOW_S)
        return max(0.0, allowed - now)

    def take(self) -> None:
        """Count one event (once `wait_time()` is 0)."""
        now = self.clock()
        self._adapt(now)
        period = 1.0 / self.rate
        # Late by less than a second (a slow wake-up, a claim between batches): keep the
        # timeline and catch up; the one-second log still caps every window.
        on_time = now < self.next_at + self.CATCH_UP_S
        self.next_at = (self.next_at if on_time else now) + period
        if self.recent is not None:
            self.recent.append(now)
            while len(self.recent) > max(1, int(self.ceiling)):
                self.recent.popleft()

    async def acquire(self) -> None:
        if (wait := self.wait_time()) > 0:
            await asyncio.sleep(wait)
        self.take()

    def slow_down(self) -> None:
        self._adapt(self.clock())
        self.rate = max(self.floor, self.rate / 2)
