"""Delivery receipts: the deliver_sm text and TLVs to a part's final state. Pure: no
database, no asyncio. How part states decide a message's status is in `settle_messages`
(store/sql/receipts.sql), where the parts are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# stat values of the de-facto receipt format (SMPP 3.4 appendix B) and message_state TLV
_STATE_BY_TLV = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
_FIELD = re.compile(r"(id|stat|err|sub|dlvrd|submit date|done date):(\S*)", re.IGNORECASE)
# final stat -> the part state kept: a failed part makes its message `ko`, an unknown one `no`
PART_STATE = {"DELIVRD": "delivered", "UNDELIV": "failed", "REJECTD": "failed", "DELETED": "failed",
              "EXPIRED": "unknown", "UNKNOWN": "unknown"}


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # normalised, see normalise_id
    stat: str  # DELIVRD, UNDELIV, ...; ENROUTE/ACCEPTD are not final
    error: str | None

    @property
    def final(self) -> bool:
        return self.stat in PART_STATE


def normalise_id(raw: str, id_format: str = "same") -> str:
    """SMSC message ids compared the same way on both sides: trimmed, lower case, no
    leading zeros. `id_format` says how this SMSC writes receipt ids when they differ from
    its submit_sm_resp ids: "decimal" (receipts in decimal, responses in hex) or "hex"."""
    value = raw.strip().strip("\0").lower()
    if id_format == "decimal" and value.isdigit():
        value = format(int(value), "x")
    elif id_format == "hex" and re.fullmatch(r"[0-9a-f]+", value):
        value = str(int(value, 16))
    return value.lstrip("0") or "0"


def parse(short_message: bytes | str | None, tlvs: dict[str, Any], id_format: str = "same") -> Receipt | None:
    """A receipt from its text and TLVs (the TLVs win), or None if it is not one."""
    text = short_message.decode("latin-1") if isinstance(short_message, bytes) else (short_message or "")
    fields = {name.lower(): value for name, value in _FIELD.findall(text)}
    message_id = tlvs.get("receipted_message_id") or fields.get("id")
    if isinstance(message_id, bytes):
        message_id = message_id.decode("latin-1")
    state = tlvs.get("message_state")
    stat = _STATE_BY_TLV.get(state) if state else (fields.get("stat") or "").upper()
    if not message_id or not stat:
        return None
    error = fields.get("err")
    network_error = tlvs.get("network_error_code")
    if network_error and not error:
        error = network_error.hex() if isinstance(network_error, bytes) else str(network_error)
    return Receipt(normalise_id(message_id, id_format), stat, error)

