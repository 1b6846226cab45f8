"""Posts accounts' events to their webhook URLs, signed (core/webhook.py).

Its own task and connections, like the pinger, and the same `[ping]` settings (timeout,
concurrency, retries for `retry_hours`, private addresses). Per account one batch at a
time, oldest events first: a batch that fails holds the later ones back until it is
taken, so a message's events arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import structlog

from ecosms_gw import metrics
from ecosms_gw.config import PingConfig
from ecosms_gw.core import ping, webhook
from ecosms_gw.notify.pinger import PublicAddressesOnly
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.webhooks import Batch

log = structlog.get_logger()

IDLE_S = 0.2  # nothing due: look again after this, or as soon as a batch is settled


class WebhookSender:
    def __init__(self, store: Store, config: PingConfig) -> None:
        self.store = store
        self.config = config
        self.lease = timedelta(seconds=3 * config.timeout_s + 60)  # longer than any call
        self.calls: set[asyncio.Task[None]] = set()
        self.settled = asyncio.Event()  # a batch was settled: its account's next one may be due now

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.concurrency,
                                         resolver=PublicAddressesOnly(self.config.allow_private))
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            try:
                while True:
                    self.settled.clear()
                    if not await self._start_calls(session):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.settled.wait(), IDLE_S)
            finally:
                for task in self.calls:
                    task.cancel()
                await asyncio.gather(*self.calls, return_exceptions=True)

    async def _start_calls(self, session: aiohttp.ClientSession) -> int:
        free = self.config.concurrency - len(self.calls)
        try:
            batches = await self.store.webhooks.claim(free, self.lease) if free > 0 else []
            if not batches:
                await self.store.webhooks.wake()
        except StoreError as error:
            log.warning("webhooks_unavailable", error=str(error))
            return 0
        for batch in batches:
            task = asyncio.create_task(self._send(session, batch))
            self.calls.add(task)
            task.add_done_callback(self._done)
        return len(batches)

    def _done(self, task: asyncio.Task[None]) -> None:
        """An account's batches go back to back: the next is claimed as this one settles."""
        self.calls.discard(task)
        self.settled.set()

    async def _send(self, session: aiohttp.ClientSession, batch: Batch) -> None:
        if not batch.ids or not batch.url or not batch.secret:  # nothing left, or the webhook was removed
            await self._settled(self.store.webhooks.delivered(batch.account_id, batch.ids))
            return
        failure = ping.url_problem(batch.url)
        if failure is None and ping.address_refused(urlsplit(batch.url).hostname or "", self.config.allow_private):
            failure = "a private address (see ping.allow_private)"
        if failure is None:
            raw = webhook.body(batch.ids, batch.payloads)
            headers = {"Content-Type": "application/json", "X-Ecosms-Event-Ids": ",".join(map(str, batch.ids)),
                       "X-Ecosms-Signature": webhook.signature(batch.secret, int(time.time()), raw)}
            try:
                async with session.post(batch.url, data=raw, headers=headers, allow_redirects=False) as response:
                    failure = None if 200 <= response.status < 300 else f"HTTP {response.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                failure = f"{type(error).__name__}: {error}"
        metrics.WEBHOOK_POSTS.labels("failed" if failure else "ok").inc()
        if failure is None:
            await self._settled(self.store.webhooks.delivered(batch.account_id, batch.ids))
            return
        retry_in = timedelta(seconds=ping.backoff_s(batch.attempts))
        log.warning("webhook_failed", account_id=batch.account_id, url=batch.url, error=failure,
                    events=len(batch.ids), attempt=batch.attempts + 1, retry_in_s=retry_in.total_seconds())
        dropped = await self._settled(self.store.webhooks.failed(
            batch.account_id, retry_in, timedelta(hours=self.config.retry_hours), failure))
        if dropped:
            metrics.WEBHOOK_ABANDONED.inc(dropped)
            log.error("webhook_events_abandoned", account_id=batch.account_id, events=dropped,
                      retried_hours=self.config.retry_hours)

    @staticmethod
    async def _settled(write: Awaitable[int | None]) -> int:
        """A write of a call's outcome; if the database is away the lease brings the batch
        back later, so a batch may be posted twice (the receiver sees its event ids) but
        none is lost."""
        try:
            return await write or 0
        except StoreError as error:
            log.warning("webhook_outcome_not_stored", error=str(error))
            return 0
