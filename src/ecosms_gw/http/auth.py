"""Who calls: OAuth 2.0 client credentials for /token, bearer tokens on every /rest call,
and the operator token of the pages for operators (/metrics, the monitor)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import time
from typing import Any

import structlog
from aiohttp import web

from ecosms_gw.config import Config
from ecosms_gw.core import tokens
from ecosms_gw.core.accounts import Account, verify_secret
from ecosms_gw.core.ratelimit import SlidingWindow
from ecosms_gw.http.params import ApiError, check_text, nest
from ecosms_gw.store import Store, StoreError

log = structlog.get_logger()

TOKENS_KEPT = 10_000  # tokens whose signature was checked, kept until they expire
TOKEN_FAILURES_PER_MINUTE = 20  # per client address: secrets cannot be guessed by volume
SECRET_CHECKS_AT_ONCE = 4  # scrypt costs ~50 ms of CPU each: a flood queues, it does not starve


class Auth:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.key = ""
        self.failures = SlidingWindow(TOKEN_FAILURES_PER_MINUTE, 60.0)
        self.secret_checks = asyncio.Semaphore(SECRET_CHECKS_AT_ONCE)
        self.checked: dict[str, tokens.Claims] = {}  # a signature is checked once per token

    async def signing_key(self) -> str:
        if not self.key:
            self.key = await self.store.setting("api_token_key", secrets.token_hex(32))
        return self.key

    async def token(self, request: web.Request) -> web.Response:
        """OAuth 2.0 client credentials: client_id is the account code, client_secret its
        API secret."""
        client = request.remote or "?"
        try:
            fields = await body_fields(request)
            check_text(fields)
        except ApiError as error:
            return _oauth_error("invalid_request", error.message)
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        if self.failures.exhausted(client):
            return _oauth_error("invalid_client", "too many failed attempts, wait a minute", 429)
        code, secret = str(fields.get("client_id") or ""), str(fields.get("client_secret") or "")
        try:
            account = await self.store.known.get(code) if code else None
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

    async def account(self, request: web.Request) -> Account:
        """The account of the bearer token, or 401."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, "Authenticate failed: an Authorization: Bearer token is required")
        claims = await self.claims(header[len("Bearer "):].strip())
        account = await self.store.known.get(claims.account) if claims else None
        if claims is None or account is None or account.api_secret is None or \
                not hmac.compare_digest(tokens.fingerprint(account.api_secret), claims.fingerprint):
            raise ApiError(401, "Authenticate failed")
        return account

    async def claims(self, token: str) -> tokens.Claims | None:
        """The claims of a valid, unexpired token. Whether the account and its secret are
        still the same is checked on every call, against the accounts kept in memory."""
        claims = self.checked.get(token)
        if claims is None:
            claims = tokens.read(await self.signing_key(), token)
            if claims is None:
                return None
            if len(self.checked) >= TOKENS_KEPT:
                self.checked.clear()
            self.checked[token] = claims
        if claims.expires <= time.time():
            del self.checked[token]
            return None
        return claims

    def require_operator(self, request: web.Request) -> None:
        if not self.is_operator(request):
            raise web.HTTPUnauthorized(text="operator token required (http.operator_token; without one, "
                                            "only from this host)\n")

    def is_operator(self, request: web.Request) -> bool:
        """The configured bearer token, or a loopback client when none is set."""
        token = self.config.http.operator_token
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            return hmac.compare_digest(given.encode(), token.encode())
        return "Authorization" not in request.headers and \
            ipaddress.ip_address(request.remote or "0.0.0.0").is_loopback


async def body_fields(request: web.Request) -> dict[str, Any]:
    """Form or JSON fields of a request body."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the JSON body must be an object")
        return data
    if request.content_type == "application/x-www-form-urlencoded":
        return nest([(key, str(value)) for key, value in (await request.post()).items()])
    if request.content_type == "text/csv":  # a list to import (opt-outs)
        return {"csv": await request.text()}
    if request.can_read_body:
        raise ApiError(415, "send parameters as application/x-www-form-urlencoded or application/json")
    return {}


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
