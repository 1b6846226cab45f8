"""The monitor's charts and tables: what the cluster did lately, read from the rollups of
the status events and the queue samples (written every 10 s by the reapers), pivoted into
the series a chart draws. A chart reads a few hundred rows whatever the traffic; it lags
20 to 25 s behind (a step is rolled up once it has been complete for 10 s)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from ecosms_gw.store.connector import queries, translated

log = structlog.get_logger()

Q = queries("monitor")
RATE_STEP_S, RATE_SPAN_S = 10.0, 900.0  # the rate charts: 10 s steps over 15 minutes (monitor.sql)


@dataclass(frozen=True, slots=True)
class Series:
    """Lines over shared times (seconds since the epoch); a line has None where it has no
    value at that time."""
    times: tuple[float, ...]
    lines: dict[str, tuple[float | None, ...]]


@dataclass(frozen=True, slots=True)
class ErrorCount:
    code: str
    description: str | None
    n: int


@dataclass(frozen=True, slots=True)
class Paused:
    id: int
    name: str | None
    account: str
    created_at: datetime
    held: int  # messages the pause holds


@dataclass(frozen=True, slots=True)
class Charts:
    submitted: Series  # per second, by link
    finals: Series  # per second, by status (ok, ko, no)
    queue: Series  # queued, held, paused, oldest_s
    delivery_rate: Series  # percent ok of final, per hour
    latency: Series  # p50, p95 seconds from submitted to final
    top_errors: tuple[ErrorCount, ...]


def pivot(rows: list[asyncpg.Record], zero: bool = False, step: float = 0.0, span: float = 0.0) -> Series:
    """Rows (at, line, value) into a series. A rate with no row at a time is 0 there, and
    with `step` it has a point every step over the last `span` seconds, so that a quiet
    period draws as zero rather than a line across it."""
    times = sorted({row["at"] for row in rows})
    if rows and step:
        now = time.time()
        first = (now - span) // step * step
        times = sorted(set(times) | {first + n * step for n in range(int((now - first) // step) + 1)})
    index = {at: n for n, at in enumerate(times)}
    lines: dict[str, list[float | None]] = {}
    for row in rows:
        line = lines.setdefault(row["line"], [0.0 if zero else None] * len(times))
        line[index[row["at"]]] = float(row["value"])
    return Series(tuple(times), {name: tuple(values) for name, values in sorted(lines.items())})


class Monitor:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def charts(self, account_id: int | None) -> Charts:
        async with self._pool.acquire() as connection:
            async def read(name: str) -> list[asyncpg.Record]:
                return await connection.fetch(Q[name], account_id)
            submitted = pivot(await read("submitted"), zero=True, step=RATE_STEP_S, span=RATE_SPAN_S)
            finals = pivot(await read("finals"), zero=True, step=RATE_STEP_S, span=RATE_SPAN_S)
            rate, latency = pivot(await read("delivery_rate")), pivot(await read("latency"))
            errors = tuple(ErrorCount(**row) for row in await read("top_errors"))
            queue = pivot(await connection.fetch(Q["queue"]))
        return Charts(submitted, finals, queue, rate, latency, errors)

    @translated
    async def mailing_progress(self, account_id: int | None, mailing_id: int) -> Series:
        """A mailing's messages reaching each status, per minute."""
        return pivot(await self._pool.fetch(Q["mailing_progress"], account_id, mailing_id), zero=True)

    @translated
    async def sample(self) -> int:
        """The queue's depth now, and the status events of the 10 s steps just complete
        rolled up for the charts: each once for the whole cluster. The steps rolled up."""
        await self._pool.execute(Q["sample_queue"])
        return int(await self._pool.fetchval(Q["roll_up"]))

    @translated
    async def paused(self, account_id: int | None) -> list[Paused]:
        return [Paused(**row) for row in await self._pool.fetch(Q["paused"], account_id)]

    @translated
    async def account_codes(self) -> list[str]:
        return [row["code"] for row in await self._pool.fetch(Q["account_codes"])]
