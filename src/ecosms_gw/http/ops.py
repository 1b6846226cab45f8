"""Pages for operators and load balancers: /health (and its live and ready probes), and
/metrics for Prometheus."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecosms_gw import metrics
from ecosms_gw.config import Config
from ecosms_gw.http.auth import Auth
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.dispatch import Link

log = structlog.get_logger()

STATUSES = ("wait", "on", "ok", "ko", "rep", "no")


class Ops:
    def __init__(self, store: Store, config: Config, auth: Auth, bound: Callable[[], dict[str, bool]]) -> None:
        self.store = store
        self.config = config
        self.auth = auth
        self.bound = bound  # this daemon's SMSC connections -> bound, for /metrics

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)

    async def live(self, request: web.Request) -> web.Response:
        """The process answers (systemd's watchdog, a liveness probe)."""
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """This daemon takes SMTP, FTP and HTTP: its database answers. A standby that owns no
        SMSC link is ready too (load balancers keep sending it work)."""
        try:
            await self.store.ping()
            database = True
        except StoreError:
            database = False
        return web.json_response({"status": "ok" if database else "unavailable", "database": database},
                                 status=200 if database else 503)

    async def health(self, request: web.Request) -> web.Response:
        """200 when the database answers and every SMSC link configured here is bound by some
        daemon of the cluster; the body says, per link, which daemon serves it since when."""
        links: dict[str, Link] = {}
        try:
            links = {link.name: link for link in await self.store.dispatch.links()}
            database = True
        except StoreError:
            database = False
        smsc, served = {}, {}
        for name in (smsc_config.name for smsc_config in self.config.smsc):
            link = links.get(name)
            smsc[name] = "bound" if link and link.bound_since else "down"
            if link and link.bound_since:
                served[name] = {"daemon": f"{link.owner_host}:{link.owner_pid}", "since": link.bound_since.isoformat()}
        healthy = database and all(state == "bound" for state in smsc.values())
        return web.json_response({"status": "ok" if healthy else "unavailable", "database": database,
                                  "smsc": smsc, "served_by": served}, status=200 if healthy else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        self.auth.require_operator(request)
        for name, up in self.bound().items():
            metrics.SMSC_BOUND.labels(name).set(1 if up else 0)
        try:
            counts = await self.store.reads.message_counts()
            cluster = await self.store.cluster()
            metrics.TALLIES.expired = await self.store.reads.expired_tally()
        except StoreError:
            metrics.DATABASE_UP.set(0)  # the other gauges keep their last values
        else:
            metrics.DATABASE_UP.set(1)
            for status in STATUSES:
                metrics.MESSAGES.labels(status).set(counts.get(status, 0))
            metrics.QUEUE_DEPTH.set(cluster.queued)
            metrics.QUEUE_OLDEST.set(cluster.oldest_due_s)
            metrics.QUEUE_HELD.set(cluster.held)
            metrics.QUEUE_PAUSED.set(cluster.paused)
            for link in cluster.links:
                metrics.IN_DOUBT.labels(link.name).set(link.in_doubt)
                metrics.LINK_BOUND.labels(link.name).set(1 if link.bound_since else 0)
                metrics.LINK_TPS.labels(link.name).set(link.tps_now if link.bound_since else 0)
                metrics.LINK_TPS_CONFIGURED.labels(link.name).set(link.tps)
                metrics.LINK_WINDOW_USED.labels(link.name).set(link.in_flight if link.bound_since else 0)
            for name in {smsc.name for smsc in self.config.smsc} - {link.name for link in cluster.links}:
                metrics.LINK_BOUND.labels(name).set(0)  # configured here, never bound by anyone
            metrics.MAIL_BACKLOG.set(cluster.mail_backlog)
            metrics.MAIL_FAILED.set(cluster.mail_failed)
            metrics.PING_BACKLOG.set(cluster.ping_backlog)
            metrics.WEBHOOK_BACKLOG.set(cluster.webhook_backlog)
            metrics.WEBHOOK_FAILING.set(len(cluster.webhook_failing))
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
