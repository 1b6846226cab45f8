"""SMPP clients we did not write: smpplib's `Client`, run in a thread (it binds, submits,
and collects the answers, status and message id by sequence, and the deliver_sm it is
sent), and node-smpp's client playing a scenario."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import smpplib.client
import smpplib.exceptions


def text(value: bytes | str | None) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


class Esme:
    def __init__(self, port: int, system_id: str, password: str, mode: str = "transceiver") -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=1, allow_unknown_opt_params=True)
        self.system_id, self.password, self.mode = system_id, password, mode
        self.answers: dict[int, tuple[int, str]] = {}  # sequence -> (status, message id)
        self.delivered: list[Any] = []
        self.refusing, self.refused = 0, []  # type: ignore[var-annotated]
        self.client.set_error_pdu_handler(lambda pdu: None)  # errors are answers too
        self.client.set_message_sent_handler(self._answered)
        self.client.set_message_received_handler(self._delivered)

    def _answered(self, pdu: Any) -> None:
        self.answers[pdu.sequence] = (pdu.status, text(pdu.message_id))

    def _delivered(self, pdu: Any) -> int:
        """Acknowledged, but the first `refusing` deliver_sm (a client's fault: retry later)."""
        if self.refusing > 0:
            self.refusing -= 1
            self.refused.append(pdu)
            return 0x64  # ESME_RX_T_APPN
        self.delivered.append(pdu)
        return 0

    def bind(self) -> None:
        """Raises smpplib's PDUError (its status in args[1]) when refused."""
        self.client.connect()
        try:
            getattr(self.client, f"bind_{self.mode}")(system_id=self.system_id, password=self.password)
        except BaseException:
            self.client.disconnect()
            raise

    def submit(self, destination: str, message: bytes, data_coding: int = 0, source: str = "",
               **fields: Any) -> int:
        """One submit_sm; its sequence number."""
        pdu = self.client.send_message(
            source_addr_ton=5 if source and not source.isdigit() else 1, source_addr_npi=0 if source else 1,
            source_addr=source, dest_addr_ton=1, dest_addr_npi=1, destination_addr=destination,
            short_message=message, data_coding=data_coding, registered_delivery=1, **fields)
        return int(pdu.sequence)

    def wait(self, until: Any, timeout: float = 30.0) -> None:
        """Read until `until()` holds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.answers)} answers, {len(self.delivered)} delivered")
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except TimeoutError:
                continue

    def answers_to(self, sequences: list[int], timeout: float = 30.0) -> list[tuple[int, str]]:
        self.wait(lambda: all(s in self.answers for s in sequences), timeout)
        return [self.answers[s] for s in sequences]

    def close(self) -> None:
        try:
            self.client.unbind()
        except (smpplib.exceptions.PDUError, smpplib.exceptions.ConnectionError, OSError):
            pass
        self.client.disconnect()


async def bound(port: int, system_id: str, password: str, mode: str = "transceiver") -> Esme:
    esme = Esme(port, system_id, password, mode)
    await asyncio.to_thread(esme.bind)
    return esme


NODE_CLIENT = Path(__file__).parents[1] / "peer" / "esme.js"


async def node_client(port: int, scenario: dict[str, Any], folder: Path, system_id: str = "ACME",
                      password: str = "") -> list[dict[str, Any]]:
    """node-smpp's client playing `scenario` (see tests/peer/esme.js): its JSON lines."""
    name = f"esme-{time.monotonic_ns()}"
    (folder / f"{name}.json").write_text(json.dumps(scenario))
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_CLIENT), str(port), system_id, password, str(folder / f"{name}.json"),
        str(folder / f"{name}.jsonl"))
    assert await asyncio.wait_for(process.wait(), 240) == 0
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
