"""An SMPP 3.4 ESME session on asyncio, using only smpplib's PDU codec.

smpplib's `Client` is not used: it is not thread-safe, sends enquire_link only when a read
times out and never checks the answer, does not answer an SMSC's unbind, and its default
error handler kills the reader on the first throttling error. Here one reader task owns
the socket's input, every request gets a future by sequence number, the SMSC's own
requests are answered, and a silent link is detected by a watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from smpplib.command import Command

from ecosms_gw.errors import GatewayError
from ecosms_gw.smpp.codec import ESME_ROK, HEADER, decode, encode, status_name

log = structlog.get_logger()

MAX_PDU = 64 * 1024
ENQUIRE_INTERVAL_S = 30.0
RESPONSE_TIMEOUT_S = 10.0  # a bind or enquire_link unanswered, or a link silent with requests waiting: dead
MAX_ANSWERING = 256  # deliver_sm being handled at once; beyond, reading waits (TCP pushes back)
THROTTLED = frozenset({0x58, 0x14})  # ESME_RTHROTTLED, ESME_RMSGQFUL: slow down, retry
# Worth trying again later: system errors, submit failures, the SMSC being busy.
TEMPORARY = frozenset({0x08, 0x45, 0x58, 0x14, 0x64, 0xFE})



class SessionClosed(GatewayError):
    """The link is gone (closed by either side, or silent): reconnect."""


class BindError(GatewayError):
    """The SMSC refused the bind (wrong credentials...): a configuration problem."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    message_id: str | None = None


LINK_ERRORS = (asyncio.IncompleteReadError, ConnectionError, OSError, SessionClosed)  # the link is gone


async def read_each(reader: asyncio.StreamReader, handle: Callable[[bytes], Awaitable[None]]) -> None:
    """Each PDU to `handle`, in order, until the link fails (one of LINK_ERRORS): the
    read loop of both sides, ours towards SMSCs and the server's towards clients."""
    while True:
        await handle(await read_pdu(reader))


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">L", header)
    if not 16 <= length <= MAX_PDU:
        raise SessionClosed(f"PDU length {length} out of bounds")
    return header + await reader.readexactly(length - 4)


DeliverHandler = Callable[[Command], Awaitable[int]]


