"""A simulator SMSC (`ecosms-gw smsc-sim`, and the demo's `simulator = true`).

It accepts any bind, answers submit_sm with a message id, sends a delivery receipt after
a delay with a configurable share of failures, and can throttle, nack and have
recipients reply, so that the whole gateway can be tried without an operator account.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from ecosms_gw.smpp.codec import HEADER, decode, encode
from ecosms_gw.smpp.session import LINK_ERRORS, read_pdu

log = structlog.get_logger()

THROTTLED, SYSTEM_ERROR = 0x58, 0x08
_BIND_COMMANDS = {0x00000001: "transmitter", 0x00000002: "receiver", 0x00000009: "transceiver"}


@dataclass
class Behaviour:
    dlr_delay: float = 1.0  # seconds before the receipt; negative: no receipts
    fail_ratio: float = 0.0  # receipts saying UNDELIV
    throttle_ratio: float = 0.0  # submit_sm answered ESME_RTHROTTLED
    nack_ratio: float = 0.0  # submit_sm answered with a generic_nack
    reply_ratio: float = 0.0  # recipients answering with an MO message
    verbose: bool = False
    reply: str = "OK thanks"


@dataclass
class Simulator:
    behaviour: Behaviour = field(default_factory=Behaviour)
    submitted: int = 0
    sequence: int = 0
    server: asyncio.Server | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    receivers: dict[str, asyncio.StreamWriter] = field(default_factory=dict)  # by system_id

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port)
        address = self.server.sockets[0].getsockname()
        log.info("smsc_sim_listening", address=f"{address[0]}:{address[1]}")
        return address[0], address[1]

    async def close(self) -> None:
        if self.server:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        bound: str | None = None
        system_id = ""
        try:
            while True:
                data = await read_pdu(reader)
                _, command_id, _, sequence = HEADER.unpack_from(data)
                if command_id in _BIND_COMMANDS:
                    bound = _BIND_COMMANDS[command_id]
                    system_id = _text(decode(data).system_id)
                    if bound == "receiver":
                        self.receivers[system_id] = writer
                    writer.write(encode(f"bind_{bound}_resp", sequence, system_id="ecosms-sim"))
                elif command_id == 0x00000004:  # submit_sm
                    # a transmitter's receipts go to the receiver bound with the same system_id
                    target = writer if bound == "transceiver" else self.receivers.get(system_id)
                    self._submit(writer, data, sequence, target)
                elif command_id == 0x00000015:  # enquire_link
                    writer.write(encode("enquire_link_resp", sequence))
                elif command_id == 0x00000006:  # unbind
                    writer.write(encode("unbind_resp", sequence))
                    break
                elif command_id & 0x80000000:
                    continue  # answers to our deliver_sm
                else:
                    writer.write(encode("generic_nack", sequence, status=0x03))
                await writer.drain()
        except LINK_ERRORS:
            pass
        finally:
            if self.receivers.get(system_id) is writer:
                del self.receivers[system_id]
            writer.close()

    def _submit(self, writer: asyncio.StreamWriter, data: bytes, sequence: int,
                receipts_to: asyncio.StreamWriter | None) -> None:
        behaviour = self.behaviour
        if random.random() < behaviour.throttle_ratio:
            writer.write(encode("submit_sm_resp", sequence, status=THROTTLED, message_id=""))
            return
        if random.random() < behaviour.nack_ratio:
            writer.write(encode("generic_nack", sequence, status=SYSTEM_ERROR))
            return
        pdu = decode(data)
        self.submitted += 1
        message_id = f"{self.submitted:x}"
        writer.write(encode("submit_sm_resp", sequence, message_id=message_id))
        destination, source = _text(pdu.destination_addr), _text(pdu.source_addr)
        if behaviour.verbose:
            log.info("smsc_sim_submit", message_id=message_id, destination=destination,
                     data_coding=pdu.data_coding, length=len(pdu.short_message or b""))
        if receipts_to is not None and behaviour.dlr_delay >= 0 and pdu.registered_delivery:
            task = asyncio.create_task(self._later(receipts_to, message_id, destination, source))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _later(self, writer: asyncio.StreamWriter, message_id: str, destination: str,
                     source: str) -> None:
        behaviour = self.behaviour
        submitted = datetime.now(UTC)
        await asyncio.sleep(behaviour.dlr_delay)
        failed = random.random() < behaviour.fail_ratio
        stat, err, state = ("UNDELIV", "001", 5) if failed else ("DELIVRD", "000", 2)
        stamp = "%y%m%d%H%M"
        text = (f"id:{message_id} sub:001 dlvrd:{'000' if failed else '001'} "
                f"submit date:{submitted.strftime(stamp)} done date:{datetime.now(UTC).strftime(stamp)} "
                f"stat:{stat} err:{err} text:")
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(encode("deliver_sm", self._next_sequence(), source_addr=destination,
                                destination_addr=source, esm_class=0x04, short_message=text.encode(),
                                receipted_message_id=message_id, message_state=state))
            if not failed and random.random() < behaviour.reply_ratio:
                writer.write(encode("deliver_sm", self._next_sequence(), source_addr=destination,
                                    destination_addr=source, esm_class=0x00, data_coding=0x08,
                                    short_message=behaviour.reply.encode("utf-16-be")))


def _text(value: bytes | str | None) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else (value or "")


async def serve(port: int, behaviour: Behaviour) -> None:
    """`ecosms-gw smsc-sim`: run until interrupted."""
    simulator = Simulator(behaviour)
    await simulator.start("0.0.0.0", port)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.close()

