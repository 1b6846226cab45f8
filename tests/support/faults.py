"""Faults between the gateway and a real SMSC (node-smpp): a TCP proxy that reads the SMPP
framing and, as told, swallows everything, drops some responses, or delays them; and a
hostile SMSC that binds, then sends what no SMSC should."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

from tests.support.net import free_port

HEADER = struct.Struct(">LLLL")
SUBMIT_SM_RESP = 0x80000004
ENQUIRE_LINK_RESP = 0x80000015


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">L", header)
    return header + await reader.readexactly(length - 4)


class FaultyLink:
    """Listens on `port`, forwards each connection to the SMSC at `smsc_port`. `mode`, read
    per PDU so a test may change it at any time:
    - "pass": everything goes through;
    - "black_hole": the connection is accepted, nothing is forwarded either way;
    - "no_submit_resp" / "no_enquire_resp": those responses from the SMSC are dropped;
    - "delay": every PDU from the SMSC arrives `delay_s` late (in order).
    With `only`, the mode applies to that connection (1 the first) and the others pass."""

    def __init__(self, smsc_port: int, mode: str = "pass", delay_s: float = 2.0, only: int | None = None) -> None:
        self.smsc_port = smsc_port
        self.mode = mode
        self.only = only
        self.delay_s = delay_s
        self.port = free_port()
        self.connections = 0
        self.dropped: list[int] = []  # command ids of the responses dropped
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultyLink:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            if self._mode(number) == "black_hole":
                while await reader.read(65536):
                    pass
                return
            smsc_reader, smsc_writer = await asyncio.open_connection("127.0.0.1", self.smsc_port)
            up = asyncio.create_task(self._pipe(reader, smsc_writer, lambda _: True))
            down = asyncio.create_task(self._delayed(smsc_reader, writer, number))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for pipe in (up, down):
                pipe.cancel()
            smsc_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    def _mode(self, connection: int) -> str:
        return self.mode if self.only in (None, connection) else "pass"

    def _keep(self, pdu: bytes, connection: int) -> bool:
        command = HEADER.unpack_from(pdu)[1]
        mode = self._mode(connection)
        if (mode == "black_hole" or (mode == "no_submit_resp" and command == SUBMIT_SM_RESP)
                or (mode == "no_enquire_resp" and command == ENQUIRE_LINK_RESP)):
            self.dropped.append(command)
            return False
        return True

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    keep: Callable[[bytes], bool]) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                pdu = await read_pdu(reader)
                if keep(pdu):
                    writer.write(pdu)

    async def _delayed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int) -> None:
        """From the SMSC to the gateway: each PDU held `delay_s` in "delay" mode, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def release() -> None:
            while True:
                due, pdu = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(pdu)

        releaser = asyncio.create_task(release())
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while True:
                    pdu = await read_pdu(reader)
                    if self._keep(pdu, connection):
                        delay = self.delay_s if self._mode(connection) == "delay" else 0.0
                        queue.put_nowait((loop.time() + delay, pdu))
        finally:
            releaser.cancel()