class Session:
    """One bound SMPP connection. `submit()` sends and awaits the response; the SMSC's
    deliver_sm go to `on_deliver`, whose returned status is the answer."""

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_deliver: DeliverHandler) -> None:
        self.name = name
        self.reader, self.writer = reader, writer
        self.on_deliver = on_deliver
        self.pending: dict[int, asyncio.Future[Response]] = {}
        self.sent_at: dict[int, float] = {}  # of the pending requests, oldest first
        self._outgoing: list[bytes] = []
        self.sequence = 0
        self.closed = asyncio.Event()
        self.closing = False  # we are unbinding: the link ending is expected
        self.tasks: list[asyncio.Task[Any]] = []
        self.answering: set[asyncio.Task[None]] = set()
        self.answer_places = asyncio.Semaphore(MAX_ANSWERING)
        self.last_heard = asyncio.get_running_loop().time()

    @classmethod
    async def open(cls, name: str, host: str, port: int, bind: str, system_id: str, password: str,
                   system_type: str, on_deliver: DeliverHandler, timeout: float = 10.0) -> Session:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        session = cls(name, reader, writer, on_deliver)
        session.tasks.append(asyncio.create_task(session._read_loop(), name=f"smpp-read-{name}"))
        try:
            response = await session.request(f"bind_{bind}", timeout, system_id=system_id,
                                              password=password, system_type=system_type,
                                              interface_version=0x34, addr_ton=0, addr_npi=0,
                                              address_range="")
        except BaseException:
            await session.close()
            raise
        if response.status != ESME_ROK:
            await session.close()
            raise BindError(f"bind refused: {status_name(response.status)}")
        session.tasks.append(asyncio.create_task(session._keep_alive(), name=f"smpp-keepalive-{name}"))
        return session

    def _next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence

    def send(self, command: str, **fields: Any) -> asyncio.Future[Response]:
        """Write a request; the future resolves with its response. Requests sent in one
        turn of the event loop leave in one write (one system call, not one per PDU)."""
        if self.closed.is_set():
            raise SessionClosed(f"{self.name}: session closed")
        sequence = self._next_sequence()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self.pending[sequence] = future
        self.sent_at[sequence] = loop.time()
        if not self._outgoing:
            loop.call_soon(self._write_out)
        self._outgoing.append(encode(command, sequence, **fields))
        return future

    def _write_out(self) -> None:
        if self._outgoing and not self.writer.is_closing():
            self.writer.write(b"".join(self._outgoing))
        self._outgoing.clear()

    async def request(self, command: str, timeout: float = RESPONSE_TIMEOUT_S, **fields: Any) -> Response:
        future = self.send(command, **fields)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise SessionClosed(f"{self.name}: no answer to {command} in {timeout:.0f} s") from None

    async def drain(self) -> None:
        """Back-pressure from the socket: wait while the kernel buffer is full."""
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as error:
            raise SessionClosed(f"{self.name}: {error}") from error

    async def _read_loop(self) -> None:
        try:
            await read_each(self.reader, self._handle)
        except LINK_ERRORS as error:
            if not self.closing:
                log.warning("smpp_link_lost", smsc=self.name, error=str(error) or type(error).__name__)
        except Exception:
            log.exception("smpp_reader_failed", smsc=self.name)
        finally:
            self._fail_pending()

    async def _handle(self, data: bytes) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        length, command_id, status, sequence = HEADER.unpack_from(data)
        if command_id & 0x80000000:  # a response (or generic_nack)
            self.sent_at.pop(sequence, None)
            future = self.pending.pop(sequence, None)
            if future is None or future.done():
                return
            message_id = None
            if command_id == 0x80000004 and status == ESME_ROK:  # submit_sm_resp
                raw = decode(data).message_id
                message_id = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
            future.set_result(Response(status, message_id))
            return
        try:
            pdu = decode(data)
        except Exception:  # noqa: BLE001 - any PDU smpplib cannot read: say so, keep the link
            self.writer.write(encode("generic_nack", sequence, status=0x03))
            return
        if pdu.command in ("deliver_sm", "data_sm") and pdu.data_coding is None:
            # smpplib reads a body cut short as missing fields; data_coding is in both
            # commands' mandatory part, after the addresses: without it there is no message
            self.writer.write(encode("generic_nack", sequence, status=0x02))  # ESME_RINVCMDLEN
            return
        if pdu.command == "enquire_link":
            self.writer.write(encode("enquire_link_resp", sequence))
        elif pdu.command == "unbind":
            self.writer.write(encode("unbind_resp", sequence))
            log.info("smpp_unbound_by_smsc", smsc=self.name)
            raise SessionClosed("the SMSC unbound")
        elif pdu.command in ("deliver_sm", "data_sm"):
            # answered when handled (receipts are stored in batches): reading goes on
            # meanwhile, up to MAX_ANSWERING at once, so that a flood cannot grow memory
            await self.answer_places.acquire()
            task = asyncio.create_task(self._answer(pdu, sequence))
            self.answering.add(task)
            task.add_done_callback(self._answered)
        else:
            self.writer.write(encode("generic_nack", sequence, status=0x03))

    def _answered(self, task: asyncio.Task[None]) -> None:
        self.answering.discard(task)
        self.answer_places.release()

    async def _answer(self, pdu: Command, sequence: int) -> None:
        try:
            status = await self.on_deliver(pdu)
        except Exception:  # noqa: BLE001 - answered as a system error: the SMSC sends it again
            log.exception("deliver_sm_failed", smsc=self.name)
            status = 0x08  # ESME_RSYSERR
        if not self.closed.is_set():
            self.writer.write(encode(f"{pdu.command}_resp", sequence, status=status))

    async def _keep_alive(self) -> None:
        """enquire_link when idle, and no answer in time: the link is dead. So is a link
        that answers nothing for RESPONSE_TIMEOUT_S while requests wait (an SMSC that
        keeps the connection open and went silent), whatever each request's own timeout."""
        loop = asyncio.get_running_loop()
        try:
            while not self.closed.is_set():
                await asyncio.sleep(1.0)
                if (waiting := self.silent_for(loop.time())) >= RESPONSE_TIMEOUT_S:
                    raise SessionClosed(f"no answer for {waiting:.0f} s with {len(self.pending)} requests waiting")
                if loop.time() - self.last_heard >= ENQUIRE_INTERVAL_S:
                    response = await self.request("enquire_link")
                    if response.status != ESME_ROK:
                        raise SessionClosed(f"enquire_link answered {status_name(response.status)}")
        except SessionClosed as error:
            log.warning("smpp_link_silent", smsc=self.name, error=str(error))
            self.writer.close()

    def silent_for(self, now: float) -> float:
        """How long the oldest pending request has waited with nothing heard since it left
        (requests their sender gave up on are forgotten: a late answer is ignored)."""
        for sequence, future in list(self.pending.items()):
            if not future.done():
                return now - max(self.sent_at[sequence], self.last_heard)
            del self.pending[sequence]
            self.sent_at.pop(sequence, None)
        return 0.0

    def _fail_pending(self) -> None:
        self.closed.set()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(SessionClosed(f"{self.name}: link lost"))
                future.exception()  # retrieved: a request given up on (a timeout) is not an error to log
        self.pending.clear()
        self.sent_at.clear()
        self.writer.close()

    async def close(self, unbind: bool = False) -> None:
        """Unbind politely when asked and possible, then drop the link."""
        self.closing = True
        if unbind and not self.closed.is_set():
            with contextlib.suppress(SessionClosed, OSError):
                await self.request("unbind", timeout=5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self._fail_pending()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
