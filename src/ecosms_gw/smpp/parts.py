"""Parts of a client's concatenated submits (UDH or SAR), kept until the last has come,
then one message. No part is answered before its message is stored, so nothing is kept
that the client was told is safe: a client that goes away sends them again. Each part
kept holds a place of the bind's window, which bounds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ecosms_gw.core.concat import Place

CONCAT_WAIT_S = 60.0  # a message whose parts have not all come by then is refused


class Key(NamedTuple):
    """Parts of one message: the client's reference, from one sender to one number."""
    reference: int
    source: str
    destination: str


@dataclass
class _Message:
    total: int
    since: float
    payloads: dict[int, bytes] = field(default_factory=dict)
    sequences: list[int] = field(default_factory=list)  # of every part's submit_sm, to answer


class Assembler:
    def __init__(self) -> None:
        self.waiting: dict[Key, _Message] = {}

    def add(self, key: Key, place: Place, payload: bytes, sequence: int, now: float) -> tuple[list[int], bytes] | None:
        """The part kept; once every part has come, the sequences to answer and the
        payload whole (parts in order). A part sent twice is answered twice."""
        message = self.waiting.get(key)
        if message is None:
            message = self.waiting[key] = _Message(place.total, now)
        message.payloads[place.seq] = payload
        message.sequences.append(sequence)
        if len(message.payloads) < message.total or any(seq not in message.payloads
                                                         for seq in range(1, message.total + 1)):
            return None
        del self.waiting[key]
        return message.sequences, b"".join(message.payloads[seq] for seq in range(1, message.total + 1))

    def given_up(self, now: float) -> list[int]:
        """The sequences of messages still incomplete after `CONCAT_WAIT_S`, forgotten:
        to be refused."""
        late = [key for key, message in self.waiting.items() if now - message.since >= CONCAT_WAIT_S]
        return [sequence for key in late for sequence in self.waiting.pop(key).sequences]

    def forget(self) -> list[int]:
        """Every part kept (the connection is gone)."""
        sequences = [sequence for message in self.waiting.values() for sequence in message.sequences]
        self.waiting.clear()
        return sequences
