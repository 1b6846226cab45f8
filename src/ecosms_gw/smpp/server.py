"""The SMPP server: applications that speak SMPP 3.4 (ESMEs) bind with an account's code
and its --smpp-password, and submit through the checks every door makes. One task reads
each connection; its submits are handled side by side, at most `window` at once (beyond,
reading waits and TCP pushes back), each answered once stored. The codec is smpplib's,
as on the client side, but for submit_sm and its answer (see codec.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog
from smpplib.command import Command

from ecosms_gw import metrics
from ecosms_gw.config import Config
from ecosms_gw.core import concat, submit_sm
from ecosms_gw.core.accounts import LOGIN_FAILURES_PER_MINUTE, verify_secret
from ecosms_gw.core.ratelimit import SlidingWindow
from ecosms_gw.smpp import codec, intake
from ecosms_gw.smpp.codec import ESME_ROK, HEADER, SubmitSm, decode, encode
from ecosms_gw.smpp.intake import BindSession, Intake, Refused
from ecosms_gw.smpp.outbound import Outbound
from ecosms_gw.smpp.parts import Assembler, Key
from ecosms_gw.smpp.session import ENQUIRE_INTERVAL_S, LINK_ERRORS, RESPONSE_TIMEOUT_S, SessionClosed, read_each
from ecosms_gw.store import Store, StoreError
from ecosms_gw.tls import server_context

log = structlog.get_logger()

SYSTEM_ID = "ecosms-gw"
BIND_TIMEOUT_S = 10.0  # a connection that has not bound by then is closed
MAX_CONNECTIONS_PER_IP = 20  # beyond, a new connection from the address is closed at once
ACCEPTED = metrics.INGESTED.labels("smpp", "accepted")  # looked up once, counted per submit
ACCEPTED_MESSAGES = metrics.INGESTED_MESSAGES.labels("smpp")
BINDS = {"bind_transmitter": "transmitter", "bind_receiver": "receiver", "bind_transceiver": "transceiver"}


def _text(value: bytes | str | None) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


class SmppServer:
    """The listener, and the binds of each account (at most `max_binds_per_account`)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.settings = config.smpp_server
        self.store = store
        self.intake = Intake(store, config)
        self.failures = SlidingWindow(LOGIN_FAILURES_PER_MINUTE)  # per client address
        self.sessions: set[ServerSession] = set()

    async def run(self) -> None:
        """Accept until cancelled; then unbind every client."""
        listen = self.settings.listen
        assert listen is not None, "run only when [smpp_server] listen is set"
        context = server_context(self.settings.tls_cert, self.settings.tls_key)
        server = await asyncio.start_server(self._connected, listen.bind_host, listen.port, ssl=context, backlog=1024)
        log.info("smpp_server_listening", address=str(listen), tls=context is not None)
        outbound = asyncio.create_task(Outbound(self.store, self.receivers).run())
        try:
            await server.serve_forever()
        finally:
            outbound.cancel()
            server.close()
            await asyncio.gather(*(session.close(unbind=True) for session in list(self.sessions)),
                                 return_exceptions=True)
            log.info("smpp_server_closed")

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ServerSession(self, reader, writer)
        if sum(1 for other in self.sessions if other.address == session.address) >= MAX_CONNECTIONS_PER_IP:
            log.warning("smpp_connection_refused", reason="too_many_connections", peer=session.address)
            writer.close()
            return
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    def receivers(self) -> dict[int, list[ServerSession]]:
        """The binds receipts and replies may go to, per account id."""
        found: dict[int, list[ServerSession]] = {}
        for session in self.sessions:
            if session.bound is not None and session.mode in ("receiver", "transceiver") and session.alive:
                found.setdefault(session.bound.account_id, []).append(session)
        return found

    async def bind(self, session: ServerSession, system_id: str, password: str) -> int:
        """The bind's answer: the account's code and password, and a free place among its
        binds. An address that failed too often is refused without a password checked."""
        peer = session.address
        if self.failures.exhausted(peer):
            log.warning("smpp_bind_refused", reason="too_many_failures", system_id=system_id[:64], peer=peer)
            return codec.ESME_RBINDFAIL
        try:
            account = await self.store.known.get(system_id)
        except StoreError as error:
            log.error("smpp_store_unavailable", during="bind", error=str(error))
            return codec.ESME_RSYSERR
        valid = await asyncio.to_thread(verify_secret, password, account.smpp_password if account else None)
        if not (valid and account):
            self.failures.allow(peer)
            log.info("smpp_bind_refused", reason="wrong_credentials", system_id=system_id[:64], peer=peer)
            return codec.ESME_RINVPASWD
        assert account.id is not None, "accounts read from the store have an id"
        binds = sum(1 for other in self.sessions if other.bound and other.bound.account_id == account.id)
        if binds >= self.settings.max_binds_per_account:  # counted and taken with no await between
            log.info("smpp_bind_refused", reason="too_many_binds", account=account.code, peer=peer)
            return codec.ESME_RBINDFAIL
        session.bound = BindSession(account.code, account.id, peer)
        return ESME_ROK


