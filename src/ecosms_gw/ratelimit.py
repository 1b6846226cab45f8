"""Rate arithmetic on the monotonic clock (wall-clock jumps never open or shut a limit)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable


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
            recent = self._events[key]
            while recent and recent[0] <= now - self.window_s:
                recent.popleft()
            if len(recent) >= self.limit:
                return False
            recent.append(now)
            return True


class TokenBucket:
    """A rate of `rate` events per second with bursts of at most `burst`, computing the
    exact wait for the next event instead of sleeping in whole ticks.

    Adaptive: `slow_down()` halves the rate when the SMSC says it is throttled (never
    below `floor`), and the rate climbs back by `climb` events/s every second of
    success, up to the contracted rate (AIMD)."""

    def __init__(self, rate: float, burst: float | None = None, floor: float = 1.0,
                 climb: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = self.rate = float(rate)
        # A burst of one keeps every one-second window at or under the rate.
        self.burst = float(burst if burst is not None else 1.0)
        self.floor = min(floor, self.ceiling)
        self.climb = climb if climb is not None else max(1.0, rate / 20)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            if self.rate < self.ceiling:
                self.rate = min(self.ceiling, self.rate + self.climb * elapsed)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now

    def wait_time(self) -> float:
        """Seconds until one token is there (0 when it is there now)."""
        self._refill(self.clock())
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Spend one token (call once `wait_time()` is 0)."""
        self._refill(self.clock())
        self.tokens -= 1

    async def acquire(self) -> None:
        """Wait for a token and spend it; a token taken early is owed, never lost."""
        if (wait := self.wait_time()) > 0:
            await asyncio.sleep(wait)
        self.take()

    def slow_down(self) -> None:
        self._refill(self.clock())
        self.rate = max(self.floor, self.rate / 2)
        self.tokens = min(self.tokens, 0.0)
