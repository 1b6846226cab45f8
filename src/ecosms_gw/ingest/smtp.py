"""mail2sms over SMTP: aiosmtpd on the daemon's own event loop.

No open relay: only the configured addresses are accepted as recipients, and a mail may
only use an account whose allowed senders include the envelope sender, or whose SMTP
password the session authenticated with. The reply carries the outcome, and 250 is only
said once the mailing is committed; faults of ours are always 4xx.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections import Counter
from datetime import timedelta
from typing import Any, AnyStr
from zoneinfo import ZoneInfo

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from ecosms_gw.config import Config
from ecosms_gw.core import mime, report
from ecosms_gw.core.accounts import LOGIN_FAILURES_PER_MINUTE, Account, verify_secret
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.core.ratelimit import SlidingWindow
from ecosms_gw.ingest.pipeline import ACCESS_REASONS, Outcome, counted, cpu_bound, refused, submit
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.notifications import Mail
from ecosms_gw.tls import server_context

log = structlog.get_logger()

LISTEN_BACKLOG = 1024  # connections the kernel holds until accepted: a flood does not drop legitimate SYNs
MAX_RECIPIENTS = 10
MESSAGE_ID_WINDOW = timedelta(hours=24)
BODY_HASH_WINDOW = timedelta(minutes=10)
DRAIN_TIMEOUT_S = 20.0
_MAX_REPLY = 400  # a reply line stays well under SMTP's 512 octets


def reply(outcome: Outcome) -> str:
    """The SMTP reply line of an outcome (interfaces.md, "SMTP")."""
    if outcome.accepted:
        if outcome.duplicate:
            return f"250 2.0.0 duplicate of mailing {outcome.mailing_id}, nothing re-sent"
        return (f"250 2.0.0 mailing {outcome.mailing_id} queued: "
                f"{outcome.messages} messages, {outcome.parts} parts")
    refusal = outcome.report.refusal
    assert refusal is not None
    where = f" (line {refusal.line})" if refusal.line else ""
    body = f" in body {refusal.body}" if refusal.body and outcome.report.several else ""
    text = f"{refusal.reason}{where}{body}: {refusal.detail}"
    if refusal.reason == "rate_limited":
        return f"452 4.7.0 {text}"[:_MAX_REPLY]
    if refusal.reason in ACCESS_REASONS:
        return f"550 5.7.1 {text}"[:_MAX_REPLY]
    if refusal.reason == "too_large":
        return f"552 5.3.4 {text}"[:_MAX_REPLY]
    return f"554 5.6.0 {text}"[:_MAX_REPLY]


def source_of(email: mime.Email) -> tuple[str, timedelta]:
    """The reference a resent mail shares with the first, and how long it counts: an MTA
    that resends after a lost reply keeps the Message-ID (24 h); without one, the same
    bodies within 10 minutes are the same submission."""
    if email.message_id:
        return f"message-id:{email.message_id}", MESSAGE_ID_WINDOW
    digest = hashlib.sha256("\0".join(email.texts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"body-sha256:{digest}", BODY_HASH_WINDOW


class Handler:
    """aiosmtpd hooks: RCPT, DATA and the AUTH mechanisms (async, so that the database
    lookup and the slow password hash never stall the loop)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.addresses = {address.lower() for address in config.smtp.addresses}
        self.locals = {address.rpartition("@")[0] for address in self.addresses}
        self.domains = {address.rpartition("@")[2] for address in self.addresses}
        self.rate = SlidingWindow(config.smtp.max_mails_per_minute)
        self.auth_failures = SlidingWindow(LOGIN_FAILURES_PER_MINUTE)  # per client address
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.background: set[asyncio.Task[Any]] = set()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        local, _, domain = address.lower().rpartition("@")
        if local not in self.locals or domain not in self.domains:
            return "550 5.1.1 no such mailbox here: only SMS addresses are accepted"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self._data(session, envelope)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def _data(self, session: Session, envelope: Envelope) -> str:
        peer = session.peer[0] if session.peer else None
        sender = envelope.mail_from or ""
        raw = envelope.original_content or b""
        try:
            try:
                email = await cpu_bound(len(raw), mime.read_email, raw)
            except Rejected as refusal:
                outcome = refused(refusal, 0)
            else:
                source_ref, window = source_of(email)
                outcome = await submit(self.store, self.config, email.texts, source="smtp",
                                       source_ref=source_ref, dedupe_window=window,
                                       authorise=lambda account: self._authorise(session, sender, account))
        except StoreError as error:
            log.error("smtp_store_unavailable", peer=peer, sender=sender, error=str(error))
            return "451 4.3.0 database unavailable, retry later"
        except Exception:
            log.exception("smtp_data_failed", peer=peer, sender=sender)
            return "451 4.3.0 internal error, retry later"
        if (refused_as := outcome.report.refusal) is not None:
            log.info("mail_rejected", peer=peer, sender=sender, reason=refused_as.reason, line=refused_as.line,
                     detail=refused_as.detail)
        elif not outcome.duplicate and outcome.account is not None:
            self._send_report(outcome, outcome.account, sender)
        return reply(counted("smtp", outcome))

    async def _authorise(self, session: Session, sender: str, account: Account) -> Rejected | None:
        authenticated = session.authenticated and (session.auth_data or "").lower() == account.code.lower()
        if not authenticated and not (sender and account.allows_sender(sender)):
            return Rejected("sender_not_allowed",
                            f"{sender or 'the empty sender'} may not send for account {account.code}: "
                            "authenticate, or have the address allowed")
        if not self.rate.allow(account.id):
            return Rejected("rate_limited", f"more than {self.rate.limit} mails this minute "
                                            f"for account {account.code}, retry later")
        return None

    def _send_report(self, outcome: Outcome, account: Account, sender: str) -> None:
        """The submission report, queued for the mailer after the reply, never delaying it."""
        to = {"sender": sender, "reply-email": account.reply_email}.get(account.submission_report)
        if not to:
            return
        zone = ZoneInfo(account.rules(self.config.defaults).timezone)
        subject = (f"SMS mailing {outcome.mailing_id} queued: {outcome.messages} messages, "
                   f"{outcome.parts} parts")
        task = asyncio.create_task(self._queue_report(Mail(to, subject, report.as_text(outcome.report, zone))))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _queue_report(self, mail: Mail) -> None:
        try:
            await self.store.notifications.queue_mail(mail)
        except StoreError as error:  # the mailing is queued; only its report is lost
            log.warning("submission_report_not_queued", to=mail.to, error=str(error))

    # -- AUTH: the handler's mechanisms replace aiosmtpd's synchronous ones

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        parts = _b64(args[1]) if len(args) > 1 else await server.challenge_auth("")
        if not isinstance(parts, bytes) or parts.count(b"\0") != 2:
            return AuthResult(success=False, handled=False)
        _, login, password = parts.split(b"\0")
        return await self._login(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login = _b64(args[1]) if len(args) > 1 else await server.challenge_auth("Username:")
        password = await server.challenge_auth("Password:")
        if not isinstance(login, bytes) or not isinstance(password, bytes):
            return AuthResult(success=False, handled=False)
        return await self._login(server, login, password)

    async def _login(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        code = login.decode("utf-8", "replace")
        peer = server.session.peer[0] if server.session and server.session.peer else None
        if self.auth_failures.exhausted(peer):  # no password is even checked: guessing goes nowhere
            log.warning("smtp_auth_refused", reason="too_many_failures", login=code[:64], peer=peer)
            await server.push("454 4.7.0 too many failed authentications from this address, retry later")
            return AuthResult(success=False, handled=True)
        try:
            account = await self.store.known.get(code)
        except StoreError as error:
            log.error("smtp_store_unavailable", during="auth", error=str(error))
            await server.push("454 4.7.0 temporary authentication failure, retry later")
            return AuthResult(success=False, handled=True)
        stored = account.smtp_password if account else None
        valid = await asyncio.to_thread(verify_secret, password.decode("utf-8", "replace"),
                                        stored)
        if not (valid and account):
            self.auth_failures.allow(peer)
            log.info("smtp_auth_failed", login=code[:64], peer=peer)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=account.code)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait for the mails being processed, then for the reports being sent."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            if self.background:
                await asyncio.wait(self.background, timeout=timeout)
        except TimeoutError:
            log.warning("smtp_drain_timeout", in_flight=self.in_flight)


def _b64(value: str | bytes) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


class _Connections:
    """Open connections per client address."""

    def __init__(self, per_ip: int) -> None:
        self.per_ip = per_ip
        self.open: Counter[str] = Counter()

    def enter(self, ip: str) -> bool:
        if self.open[ip] >= self.per_ip:
            return False
        self.open[ip] += 1
        return True

    def leave(self, ip: str) -> None:
        self.open[ip] -= 1
        if self.open[ip] <= 0:
            del self.open[ip]


_BARE_LF = re.compile(rb"(?<!\r)\n")


class _Session(SMTP):
    """aiosmtpd's SMTP with a cap on connections per client address, reading bare LF line
    ends as CRLF: a Unix file sent as it is (`curl smtp://... --upload-file body.txt`) is
    one "line" to aiosmtpd otherwise, refused as too long. Postfix accepts bare LF too.
    Lines up to 1 MiB are read (HTML mails made by scripts come on one line; RFC 5321's
    1,000 octets is a sender's duty, and Postfix takes longer ones too); aiosmtpd's own
    refusals are given with our reason classes."""

    line_length_limit = 1_048_576
    _REPLIES = {  # aiosmtpd's wording -> ours
        "500 Line too long": "552 5.3.4 too_large: a line of more than 1 MiB",
        "552 Error: Too much mail data": "552 5.3.4 too_large: more data than the size limit",
        "552 Error: message size exceeds": "552 5.3.4 too_large: the announced SIZE exceeds the limit",
    }

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        ours = next((reply for prefix, reply in self._REPLIES.items() if text.startswith(prefix)), text)
        await super().push(ours)

    def __init__(self, handler: Handler, connections: _Connections, **options: Any) -> None:
        super().__init__(handler, **options)
        self._connections = connections
        self._admitted_ip: str | None = None
        self._ended_in_cr = False  # a CRLF may be split between two reads

    def data_received(self, data: bytes) -> None:
        if b"\n" in data:
            head = b""
            if self._ended_in_cr and data[:1] == b"\n":
                head, data = b"\n", data[1:]
            data = head + _BARE_LF.sub(b"\r\n", data)
        self._ended_in_cr = data[-1:] == b"\r"
        super().data_received(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ip = (transport.get_extra_info("peername") or ("?",))[0]
        assert isinstance(transport, asyncio.Transport)
        if not self._connections.enter(ip):
            log.warning("smtp_too_many_connections", peer=ip)
            transport.write(b"421 4.7.0 too many connections from your address, retry later\r\n")
            transport.close()
            return
        self._admitted_ip = ip
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted_ip is None:
            return
        self._connections.leave(self._admitted_ip)
        super().connection_lost(error)


async def serve(config: Config, store: Store) -> tuple[asyncio.Server, Handler]:
    """Listen as configured on the running loop; the caller closes and drains."""
    handler = Handler(config, store)
    connections = _Connections(config.smtp.max_connections_per_ip)
    context = server_context(config.smtp.tls_cert, config.smtp.tls_key)
    options: dict[str, Any] = dict(
        data_size_limit=config.smtp.max_size_mb * 1_000_000,
        enable_SMTPUTF8=True,
        decode_data=False,
        tls_context=context,
        require_starttls=False,
        auth_require_tls=config.smtp.require_tls_for_auth,
        auth_exclude_mechanism=[],
    )
    listen = config.smtp.listen
    server = await asyncio.get_running_loop().create_server(
        lambda: _Session(handler, connections, **options), listen.bind_host, listen.port, backlog=LISTEN_BACKLOG)
    log.info("smtp_listening", listen=str(listen), starttls=context is not None,
             addresses=sorted(handler.addresses))
    return server, handler
