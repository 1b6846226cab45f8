"""Pages for operators and load balancers: /health (and its live and ready probes),
/metrics for Prometheus, and the monitor page with the data it polls."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecosms_gw import metrics
from ecosms_gw.config import Config
from ecosms_gw.core.accounts import Account
from ecosms_gw.http.auth import Auth
from ecosms_gw.http.params import ApiError
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.dispatch import Link
from ecosms_gw.store.reads import Filter, Page

log = structlog.get_logger()

STATUSES = ("wait", "on", "ok", "ko", "rep", "no")
DETAIL_MESSAGES = 200  # of a mailing, on the monitor
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "frame-ancestors 'none'")


class Ops:
    def __init__(self, store: Store, config: Config, auth: Auth, bound: Callable[[], dict[str, bool]]) -> None:
        self.store = store
        self.config = config
        self.auth = auth
        self.bound = bound  # SMSC connection name -> bound, for /metrics and the monitor
        self.monitor_page = resources.files(__package__).joinpath("static/monitor.html").read_bytes()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/monitor", self.monitor)
        app.router.add_get("/monitor/data", self.monitor_data)
        app.router.add_post("/monitor/mailing", self.monitor_action)

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
        except StoreError:
            pass  # the gauges keep their last values; /health says the database is away
        else:
            for status in STATUSES:
                metrics.MESSAGES.labels(status).set(counts.get(status, 0))
            metrics.QUEUE_DEPTH.set(cluster.queued)
            metrics.QUEUE_OLDEST.set(cluster.oldest_due_s)
            for link in cluster.links:
                metrics.IN_DOUBT.labels(link.name).set(link.in_doubt)
            metrics.MAIL_BACKLOG.set(cluster.mail_backlog)
            metrics.MAIL_FAILED.set(cluster.mail_failed)
            metrics.PING_BACKLOG.set(cluster.ping_backlog)
            metrics.WEBHOOK_BACKLOG.set(cluster.webhook_backlog)
            metrics.WEBHOOK_FAILING.set(len(cluster.webhook_failing))
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def monitor(self, request: web.Request) -> web.Response:
        """The page for people; it holds no data, and asks /monitor/data with a token."""
        return web.Response(body=self.monitor_page, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP})

    async def monitor_data(self, request: web.Request) -> web.Response:
        """What the monitor shows: an account sees its own mailings, an operator all."""
        try:
            account = None if self.auth.is_operator(request) else await self.auth.account(request)
            scope = account.id if account else None
            mailings = await self.store.reads.recent_mailings(scope, 20)
            throughput = await self.store.reads.throughput(scope)
            queue = await self.store.reads.queue_state()
            detail = await self._mailing_detail(request.query.get("mailing", ""), account)
            notifications = await self._notifications(scope)
        except ApiError as error:
            return web.json_response({"status": error.status, "message": error.message}, status=error.status)
        except StoreError:
            return web.json_response({"status": 503, "message": "database unavailable, retry later"}, status=503)
        document = {"scope": account.code if account else "all",
                    "mailings": [dataclasses.asdict(m) for m in mailings],
                    "throughput": [dataclasses.asdict(t) for t in throughput],
                    "queue": {"depth": queue.queued, "oldest_s": queue.oldest_due_s, "held": queue.held,
                              "paused": queue.paused},
                    "smsc": self.bound(), "mailing": detail, "notifications": notifications}
        return web.json_response(document, dumps=lambda value: json.dumps(value, default=datetime.isoformat))

    async def monitor_action(self, request: web.Request) -> web.Response:
        """Pause, resume or cancel a mailing from the page: an operator any, an account its own."""
        try:
            account = None if self.auth.is_operator(request) else await self.auth.account(request)
            asked = await request.json()
            mailing_id, action = int(asked["id"]), str(asked["action"])
            owner = await self.store.mailings.owner(mailing_id)
            if owner is None or (account is not None and owner.account_id != account.id):
                raise ApiError(404, f"no mailing {mailing_id}")
            mailings = self.store.mailings
            if action == "pause":
                done = await mailings.pause(mailing_id)
            elif action == "resume":
                done = await mailings.resume(mailing_id)
            elif action == "cancel":
                done = canceled.messages if (canceled := await mailings.cancel(mailing_id)) else None
            else:
                raise ApiError(400, "action: pause, resume or cancel")
        except (ValueError, KeyError, TypeError):
            return web.json_response({"status": 400, "message": "a JSON object with id and action"}, status=400)
        except ApiError as error:
            return web.json_response({"status": error.status, "message": error.message}, status=error.status)
        except StoreError:
            return web.json_response({"status": 503, "message": "database unavailable, retry later"}, status=503)
        if done is None:
            return web.json_response({"status": 409, "message": f"mailing {mailing_id}: nothing to {action}"},
                                     status=409)
        log.info("monitor_mailing_action", mailing_id=mailing_id, action=action, messages=done,
                 operator=account is None)
        return web.json_response({"count": done, "action": action})

    async def _notifications(self, scope: int | None) -> dict[str, Any]:
        """What waits to be told: the viewer's webhook events and failing receivers; for
        an operator also the outgoing mail and ping calls of every account."""
        shared = None if scope else await self.store.notifications.backlog()
        return {"webhooks": await self.store.webhooks.backlog(scope),
                "failing": [dataclasses.asdict(f) for f in await self.store.webhooks.failing(scope)],
                "mail": shared.mail if shared else None, "mailFailed": shared.mail_failed if shared else None,
                "pings": shared.pings if shared else None}

    async def _mailing_detail(self, wanted: str, viewer: Account | None) -> dict[str, Any] | None:
        """A mailing's first messages with their status history, if the viewer may see it."""
        if not wanted.isdigit() or len(wanted) > 18:
            return None
        owner = await self.store.mailings.owner(int(wanted))
        if owner is None or (viewer is not None and owner.account_id != viewer.id):
            return None
        account = viewer or await self.store.accounts.get(owner.account)
        if account is None:
            return None
        zone = ZoneInfo(account.rules(self.config.defaults).timezone).key
        reads = self.store.reads
        listing = await reads.messages(owner.account_id, Filter(mailing_ids=[owner.mailing_id]),
                                       Page(limit=DETAIL_MESSAGES), zone)
        messages = json.loads(listing.items)
        history = json.loads((await reads.history(owner.account_id, [m["id"] for m in messages], 2000, 0,
                                                  zone)).items)
        return {"id": owner.mailing_id, "messages": [
            {"id": m["id"], "recipient": m["recipient"], "status": m["status"], "code": m["code"],
             "parts": m["parts"] or [],
             "history": [{"status": h["status"], "date": h["date"]} for h in history if h["smsId"] == m["id"]]}
            for m in messages]}
