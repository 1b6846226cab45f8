"""Calls the ping URLs of accounts whose messages changed (see ping.py for the forms).

Its own task with its own HTTP connections: a slow or dead URL costs a bounded number of
connections (a quarter of `ping.concurrency` per host) and `ping.timeout_s` per call,
never time in the dispatcher. Pings are rows in PostgreSQL, written with the status
events, so a restart loses none; a failed call is retried with backoff for
`ping.retry_hours`, then given up with a log line.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult

from ecosms_gw.config import PingConfig
from ecosms_gw.core import ping
from ecosms_gw.store import Store, StoreError

log = structlog.get_logger()

CLAIM = 200  # pings taken at a time
IDLE_S = 1.0  # nothing due: look again after this


class PublicAddressesOnly(AbstractResolver):
    """Names that resolve to the gateway's own networks are refused, at the moment of
    connecting (a name checked earlier could have changed since)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            if ping.address_refused(result["host"], self._allow_private):
                # with an errno, so that aiohttp's error shows the reason (else "[None]")
                raise OSError(errno.EACCES, f"{host} resolves to {result['host']}, a private address")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Pinger:
    def __init__(self, store: Store, config: PingConfig) -> None:
        self.store = store
        self.config = config
        self.lease = timedelta(seconds=3 * config.timeout_s + 60)  # longer than any call
        self.calls: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.concurrency,
                                         limit_per_host=max(1, self.config.concurrency // 4),
                                         resolver=PublicAddressesOnly(self.config.allow_private))
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            try:
                while True:
                    claimed = await self._start_calls(session) if len(self.calls) < self.config.concurrency else 0
                    if claimed < CLAIM:
                        await asyncio.sleep(IDLE_S)
            finally:
                for task in self.calls:
                    task.cancel()
                await asyncio.gather(*self.calls, return_exceptions=True)

    async def _start_calls(self, session: aiohttp.ClientSession) -> int:
        try:
            rows = await self.store.notifications.claim_pings(CLAIM, self.lease)
        except StoreError as error:
            log.warning("pings_unavailable", error=str(error))
            return 0
        by_url: dict[str, list[tuple[int, int]]] = {}
        dropped = []
        for row in rows:
            url = row.url
            problem = ping.url_problem(url)
            if problem is None and ping.address_refused(urlsplit(url).hostname or "", self.config.allow_private):
                problem = "a private address (see ping.allow_private)"
            if problem:
                log.warning("ping_refused", url=url, reason=problem, message_id=row.message_id)
                dropped.append(row.id)
            else:
                by_url.setdefault(url, []).append((row.id, row.message_id))
        if dropped:
            await self._settled(self.store.notifications.pings_done(dropped))
        attempts = {row.id: row.attempts for row in rows}
        for url, pings in by_url.items():
            for call in ping.calls(url, pings, self.config.method):
                task = asyncio.create_task(self._call(session, call, max(attempts[i] for i in call.ping_ids)))
                self.calls.add(task)
                task.add_done_callback(self.calls.discard)
        return len(rows)

    async def _call(self, session: aiohttp.ClientSession, call: ping.Call, attempts: int) -> None:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if call.form is not None else None
        try:
            async with session.request(self.config.method, call.url, data=call.form, headers=headers,
                                       allow_redirects=False) as response:
                failure = None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            failure = f"{type(error).__name__}: {error}"
        ids = list(call.ping_ids)
        if failure is None:
            await self._settled(self.store.notifications.pings_done(ids))
            return
        retry_in = timedelta(seconds=ping.backoff_s(attempts))
        log.warning("ping_failed", url=call.url, error=failure, attempt=attempts + 1,
                    retry_in_s=retry_in.total_seconds())
        abandoned = await self._settled(self.store.notifications.pings_failed(
            ids, retry_in, timedelta(hours=self.config.retry_hours)))
        if abandoned:
            log.error("ping_abandoned", url=call.url, pings=abandoned, retried_hours=self.config.retry_hours)

    @staticmethod
    async def _settled(write: Any) -> Any:
        """A write of a call's outcome; if the database is away the lease brings the
        pings back later, so a call may be made twice but none is lost."""
        try:
            return await write
        except StoreError as error:
            log.warning("ping_outcome_not_stored", error=str(error))
            return 0
