"""One `[[smsc]]` link: due messages out through one SMPP connection, at the contracted
rate, never twice. The link connects and binds (with a second, receiver connection when
it binds as a transmitter), stands by while another daemon serves it, reconnects with
backoff, and reports itself to the cluster view; the pump claims and writes, and the
outcomes are stored in batches.

What a crash leaves in doubt is bounded by the window: a message is marked "being
submitted" only when one of `window` places is free, and its place is freed only once
its outcome is stored (see outcomes.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from ecosms_gw.config import SmscConfig
from ecosms_gw.core.ratelimit import backoff
from ecosms_gw.smpp import routes
from ecosms_gw.smpp.outcomes import Outcomes
from ecosms_gw.smpp.pump import Pump
from ecosms_gw.smpp.session import BindError, Session, SessionClosed
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.dispatch import LinkState, Worker

log = structlog.get_logger()

REPORT_INTERVAL_S = 2.0  # the cluster view, and routes decided from it
STANDBY_RETRY_S = 5.0
STORE_RETRY_S = 1.0  # the database away: how often to look again
DRAIN_S = 10.0  # at shutdown, how long answers to what was written may take


class Dispatcher:
    """Connects, binds, pumps, reconnects with backoff."""

    def __init__(self, smsc: SmscConfig, store: Store, worker: int, wake: asyncio.Event,
                 on_deliver: Callable[[Any], Any], address: tuple[str, int] | None = None,
                 owner: Worker | None = None, in_doubt: str = "unknown") -> None:
        self.smsc = smsc
        self.in_doubt = in_doubt
        self.store = store
        self.worker = worker
        self.owner = owner  # one daemon per SMSC connection, so that its TPS holds across daemons
        self.cluster: dict[str, tuple[str, ...]] = {}  # links bound by any daemon: their routes
        self.wake = wake
        self.on_deliver = on_deliver
        self.address = address or (smsc.host, smsc.port)
        self.outcomes = Outcomes(store.dispatch, smsc.name, smsc.window)
        self.pump = Pump(smsc, store.dispatch, worker, wake, self.outcomes, self.excluded_routes, in_doubt)
        self.bound = False

    def excluded_routes(self) -> tuple[str, ...]:
        return routes.excluded(self.smsc.name, self.smsc.routes, self.cluster)

    async def run(self) -> None:
        attempt = 0
        while True:
            if not await self._serving():
                continue
            try:
                session, receiver = await self._connect()
            except (OSError, TimeoutError, SessionClosed, BindError) as error:
                attempt += 1
                delay = backoff(attempt, cap=60.0)
                log.warning("smpp_connect_failed", smsc=self.smsc.name, error=str(error), retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if await self._serve(session, receiver):
                await self.store.wait_until_available(STORE_RETRY_S)

    async def _serving(self) -> bool:
        """Whether this daemon is to serve the link now; if not, after waiting a while:
        another daemon serves it (standby, to take over later), or the database is away
        (nobody may serve it until this daemon knows)."""
        if self.owner is None:
            return True
        try:
            if await self.owner.own(self.smsc.name):
                return True
        except StoreError as error:
            log.warning("smsc_owner_unknown", smsc=self.smsc.name, error=str(error))
            await asyncio.sleep(STORE_RETRY_S)
            return False
        log.info("smsc_served_elsewhere", smsc=self.smsc.name)
        await asyncio.sleep(STANDBY_RETRY_S)
        return False

    async def _connect(self) -> tuple[Session, Session | None]:
        session = await self._open(self.smsc.bind)
        if self.smsc.bind != "transmitter":
            return session, None
        try:  # receipts and replies come on a second link
            return session, await self._open("receiver")
        except BaseException:
            await session.close()
            raise

    async def _serve(self, session: Session, receiver: Session | None) -> bool:
        """Pump while bound; then settle what the link leaves. True when the database was
        away (unbind, wait, start again)."""
        self.bound = True
        log.info("smpp_bound", smsc=self.smsc.name, address=f"{self.address[0]}:{self.address[1]}")
        await self._report(bound=True)  # routes known before the first claim
        helpers = [asyncio.create_task(self.outcomes.flush_every()), asyncio.create_task(self._report_every(session))]
        database_down = False
        try:
            await self._pump_while(session, receiver)
        except SessionClosed as error:
            log.warning("smpp_session_lost", smsc=self.smsc.name, error=str(error))
        except StoreError as error:
            log.error("dispatch_store_unavailable", smsc=self.smsc.name, error=str(error))
            database_down = True
        finally:
            stopping = bool(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            if stopping:  # shutdown: let the answers to what was written arrive first
                await _drain(session)
            self.bound = False
            for link in (session, receiver):
                if link is not None:
                    await link.close(unbind=stopping)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.pump.settle_lost(self.in_doubt)
            await self._report(bound=False)
        return database_down

    async def _report_every(self, session: Session) -> None:
        """The link in the cluster view, and the cluster's bound links for routing. A link
        another daemon took over while the database was away is given up."""
        loop = asyncio.get_running_loop()
        since, written = loop.time(), self.pump.written
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            if self.owner is not None and not self.owner.owns(self.smsc.name):
                log.warning("smsc_served_elsewhere", smsc=self.smsc.name)
                await session.close()
                return
            await self._report(bound=True, tps_now=(self.pump.written - written) / (loop.time() - since))
            since, written = loop.time(), self.pump.written

    async def _report(self, bound: bool, tps_now: float = 0.0) -> None:
        smsc = self.smsc
        try:
            await self.store.dispatch.report_link(LinkState(smsc.name, self.worker, smsc.routes, smsc.tps,
                                                            smsc.window, bound, tps_now, self.outcomes.places.used,
                                                            self.pump.throttled))
            self.cluster = await self.store.dispatch.bound_links()
        except StoreError as error:  # the pump meets the same fault and waits for the database
            log.warning("link_report_failed", smsc=smsc.name, error=str(error))

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
        pump = asyncio.create_task(self.pump.run(session))
        lost = [asyncio.create_task(link.closed.wait()) for link in (session, receiver) if link is not None]
        try:
            done, _ = await asyncio.wait({pump, *lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, *lost):
                task.cancel()
            await asyncio.gather(pump, *lost, return_exceptions=True)
        if pump in done and not pump.cancelled() and (error := pump.exception()) is not None:
            raise error
        raise SessionClosed(f"{self.smsc.name}: link lost")


async def _drain(session: Session) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_S
    while session.pending and not session.closed.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.05)
