"""The monitor: a page for people (charts drawn by the vendored uPlot, nothing loaded from
elsewhere), the data it polls, mailing actions, and a test SMS for the operator."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from ecosms_gw.config import Config
from ecosms_gw.core.accounts import Account
from ecosms_gw.http import params
from ecosms_gw.http.auth import Auth
from ecosms_gw.http.params import ApiError
from ecosms_gw.ingest import pipeline
from ecosms_gw.store import Store, StoreConflict, StoreError
from ecosms_gw.store.monitor import Charts
from ecosms_gw.store.reads import Filter, Page

log = structlog.get_logger()

DETAIL_MESSAGES = 200  # of a mailing, on the monitor
CHARTS_TTL_S = 5.0  # charts are read at most this often per viewer scope, whoever polls
CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
ASSETS = {"uplot.js": ("uplot/uPlot.iife.min.js", "text/javascript"),
          "uplot.css": ("uplot/uPlot.min.css", "text/css")}


def _json(document: Any, status: int = 200) -> web.Response:
    return web.json_response(document, status=status, dumps=lambda value: json.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(type(value).__name__)


Handler = Callable[["Monitor", web.Request], Awaitable[web.Response]]


def _answers(malformed: str | None = None) -> Callable[[Handler], Handler]:
    """Refusals as the API gives them: ApiError with its status, a database away 503, and
    (with `malformed`) a body that is not the object asked for 400."""
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def answer(self: Monitor, request: web.Request) -> web.Response:
            try:
                return await handler(self, request)
            except ApiError as error:
                return _json({"status": error.status, "message": error.message}, error.status)
            except StoreError:
                return _json({"status": 503, "message": "database unavailable, retry later"}, 503)
            except (ValueError, KeyError, TypeError):
                if malformed is None:
                    raise
                return _json({"status": 400, "message": malformed}, 400)
        return answer
    return wrap


class Monitor:
    def __init__(self, store: Store, config: Config, auth: Auth) -> None:
        self.store = store
        self.config = config
        self.auth = auth
        static = resources.files(__package__).joinpath("static")
        self.page = static.joinpath("monitor.html").read_bytes()
        self.assets = {name: (static.joinpath(path).read_bytes(), kind) for name, (path, kind) in ASSETS.items()}
        self.charts_read: dict[int | None, tuple[float, Charts]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/monitor", self.monitor)
        app.router.add_get("/monitor/{asset:uplot\\.(js|css)}", self.asset)
        app.router.add_get("/monitor/data", self.data)
        app.router.add_post("/monitor/mailing", self.action)
        app.router.add_post("/monitor/send", self.send)

    async def monitor(self, request: web.Request) -> web.Response:
        """The page for people; it holds no data, and asks /monitor/data with a token."""
        return web.Response(body=self.page, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP})

    async def asset(self, request: web.Request) -> web.Response:
        body, kind = self.assets[request.match_info["asset"]]
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "max-age=86400"})

    async def _viewer(self, request: web.Request) -> tuple[Account | None, int | None]:
        """Who looks (None: the operator) and whose data: an account its own, the operator
        every account's or the one `account` names."""
        if not self.auth.is_operator(request):
            account = await self.auth.account(request)
            return account, account.id
        code = request.query.get("account", "")
        if not code:
            return None, None
        chosen = await self.store.known.get(code)
        if chosen is None:
            raise ApiError(404, f"no account {code}")
        return None, chosen.id

    @_answers()
    async def data(self, request: web.Request) -> web.Response:
        """What the monitor shows, for the viewer's scope."""
        account, scope = await self._viewer(request)
        operator = account is None
        return _json({
            "scope": account.code if account else request.query.get("account") or "all",
            "operator": operator,
            "accounts": await self.store.monitor.account_codes() if operator else [],
            "mailings": await self.store.reads.recent_mailings(scope, 20),
            "paused": await self.store.monitor.paused(scope),
            "queue": await self.store.reads.queue_state(),
            "links": await self._links() if operator else [],
            "charts": await self._charts(scope),
            "mailing": await self._mailing(request.query.get("mailing", ""), account),
            "notifications": await self._notifications(scope),
        })

    async def _charts(self, scope: int | None) -> Charts:
        """The charts of a scope, read again once they are `CHARTS_TTL_S` old."""
        now = time.monotonic()
        read = self.charts_read.get(scope)
        if read is None or now - read[0] > CHARTS_TTL_S:
            read = self.charts_read[scope] = (now, await self.store.monitor.charts(scope))
        return read[1]

    async def _links(self) -> list[dict[str, Any]]:
        """Every configured link, as the cluster serves it."""
        known = {link.name: link for link in await self.store.dispatch.links()}
        rows = []
        for smsc in self.config.smsc:
            link = known.get(smsc.name)
            served = link if link is not None and link.bound_since is not None else None
            rows.append({"name": smsc.name, "bound": served is not None,
                         "daemon": f"{served.owner_host}:{served.owner_pid}" if served else None,
                         "since": link.bound_since if link else None,
                         "tps": round(served.tps_now, 1) if served else 0, "tpsConfigured": smsc.tps,
                         "window": served.in_flight if served else 0, "windowSize": smsc.window,
                         "throttled": link.throttled if link else 0, "inDoubt": link.in_doubt if link else 0})
        return rows

    @_answers(malformed="a JSON object with id and action")
    async def action(self, request: web.Request) -> web.Response:
        """Pause, resume or cancel a mailing from the page: an operator any, an account its own."""
        account = None if self.auth.is_operator(request) else await self.auth.account(request)
        asked = await request.json()
        mailing_id, action = int(asked["id"]), str(asked["action"])
        owner = await self.store.mailings.owner(mailing_id)
        if owner is None or (account is not None and owner.account_id != account.id):
            raise ApiError(404, f"no mailing {mailing_id}")
        if action not in ("pause", "resume", "cancel"):
            raise ApiError(400, "action: pause, resume or cancel")
        with structlog.contextvars.bound_contextvars(mailing_id=mailing_id, account=owner.account):
            try:
                acted = await self.store.mailings.act(mailing_id, action)
            except StoreConflict as conflict:
                raise ApiError(409, str(conflict)) from None
            log.info("monitor_mailing_action", action=action, messages=acted.messages, operator=account is None)
        return _json({"count": acted.messages, "action": action})

    @_answers(malformed="a JSON object with account, number and text")
    async def send(self, request: web.Request) -> web.Response:
        """A test SMS from the page (operator only): composed and sent as an API call of
        the account would be, in a mailing named `monitor test`."""
        self.auth.require_operator(request)
        asked = await request.json()
        code, number, text = str(asked["account"]), str(asked["number"]).strip(), str(asked["text"])
        if not number or not text or len(text) > 1000:
            raise ApiError(400, "a number and a text of at most 1,000 characters")
        account = await self.store.known.get(code)
        if account is None:
            raise ApiError(404, f"no account {code}")
        body = params.body(account.code, text, [{"recipient": number}], None)
        outcome = pipeline.counted("monitor", await pipeline.enqueue(
            self.store, self.config, account, [body], size=len(text), source="http",
            options=pipeline.Options(name="monitor test")))
        if outcome.report.refusal is not None or not outcome.messages:
            reasons = outcome.report.refusal or outcome.report.dropped_document()
            raise ApiError(400, f"not sent: {reasons}")
        return _json({"mailing": outcome.mailing_id, "messages": outcome.messages}, 201)

    async def _notifications(self, scope: int | None) -> dict[str, Any]:
        """What waits to be told: the viewer's webhook events and failing receivers; for
        an operator also the outgoing mail and ping calls of every account."""
        shared = None if scope else await self.store.notifications.backlog()
        return {"webhooks": await self.store.webhooks.backlog(scope),
                "failing": await self.store.webhooks.failing(scope),
                "mail": shared.mail if shared else None, "mailFailed": shared.mail_failed if shared else None,
                "pings": shared.pings if shared else None}

    async def _mailing(self, wanted: str, viewer: Account | None) -> dict[str, Any] | None:
        """A mailing's progress over time and first messages with their status history, if
        the viewer may see it."""
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
        progress = await self.store.monitor.mailing_progress(owner.account_id, owner.mailing_id)
        return {"id": owner.mailing_id, "account": owner.account, "progress": progress, "messages": [
            {"id": m["id"], "recipient": m["recipient"], "status": m["status"], "code": m["code"],
             "parts": m["parts"] or [],
             "history": [{"status": h["status"], "date": h["date"]} for h in history if h["smsId"] == m["id"]]}
            for m in messages]}
