"""The HTTP side of the daemon: the seed-compatible API under /rest (section 3), its
tokens, /health for load balancers and /metrics for Prometheus.

Every /rest call carries a bearer token and sees only its own account's data: each query
is scoped by the token's account, and another account's ids are answered exactly as ids
that do not exist. Our own faults (database away) are 503, never a 4xx.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import api, ingest, metrics, openapi, ping, tokens
from .accounts import Account, verify_secret
from .config import Config
from .ratelimit import SlidingWindow
from .store import Link, Store, StoreError

log = structlog.get_logger()

ACTIONS = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}
FORMATS = ("json", "xml", "csv", "js")
TOKEN_FAILURES_PER_MINUTE = 20  # per client address: secrets cannot be guessed by volume
SECRET_CHECKS_AT_ONCE = 4  # scrypt costs ~50 ms of CPU each: a flood queues, it does not starve

# What each resource shows, by the seed's names (queries.sql writes them).
SMS = ("id", "status", "text", "date", "recipient", "mailingId", "mailingName", "code", "description",
       "response", "segments", "encoding", "parts")
REPLY = ("id", "text", "date", "recipient", "smsId", "mailingId", "mailingName")
STATUS = ("smsId", "status", "recipient", "mailingId", "date", "code", "description", "response")
MAILING = ("id", "name", "status", "text", "date", "messages", "parts", "source", "createdAt")
STATS = ("wait", "ok", "on", "no", "ko", "rep", "optout", "total")
# The names a resource sorts by -> the key its query sorts by.
SORT_MESSAGES = {"id": "id", "date": "date", "status": "status", "recipient": "recipient", "smsId": "id"}
SORT_MAILINGS = {"id": "id", "date": "date", "name": "name"}


class Call:
    """One authenticated /rest call: its account, parameters and answer format."""

    def __init__(self, store: Store, account: Account, params: dict[str, Any], zone: ZoneInfo) -> None:
        self.store, self.account, self.params, self.zone = store, account, params, zone

    async def listed(self, query: str, names: tuple[str, ...], default: tuple[str, ...], *args: Any) -> api.Listed:
        """A read of queries.sql, with the properties asked for (`names` are all the
        resource has) in the account's time zone."""
        chosen = api.properties(self.params, names, default)  # before the query: a bad one is a 400
        [row] = await self.store.rows(query, self.account.id, *args, self.zone.key)
        return self.answer(row, names, chosen)

    def answer(self, row: dict[str, Any], names: tuple[str, ...], chosen: list[str]) -> api.Listed:
        return api.Listed(row["size"], row["total"] if api.flag(self.params, "total") else None, row["list"],
                          chosen, chosen == list(names))


class StatusCache:
    """Status reads by mailing, the polling that dominates an API's load, kept with the
    version of their messages (see `status_version`): read again unchanged, they are
    answered without being written again, which costs a tenth of writing 2,000 statuses.
    Exact, never stale: any change of a message changes the version. The last 32 are kept."""

    SIZE = 32

    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[Any, ...], tuple[str, dict[str, Any]]] = OrderedDict()
        # reads being written: callers asking the same at the same version wait for it
        self.writing: dict[tuple[Any, ...], asyncio.Future[dict[str, Any]]] = {}

    async def row(self, store: Store, call: Call, mailing_ids: list[int], args: tuple[Any, ...]) -> dict[str, Any]:
        key = (call.account.id, call.zone.key, *map(repr, args))
        version = await store.status_version(call.account.id, mailing_ids)
        if (kept := self.entries.get(key)) is not None and kept[0] == version:
            self.entries.move_to_end(key)
            return kept[1]
        if (pending := self.writing.get((*key, version))) is not None:
            return await asyncio.shield(pending)
        pending = self.writing[(*key, version)] = asyncio.get_running_loop().create_future()
        try:
            written, [row] = await store.rows_at_version(call.account.id, mailing_ids, "api_messages",
                                                         call.account.id, *args, call.zone.key)
        except BaseException as error:
            pending.set_exception(error)
            pending.exception()  # retrieved here: the waiters, if any, raise it themselves
            raise
        finally:
            del self.writing[(*key, version)]
        pending.set_result(row)
        self.entries[key] = (written, row)
        self.entries.move_to_end(key)
        while len(self.entries) > self.SIZE:
            self.entries.popitem(last=False)
        return row


Handler = Callable[["Api", Call], Awaitable[tuple[int, dict[str, Any] | api.Listed]]]


