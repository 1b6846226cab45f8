"""The HTTP side of the daemon: the seed-compatible API under /rest (section 3) and its
tokens, the OpenAPI description, the operators' pages (ops.py) and the monitor.

Every /rest call carries a bearer token and sees only its own account's data. Our own
faults (database away) are 503, never a 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from ecosms_gw.config import Config
from ecosms_gw.http import openapi, params, render
from ecosms_gw.http.auth import Auth, body_fields
from ecosms_gw.http.monitor import Monitor
from ecosms_gw.http.ops import Ops
from ecosms_gw.http.params import ApiError
from ecosms_gw.http.resources import ROUTES, STATS_ASKED, Call, Handler
from ecosms_gw.http.status_cache import StatusCache
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.reads import RESOURCES

log = structlog.get_logger()

ACTIONS = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}
FORMATS = ("json", "xml", "csv", "js")


class Api:
    def __init__(self, store: Store, config: Config, bound: Callable[[], dict[str, bool]] = dict) -> None:
        self.store = store
        self.config = config
        self.auth = Auth(store, config)
        self.ops = Ops(store, config, self.auth, bound)
        self.monitor = Monitor(store, config, self.auth)
        self.statuses = StatusCache()
        # served as it is, built once
        self.openapi = json.dumps(openapi.spec({name: resource.names for name, resource in RESOURCES.items()}
                                               | {"stats": STATS_ASKED})).encode()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.http.max_body_kb * 1024, middlewares=[_no_cache])
        app.router.add_post("/token", self.auth.token)
        app.router.add_route("*", r"/rest/{resource:[a-z]+}{ext:(\.[a-z]+)?}", self.rest)
        app.router.add_get("/openapi.json", self.description)
        self.ops.add_routes(app)
        self.monitor.add_routes(app)
        return app

    async def description(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")

    async def rest(self, request: web.Request) -> web.Response:
        fmt = (request.match_info["ext"] or ".json")[1:]
        callback = request.query.get("callback")
        try:
            if fmt not in FORMATS:
                raise ApiError(404, f"unknown format .{fmt}: json, xml, csv or js")
            account = await self.auth.account(request)
            values = await _params(request)
            callback = params.single(values, "callback") or callback
            action = params.single(values, "action") or ACTIONS.get(request.method, "")
            handler = _handler(request.match_info["resource"], action)
            zone = ZoneInfo(account.rules(self.config.defaults).timezone)
            key = params.idempotency_key(request.headers.get("Idempotency-Key"))
            status, document = await handler(Call(self.store, self.config, self.statuses, account, values, zone,
                                                  key))
        except ApiError as error:
            status, document = error.status, {"status": error.status, "message": error.message}
        except StoreError as error:
            log.error("api_store_unavailable", error=str(error))
            status, document = 503, {"status": 503, "message": "database unavailable, retry later"}
        return _response(status, document, fmt, callback)


def _handler(resource: str, action: str) -> Handler:
    handler = ROUTES.get((resource, action))
    if handler is None:
        if resource not in {known for known, _ in ROUTES}:
            raise ApiError(404, f"unknown resource {resource!r}")
        raise ApiError(405, f"{resource}: no action {action!r}")
    return handler


def _response(status: int, document: dict[str, Any] | render.Listed, fmt: str, callback: str | None) -> web.Response:
    try:
        body, content_type = render.render(document, fmt, callback)
    except ApiError as error:  # a bad callback or format: answered in JSON
        status = error.status
        body, content_type = render.render({"status": status, "message": error.message}, "json")
    return web.Response(status=status, body=body, content_type=content_type.split(";")[0], charset="utf-8")


@web.middleware
async def _no_cache(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _params(request: web.Request) -> dict[str, Any]:
    """Query and body parameters together (the seed sends GET parameters in the body too)."""
    values = params.nest(list(request.query.items()))
    values.update(await body_fields(request))
    params.check_text(values)
    return values