class ServerSession:
    """One client connection."""

    def __init__(self, server: SmppServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self.mode: str | None = None  # transmitter, receiver or transceiver once bound
        self.bound: BindSession | None = None
        self.window = asyncio.Semaphore(server.settings.window)
        self.handling: set[asyncio.Task[None]] = set()
        self.deliveries = asyncio.Semaphore(server.settings.window)  # deliver_sm unanswered
        self.parts = Assembler()
        self.pending: dict[int, asyncio.Future[int]] = {}  # our requests, by sequence: their status
        self.sequence = 0
        self._outgoing: list[bytes] = []
        self.last_heard = self.opened = asyncio.get_running_loop().time()

    async def run(self) -> None:
        keeper = asyncio.create_task(self._keep_alive())
        try:
            await read_each(self.reader, self._handle)
        except LINK_ERRORS as error:
            log.info("smpp_client_gone", peer=self.address, account=self.bound and self.bound.account,
                     reason=str(error) or type(error).__name__)
        finally:
            keeper.cancel()
            if dropped := self.parts.forget():  # never answered: the client sends them again
                log.info("smpp_parts_dropped", account=self.bound and self.bound.account, parts=len(dropped))
            if self.handling:  # stored anyway: their answers go if the connection still lives
                await asyncio.wait(self.handling)
            self._write_out()
            self.writer.close()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(SessionClosed("the client went away"))

    async def _handle(self, data: bytes) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        _, command_id, status, sequence = HEADER.unpack_from(data)
        if command_id & 0x80000000:  # an answer to one of ours
            if (future := self.pending.pop(sequence, None)) is not None and not future.done():
                future.set_result(status)
            return
        if command_id == codec.SUBMIT_SM:
            await self._submit_later(data, sequence)
            return
        if command_id == codec.CANCEL_SM:
            self._later(self._query_or_cancel("cancel_sm", submit_sm.cancel_sm_message_id(data[16:]), sequence))
            return
        try:
            pdu = decode(data)
        except Exception:  # noqa: BLE001 - any PDU smpplib cannot read: say so, keep the link
            self._send(encode("generic_nack", sequence, status=codec.ESME_RINVCMDID))
            return
        command = pdu.command
        if command in BINDS:
            await self._bind(pdu, sequence)
        elif command == "enquire_link":
            self._send(encode("enquire_link_resp", sequence))
        elif command == "unbind":
            self._send(encode("unbind_resp", sequence))
            raise SessionClosed("unbound by the client")
        elif command == "query_sm":
            self._later(self._query_or_cancel(command, _text(pdu.message_id), sequence))
        else:
            self._send(encode("generic_nack", sequence, status=codec.ESME_RINVCMDID))

    async def _bind(self, pdu: Command, sequence: int) -> None:
        command = pdu.command
        if self.mode is not None:
            status = codec.ESME_RALYBND
        else:
            status = await self.server.bind(self, _text(pdu.system_id), _text(pdu.password))
        self._send(encode(f"{command}_resp", sequence, status=status, system_id=SYSTEM_ID))
        if status == ESME_ROK and self.mode is None:
            self.mode = BINDS[command]
            log.info("smpp_client_bound", account=self.bound and self.bound.account, mode=self.mode,
                     peer=self.address)

    async def _submit_later(self, data: bytes, sequence: int) -> None:
        if self.mode not in ("transmitter", "transceiver"):
            self._send(codec.encode_submit_sm_resp(sequence, codec.ESME_RINVBNDSTS, ""))
            return
        pdu = codec.decode_submit_sm(data)
        if pdu is None:  # a body cut short or malformed
            self._send(encode("generic_nack", sequence, status=codec.ESME_RINVCMDLEN))
            return
        await self.window.acquire()
        sequences = [sequence]
        place, payload = concat.split_header(pdu.short_message or pdu.message_payload or b"", pdu.esm_class)
        place = place or (concat.sar_place(*pdu.sar) if pdu.sar else None)
        if place is not None and place.total > 1:  # a part: held until the message is whole
            key = Key(place.reference, pdu.source_addr, pdu.destination_addr)
            whole = self.parts.add(key, place, payload, sequence, asyncio.get_running_loop().time())
            if whole is None:
                return
            sequences, payload = whole
        self._later(self._submit(pdu, sequences, payload), len(sequences))

    def _later(self, coroutine: Coroutine[Any, Any, None], places: int = 0) -> None:
        """Handled while reading goes on; `places` of the window freed when done."""
        task = asyncio.create_task(coroutine)
        self.handling.add(task)
        task.add_done_callback(lambda done: self._handled(done, places))

    async def _query_or_cancel(self, command: str, message_id: str, sequence: int) -> None:
        fields: dict[str, object] = {}
        if self.bound is None or self.mode == "receiver":
            status = codec.ESME_RINVBNDSTS
        else:
            try:
                if command == "query_sm":
                    status, fields = await intake.query(self.server.store, self.bound, message_id)
                else:
                    status = await intake.cancel(self.server.store, self.bound, message_id)
            except StoreError as error:
                status = codec.ESME_RSYSERR
                log.error("smpp_store_unavailable", during=command, error=str(error))
        if command == "query_sm":
            self._send(encode("query_sm_resp", sequence, status=status, **fields))
        else:  # smpplib has no cancel_sm_resp: a header alone
            self._send(HEADER.pack(16, codec.CANCEL_SM | 0x80000000, status, sequence))

    async def deliver(self, fields: dict[str, Any]) -> int:
        """A deliver_sm (receipt or reply) to this client, at most `window` unanswered: its
        answer's status, or -1 when the connection went first."""
        async with self.deliveries:
            try:
                return await self.request("deliver_sm", **fields)
            except SessionClosed:
                return -1

    @property
    def alive(self) -> bool:
        return not self.writer.is_closing()

    def _handled(self, task: asyncio.Task[None], places: int) -> None:
        self.handling.discard(task)
        for _ in range(places):
            self.window.release()

    async def _submit(self, pdu: SubmitSm, sequences: list[int], payload: bytes) -> None:
        """One message (of one submit, or of every part of one), stored, then each submit
        answered: with its id, or the error that says why not."""
        assert self.bound is not None
        message_id = ""
        try:
            request = submit_sm.request(pdu.destination_addr, pdu.dest_addr_ton, payload, pdu.data_coding,
                                        pdu.source_addr, pdu.validity_period, datetime.now(UTC))
            status, message_id = ESME_ROK, str(await self.server.intake.submit(self.bound, request))
            outcome = "accepted"
        except Refused as refusal:
            status, outcome = refusal.status, refusal.reason
            log.info("smpp_submit_refused", account=self.bound.account, reason=refusal.reason,
                     detail=refusal.detail, status=codec.status_name(status))
        except StoreError as error:
            status, outcome = codec.ESME_RSYSERR, "store_unavailable"
            log.error("smpp_store_unavailable", during="submit", account=self.bound.account, error=str(error))
        if status == ESME_ROK:
            ACCEPTED.inc()
            ACCEPTED_MESSAGES.inc()
        else:
            metrics.INGESTED.labels("smpp", outcome).inc()
        for sequence in sequences:
            self._send(codec.encode_submit_sm_resp(sequence, status, message_id))

    def _give_up_parts(self, now: float) -> None:
        """Parts whose message did not come whole in time: refused, their places freed."""
        if given_up := self.parts.given_up(now):
            log.info("smpp_parts_incomplete", account=self.bound and self.bound.account, parts=len(given_up))
            metrics.INGESTED.labels("smpp", "incomplete").inc()
            for sequence in given_up:
                self._send(codec.encode_submit_sm_resp(sequence, codec.ESME_RSUBMITFAIL, ""))
                self.window.release()

    def _send(self, pdu: bytes) -> None:
        """PDUs written in one turn of the event loop leave in one write."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._write_out)
        self._outgoing.append(pdu)

    def _write_out(self) -> None:
        if self._outgoing and not self.writer.is_closing():
            self.writer.write(b"".join(self._outgoing))
        self._outgoing.clear()

    async def request(self, command: str, **fields: Any) -> int:
        """Send one of ours (deliver_sm, enquire_link, unbind); its answer's status, or
        SessionClosed (no answer in time: forgotten, a late one is ignored)."""
        self.sequence = sequence = self.sequence % 0x7FFFFFFF + 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[sequence] = future
        self._send(encode(command, sequence, **fields))
        try:
            return await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        except TimeoutError:
            raise SessionClosed(f"no answer to {command} in {RESPONSE_TIMEOUT_S:.0f} s") from None
        finally:
            self.pending.pop(sequence, None)

    async def _keep_alive(self) -> None:
        """Not bound in time, or silent and not answering enquire_link: closed."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(1.0)
                self._give_up_parts(loop.time())
                if self.mode is None and loop.time() - self.opened >= BIND_TIMEOUT_S:
                    raise SessionClosed(f"not bound within {BIND_TIMEOUT_S:.0f} s")
                if loop.time() - self.last_heard >= ENQUIRE_INTERVAL_S:
                    await self.request("enquire_link")
        except SessionClosed as error:
            log.info("smpp_client_dropped", peer=self.address, reason=str(error))
            self.writer.close()

    async def close(self, unbind: bool = False) -> None:
        """At shutdown: unbind politely, then drop the connection."""
        if unbind and self.mode is not None and not self.writer.is_closing():
            with contextlib.suppress(SessionClosed, OSError):
                await self.request("unbind")
        self.writer.close()

