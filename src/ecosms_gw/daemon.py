"""`ecosms-gw run`: one asyncio process, supervised named tasks, ordered shutdown.

Every task waits out a database outage on its own (the worker lock and the listener are
taken again, the links rebind once the database answers), so that a restart of PostgreSQL
costs seconds, not a restart of every daemon into systemd's start limit. A task that ends
on its own anyway is a fault: the daemon stops with a non-zero exit so that systemd
restarts it, rather than limping on without it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from ecosms_gw import metrics, retention, systemd
from ecosms_gw.config import Config, HttpConfig
from ecosms_gw.config_values import Address
from ecosms_gw.http.app import Api
from ecosms_gw.ingest import ftp, smtp
from ecosms_gw.ingest.inbox import Inbox
from ecosms_gw.notify.mail_out import Mailer
from ecosms_gw.notify.pinger import Pinger
from ecosms_gw.notify.webhooks import WebhookSender
from ecosms_gw.smpp.delivery import Deliveries
from ecosms_gw.smpp.link import Dispatcher
from ecosms_gw.smpp.server import SmppServer
from ecosms_gw.smpp.simulator import Simulator
from ecosms_gw.store import Store, StoreError, StoreUnavailable
from ecosms_gw.store.database import DatabaseSetupError, database_dsn
from ecosms_gw.store.dispatch import HEARTBEAT_S, Worker
from ecosms_gw.tls import server_context

log = structlog.get_logger()

REAP_INTERVAL_S = 30.0


class Supervisor:
    """Named tasks started in order and stopped in reverse order."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.tasks[name] = asyncio.create_task(coroutine, name=name)

    async def wait(self, stop: asyncio.Event) -> str | None:
        """Until `stop` is set (None) or a task ends (its name)."""
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *self.tasks.values()],
                                     return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for name, task in self.tasks.items():
            if task in done:
                error = None if task.cancelled() else task.exception()
                log.error("task_ended", task=name, error=repr(error) if error else None)
                return name
        return None

    async def stop(self) -> None:
        for name in reversed(list(self.tasks)):
            task = self.tasks[name]
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as error:  # already reported by wait(), or raised while stopping
                log.warning("task_stop_error", task=name, error=repr(error))


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or a fault (exit 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with database_dsn(config) as dsn:
            store = await Store.open(dsn)
            try:
                return await _serve_with(store, config, stop)
            finally:
                await store.close()
    except (StoreError, DatabaseSetupError) as error:
        log.error("database_unavailable", error=str(error), config=config.source)
        return 1


async def _reap_every(store: Store, config: Config, worker: Worker, interval_s: float) -> None:
    """Another daemon on the same database may die while this one runs: its links are
    no longer bound and its claims return to the queue within `HEARTBEAT_S`; the queue
    and the status events are sampled for the monitor. Less often, messages that waited
    past the maximum age expire and finished mailings end. While this daemon's own lock
    is lost (the database restarted), it would reap itself: it waits."""
    every = max(1, round(interval_s / HEARTBEAT_S))
    for turn in itertools.count(1):
        await asyncio.sleep(HEARTBEAT_S)
        try:
            if worker.holding:
                await store.dispatch.reap_dead_workers(config.dispatch.in_doubt)
            await _sample(store)
            if turn % every == 0:
                await store.dispatch.expire(timedelta(hours=config.dispatch.max_age_hours),
                                   timedelta(hours=config.dispatch.receipt_wait_hours))
                await store.mailings.end_finished()
                await store.dispatch.repair_queues()
        except StoreUnavailable as error:  # the database is back soon
            log.warning("reap_failed", error=str(error))


async def _sample(store: Store) -> None:
    """The monitor's samples; a fault of theirs is logged and leaves the reaper running."""
    try:
        await store.monitor.sample()
    except StoreUnavailable:
        raise
    except StoreError as error:
        log.error("monitor_sample_failed", error=str(error))


async def _serve_smtp(server: asyncio.Server, handler: smtp.Handler) -> None:
    """Accept mail until cancelled; then refuse new connections and let the mails being
    processed get their reply."""
    try:
        await server.serve_forever()
    finally:
        server.close()
        await handler.drain()
        log.info("smtp_closed")


async def _serve_http(app: web.Application, listen: Address, tls: HttpConfig) -> None:
    """The API until cancelled; then calls under way get their answer."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = server_context(tls.tls_cert, tls.tls_key)
    await web.TCPSite(runner, listen.bind_host, listen.port, ssl_context=context).start()
    log.info("http_listening", address=str(listen), https=context is not None)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        log.info("http_closed")


async def _serve_with(store: Store, config: Config, stop: asyncio.Event) -> int:
    applied = await store.migrate()
    worker = await store.dispatch.register_worker()
    await store.dispatch.reap_dead_workers(config.dispatch.in_doubt)
    metrics.prepare([smsc.name for smsc in config.smsc])
    supervisor = Supervisor()
    supervisor.start("worker_lock", worker.watch())
    supervisor.start("claims_reaper", _reap_every(store, config, worker, REAP_INTERVAL_S))
    inbox = Inbox(config, store)
    supervisor.start("ftp_inbox", inbox.run())
    supervisor.start("pinger", Pinger(store, config.ping).run())
    supervisor.start("webhooks", WebhookSender(store, config.ping).run())
    supervisor.start("mailer", Mailer(store, config.mail_out).run())
    supervisor.start("retention", retention.purge_daily(store, config))
    deliveries = Deliveries(store, config)
    supervisor.start("reply_parts", deliveries.complete_stale_replies())
    simulators: list[Simulator] = []
    dispatchers = []
    for smsc in config.smsc:
        address = None
        if smsc.simulator:
            simulators.append(Simulator())
            address = await simulators[-1].start()
        dispatchers.append(Dispatcher(smsc, store, worker.key, asyncio.Event(), deliveries.handler(smsc), address,
                                      owner=None if smsc.simulator else worker,
                                      in_doubt=config.dispatch.in_doubt))
    for dispatcher in dispatchers:
        supervisor.start(f"smpp_{dispatcher.smsc.name}", dispatcher.run())

    def wake_dispatchers() -> None:
        for dispatcher in dispatchers:
            dispatcher.wake.set()

    supervisor.start("listener", store.listen(wake_dispatchers))
    smtp_server, smtp_handler = await smtp.serve(config, store)
    supervisor.start("smtp", _serve_smtp(smtp_server, smtp_handler))
    api = Api(store, config, lambda: {dispatcher.smsc.name: dispatcher.bound for dispatcher in dispatchers})
    supervisor.start("http", _serve_http(api.app(), config.http.listen, config.http))
    supervisor.start("ftp", ftp.FtpServer(config, store, inbox).run())
    if config.smpp_server.listen is not None:
        supervisor.start("smpp_server", SmppServer(config, store).run())
    supervisor.start("watchdog", systemd.watchdog())
    log.info("daemon_started", worker=worker.key, migrations=applied, config=config.source)
    systemd.notify("READY=1")
    failed = await supervisor.wait(stop)
    systemd.notify("STOPPING=1")
    log.info("daemon_stopping", reason=f"task {failed} ended" if failed else "signal")
    await supervisor.stop()
    for simulator in simulators:
        await simulator.close()
    try:
        await worker.close()
    except StoreError as error:
        log.warning("worker_close_failed", error=str(error))
    log.info("daemon_stopped")
    return 1 if failed else 0