class Api:
    def __init__(self, store: Store, config: Config, bound: Callable[[], dict[str, bool]] = dict) -> None:
        self.store = store
        self.config = config
        self.bound = bound  # SMSC connection name -> bound, for /health and /metrics
        self.key = ""
        self.failures = SlidingWindow(TOKEN_FAILURES_PER_MINUTE, 60.0)
        self.secret_checks = asyncio.Semaphore(SECRET_CHECKS_AT_ONCE)
        self.statuses = StatusCache()
        # served as they are, built once
        self.openapi = json.dumps(openapi.spec({"sms": SMS, "reply": REPLY, "status": STATUS, "mailing": MAILING,
                                                "stats": STATS})).encode()
        self.monitor_page = resources.files(__package__).joinpath("static/monitor.html").read_bytes()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.http.max_body_kb * 1024,
                              middlewares=[self._no_cache])
        app.router.add_post("/token", self.token)
        app.router.add_route("*", r"/rest/{resource:[a-z]+}{ext:(\.[a-z]+)?}", self.rest)
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/openapi.json", self.description)
        app.router.add_get("/monitor", self.monitor)
        app.router.add_get("/monitor/data", self.monitor_data)
        return app

    async def description(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")

    @web.middleware
    async def _no_cache(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def signing_key(self) -> str:
        if not self.key:
            self.key = await self.store.setting("api_token_key", secrets.token_hex(32))
        return self.key

    # ---------------------------------------------------------------- /token

    async def token(self, request: web.Request) -> web.Response:
        """OAuth 2.0 client credentials: client_id is the account code, client_secret its
        API secret."""
        client = request.remote or "?"
        try:
            fields = await _fields(request)
            api.check_text(fields)
        except api.ApiError as error:
            return _oauth_error("invalid_request", error.message)
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        if self.failures.exhausted(client):
            return _oauth_error("invalid_client", "too many failed attempts, wait a minute", 429)
        code, secret = str(fields.get("client_id") or ""), str(fields.get("client_secret") or "")
        try:
            account = await self.store.account(code) if code else None
            async with self.secret_checks:
                valid = await asyncio.to_thread(verify_secret, secret, account.api_secret if account else None)
            key = await self.signing_key()
        except StoreError:
            return web.json_response({"error": "temporarily_unavailable",
                                      "error_description": "database unavailable, retry later"}, status=503)
        if not valid or account is None or account.api_secret is None:
            self.failures.allow(client)
            log.warning("api_token_refused", client=client, client_id=code[:64])
            return _oauth_error("invalid_client", "The client credentials are invalid")
        ttl = self.config.http.token_ttl_s
        return web.json_response({"access_token": tokens.issue(key, account.code, account.api_secret, ttl),
                                  "expires_in": str(ttl), "token_type": "bearer", "scope": "basic"})

    # ---------------------------------------------------------------- /rest

    async def rest(self, request: web.Request) -> web.Response:
        fmt = (request.match_info["ext"] or ".json")[1:]
        callback = request.query.get("callback")
        try:
            if fmt not in FORMATS:
                raise api.ApiError(404, f"unknown format .{fmt}: json, xml, csv or js")
            account = await self._account(request)
            params = await _params(request)
            callback = api.single(params, "callback") or callback
            action = api.single(params, "action") or ACTIONS.get(request.method, "")
            handler = ROUTES.get((request.match_info["resource"], action))
            if handler is None:
                known = {resource for resource, _ in ROUTES}
                if request.match_info["resource"] not in known:
                    raise api.ApiError(404, f"unknown resource {request.match_info['resource']!r}")
                raise api.ApiError(405, f"{request.match_info['resource']}: no action {action!r}")
            status, document = await handler(self, Call(self.store, account, params, self._zone(account)))
        except api.ApiError as error:
            status, document = error.status, {"status": error.status, "message": error.message}
        except StoreError as error:
            log.error("api_store_unavailable", error=str(error))
            status, document = 503, {"status": 503, "message": "database unavailable, retry later"}
        try:
            body, content_type = api.render(document, fmt, callback)
        except api.ApiError as error:  # a bad callback or format: answered in JSON
            status = error.status
            body, content_type = api.render({"status": status, "message": error.message}, "json")
        return web.Response(status=status, body=body, content_type=content_type.split(";")[0],
                            charset="utf-8")

    def _zone(self, account: Account) -> ZoneInfo:
        """Dates of the API are in the account's time zone, as in its mail bodies."""
        return ZoneInfo(account.rules(self.config.defaults).timezone)

    async def _account(self, request: web.Request) -> Account:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise api.ApiError(401, "Authenticate failed: an Authorization: Bearer token is required")
        found = tokens.read(await self.signing_key(), header[len("Bearer "):].strip())
        account = await self.store.account(found[0]) if found else None
        if found is None or account is None or account.api_secret is None or \
                not hmac.compare_digest(tokens.fingerprint(account.api_secret), found[1]):
            raise api.ApiError(401, "Authenticate failed")
        return account

    # ---------------------------------------------------------------- health and metrics

    async def live(self, request: web.Request) -> web.Response:
        """The process answers (systemd's watchdog, a liveness probe)."""
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """This daemon takes SMTP, FTP and HTTP: its database answers. A standby that owns no
        SMSC link is ready too (load balancers keep sending it work)."""
        database = await self._database_answers()
        return web.json_response({"status": "ok" if database else "unavailable", "database": database},
                                 status=200 if database else 503)

    async def health(self, request: web.Request) -> web.Response:
        """200 when the database answers and every SMSC link configured here is bound by some
        daemon of the cluster; the body says, per link, which daemon serves it since when."""
        links: dict[str, Link] = {}
        try:
            links = {link.name: link for link in await self.store.links()}
            database = True
        except StoreError:
            database = False
        smsc, served = {}, {}
        for name in (smsc_config.name for smsc_config in self.config.smsc):
            link = links.get(name)
            smsc[name] = "bound" if link and link.bound_since else "down"
            if link and link.bound_since:
                served[name] = {"daemon": f"{link.owner_host}:{link.owner_pid}",
                                "since": link.bound_since.isoformat()}
        healthy = database and all(state == "bound" for state in smsc.values())
        return web.json_response({"status": "ok" if healthy else "unavailable", "database": database,
                                  "smsc": smsc, "served_by": served}, status=200 if healthy else 503)

    async def _database_answers(self) -> bool:
        try:
            await self.store.ping()
        except StoreError:
            return False
        return True

    async def metrics(self, request: web.Request) -> web.Response:
        self._operator(request)
        for name, up in self.bound().items():
            metrics.SMSC_BOUND.labels(name).set(1 if up else 0)
        try:
            counts = await self.store.message_counts()
            cluster = await self.store.cluster()
        except StoreError:
            pass  # the gauges keep their last values; /health says the database is away
        else:
            for status in ("wait", "on", "ok", "ko", "rep", "no"):
                metrics.MESSAGES.labels(status).set(counts.get(status, 0))
            metrics.QUEUE_DEPTH.set(cluster.queued)
            metrics.QUEUE_OLDEST.set(cluster.oldest_due_s)
            for link in cluster.links:
                metrics.IN_DOUBT.labels(link.name).set(link.in_doubt)
            metrics.MAIL_BACKLOG.set(cluster.mail_backlog)
            metrics.MAIL_FAILED.set(cluster.mail_failed)
            metrics.PING_BACKLOG.set(cluster.ping_backlog)
        return web.Response(body=generate_latest(metrics.REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _operator(self, request: web.Request) -> None:
        """Operators' pages: the configured bearer token, or a loopback client when none is set."""
        if not self._is_operator(request):
            raise web.HTTPUnauthorized(text="operator token required (http.operator_token; without one, "
                                            "only from this host)\n")

    def _is_operator(self, request: web.Request) -> bool:
        token = self.config.http.operator_token
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            return hmac.compare_digest(given.encode(), token.encode())
        return "Authorization" not in request.headers and \
            ipaddress.ip_address(request.remote or "0.0.0.0").is_loopback

    # ---------------------------------------------------------------- the monitor page

    async def monitor(self, request: web.Request) -> web.Response:
        """The page for people; it holds no data, and asks /monitor/data with a token."""
        return web.Response(body=self.monitor_page, content_type="text/html", charset="utf-8", headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"})

    async def monitor_data(self, request: web.Request) -> web.Response:
        """What the monitor shows: an account sees its own mailings, an operator all."""
        try:
            account = None if self._is_operator(request) else await self._account(request)
            scope = account.id if account else None
            mailings = await self.store.rows("monitor_mailings", scope, 20)
            throughput = await self.store.rows("monitor_throughput", scope)
            queued, oldest_s = await self.store.queue_state()
            detail = await self._mailing_detail(request.query.get("mailing", ""), account)
        except api.ApiError as error:
            return web.json_response({"status": error.status, "message": error.message}, status=error.status)
        except StoreError:
            return web.json_response({"status": 503, "message": "database unavailable, retry later"}, status=503)
        document = {"scope": account.code if account else "all", "mailings": mailings, "throughput": throughput,
                    "queue": {"depth": queued, "oldest_s": oldest_s},
                    "smsc": self.bound(), "mailing": detail}
        return web.json_response(document, dumps=lambda value: json.dumps(value, default=datetime.isoformat))

    async def _mailing_detail(self, wanted: str, account: Account | None) -> dict[str, Any] | None:
        """A mailing's first 200 messages with their status history, if the viewer may see it."""
        if not wanted.isdigit() or len(wanted) > 18:
            return None
        mailing = await self.store.mailing(int(wanted))
        if mailing is None or (account is not None and mailing["account_id"] != account.id):
            return None
        account = account or await self.store.account(mailing["account"])
        owner = Call(self.store, account, {}, self._zone(account))
        messages = (await owner.listed("api_messages", SMS, SMS, None, None, None, [mailing["id"]], None, None,
                                       "id", False, 200, 0, "sms")).document()["list"]
        history = (await owner.listed("api_history", STATUS, STATUS, [m["id"] for m in messages],
                                      api.MAX_READ, 0)).document()["list"]
        return {"id": mailing["id"], "messages": [
            {"id": m["id"], "recipient": m["recipient"], "status": m["status"], "code": m["code"],
             "parts": m["parts"] or [], "history": [{"status": h["status"], "date": h["date"]} for h in history if h["smsId"] == m["id"]]}
            for m in messages]}


async def _fields(request: web.Request) -> dict[str, Any]:
    """Form or JSON fields of a request body."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise api.ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise api.ApiError(400, "the JSON body must be an object")
        return data
    if request.content_type == "application/x-www-form-urlencoded":
        return api.nest(list((await request.post()).items()))
    if request.can_read_body:
        raise api.ApiError(415, "send parameters as application/x-www-form-urlencoded or application/json")
    return {}


async def _params(request: web.Request) -> dict[str, Any]:
    """Query and body parameters together (the seed sends GET parameters in the body too)."""
    params = api.nest(list(request.query.items()))
    params.update(await _fields(request))
    api.check_text(params)
    return params


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


# -------------------------------------------------------------------- resources


async def read_sms(self: Api, call: Call) -> tuple[int, api.Listed]:
    params = call.params
    limit, offset = api.page(params)
    since, until = api.date_range(params, call.zone)
    way = api.single(params, "way") or "mt"
    if way not in ("mt", "mo"):
        raise api.ApiError(400, "way: mt or mo")
    sort_key, descending = api.sort(params, SORT_MESSAGES)
    filters = (api.ids(params, "id"), api.values(params, "recipient"), api.values(params, "mailingName"),
               api.ids(params, "mailingId"), since, until, sort_key, descending, limit, offset)
    if way == "mo":
        return 200, await call.listed("api_replies", REPLY, ("id",), *filters)
    return 200, await call.listed("api_messages", SMS, ("id",), *filters, "sms")


async def create_sms(self: Api, call: Call) -> tuple[int, dict[str, Any]]:
    outcome = await _create(self, call, at_most=1)
    call.params = {}  # the created message with every property
    created = await call.listed("api_messages", SMS, SMS, None, None, None, [outcome.mailing_id], None, None,
                                "id", False, 1, 0, "sms")
    return 201, created.document()["list"][0] | {"dropped": outcome.document["dropped"]}


async def create_mailing(self: Api, call: Call) -> tuple[int, dict[str, Any]]:
    outcome = await _create(self, call, at_most=api.MAX_CONTACTS)
    document = outcome.document
    return 201, {"id": outcome.mailing_id, "name": api.single(call.params, "name"),
                 "messages": outcome.messages, "parts": outcome.parts,
                 "dropped": document["dropped"], "warnings": document["warnings"]}


async def _create(self: Api, call: Call, at_most: int) -> ingest.Outcome:
    """An sms or a mailing, composed exactly as a mail body with these contacts would be."""
    params = call.params
    text = api.single(params, "text")
    if not text:
        raise api.ApiError(417, "text is required")
    people = api.contacts(params, at_most)
    sender = api.single(params, "sender")
    if sender and sender != call.account.sender_id:
        raise api.ApiError(400, f"sender {sender!r} is not this account's approved sender id")
    date = api.single(params, "date")
    send_at = api.moment(date, call.zone, "date")[0] if date else None
    name = api.single(params, "name")
    if name is not None and len(name) > 200:
        raise api.ApiError(400, "name: at most 200 characters")
    ping_url = api.single(params, "pingUrl") or None
    if ping_url and (problem := ping.url_problem(ping_url)):
        raise api.ApiError(400, f"pingUrl: {problem}")
    body = api.body(call.account.code, text, people, send_at)
    outcome = ingest.counted("http", await ingest.enqueue(self.store, self.config, call.account, [body],
                                                          size=len(text) * len(people), source="http", name=name,
                                                          ping_url=ping_url))
    if not outcome.accepted:
        document = outcome.document
        raise api.ApiError(400, f"{document['reason']}: {document['detail']}")
    return outcome


async def read_mailing(self: Api, call: Call) -> tuple[int, api.Listed]:
    params = call.params
    limit, offset = api.page(params)
    sort_key, descending = api.sort(params, SORT_MAILINGS)
    return 200, await call.listed("api_mailings", MAILING, MAILING, api.ids(params, "id"),
                                  api.values(params, "name"), sort_key, descending, limit, offset)


async def cancel_mailing(self: Api, call: Call) -> tuple[int, dict[str, Any]]:
    found = api.ids(call.params, "id")
    if not found or len(found) != 1:
        raise api.ApiError(417, "id is required: the mailing to cancel")
    if not await self.store.owns_mailing(call.account.id, found[0]):
        raise api.ApiError(404, f"no mailing {found[0]}")
    canceled = await self.store.cancel(found[0])
    if canceled is None:
        raise api.ApiError(304, f"mailing {found[0]} has nothing left to cancel")
    status, count = canceled
    log.info("mailing_canceled", mailing_id=found[0], account=call.account.code, status=status, messages=count)
    return 200, {"count": count, "status": status}


async def cancel_sms(self: Api, call: Call) -> tuple[int, dict[str, Any]]:
    found = api.ids(call.params, "id")
    if not found:
        raise api.ApiError(417, "id is required: the messages to cancel")
    count = await self.store.cancel_messages(call.account.id, found)
    if not count:
        raise api.ApiError(304, "nothing to cancel: sent already, or no such message")
    log.info("messages_canceled", account=call.account.code, messages=count)
    return 200, {"count": count}


async def read_status(self: Api, call: Call) -> tuple[int, api.Listed]:
    params = call.params
    limit, offset = api.page(params)
    sort_key, descending = api.sort(params, SORT_MESSAGES)
    sms_ids, names, mailing_ids = api.ids(params, "smsId"), api.values(params, "mailingName"), \
        api.ids(params, "mailingId")
    args = (sms_ids, None, names, mailing_ids, None, None, sort_key, descending, limit, offset, "status")
    if mailing_ids and not sms_ids and not names:
        chosen = api.properties(params, STATUS, STATUS)
        return 200, call.answer(await self.statuses.row(self.store, call, mailing_ids, args), STATUS, chosen)
    return 200, await call.listed("api_messages", STATUS, STATUS, *args)


async def status_queue(self: Api, call: Call) -> tuple[int, api.Listed]:
    limit, _ = api.page(call.params)
    return 200, await call.listed("api_status_queue", STATUS, STATUS, limit)


async def read_history(self: Api, call: Call) -> tuple[int, api.Listed]:
    found = api.ids(call.params, "smsId")
    if not found:
        raise api.ApiError(417, "smsId is required")
    limit, offset = api.page(call.params)
    return 200, await call.listed("api_history", STATUS, STATUS, found, limit, offset)


async def read_stats(self: Api, call: Call) -> tuple[int, dict[str, Any]]:
    params = call.params
    mailing_ids, names, month = api.ids(params, "mailingId"), api.values(params, "mailingName"), \
        api.single(params, "month")
    if month and (mailing_ids or names):
        raise api.ApiError(400, "month cannot be combined with mailingId or mailingName")
    stats = await self.store.api_stats(call.account.id, mailing_ids, names,
                                       api.month_range(month, call.zone) if month else None)
    chosen = api.properties(params, STATS, STATS)
    return 200, {"size": 1, "total": None, "list": [{name: stats[name] for name in chosen}]}


ROUTES: dict[tuple[str, str], Handler] = {
    ("sms", "read"): read_sms, ("sms", "create"): create_sms, ("sms", "delete"): cancel_sms,
    ("mailing", "read"): read_mailing, ("mailing", "create"): create_mailing,
    ("mailing", "delete"): cancel_mailing,
    ("status", "read"): read_status, ("status", "queue"): status_queue,
    ("smsstatus", "read"): read_history,
    ("stats", "read"): read_stats,
}

