"""SMPP 3.4 PDUs: smpplib's codec, with hand-written fast paths for the PDUs written and
read once per message (submit_sm out to the SMSC; submit_sm in from clients, and its
answer), where smpplib's generic code walks every optional parameter of the command."""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from smpplib import consts
from smpplib.command import Command
from smpplib.smpp import make_pdu, parse_pdu

HEADER = struct.Struct(">LLLL")
ESME_ROK: int = consts.SMPP_ESME_ROK
# The statuses the gateway answers with (SMPP 3.4 5.1.3).
ESME_RINVMSGLEN, ESME_RINVCMDLEN, ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RALYBND = 0x01, 0x02, 0x03, 0x04, 0x05
ESME_RSYSERR, ESME_RINVSRCADR, ESME_RINVDSTADR, ESME_RINVMSGID, ESME_RBINDFAIL = 0x08, 0x0A, 0x0B, 0x0C, 0x0D
ESME_RINVPASWD, ESME_RCANCELFAIL, ESME_RSUBMITFAIL, ESME_RTHROTTLED = 0x0E, 0x11, 0x45, 0x58
SUBMIT_SM, CANCEL_SM = 0x00000004, 0x00000008  # command ids read by hand
STATUS_NAMES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID", 0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID", 0x14: "ESME_RMSGQFUL", 0x33: "ESME_RINVNUMDESTS", 0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI", 0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI",
    0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY", 0x64: "ESME_RX_T_APPN",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


class _Sequence:
    """What smpplib's PDU constructor asks of a client: the sequence number to use."""

    def __init__(self, number: int) -> None:
        self.sequence = number

    def next_sequence(self) -> int:
        return self.sequence


def encode(command: str, sequence: int, status: int = ESME_ROK, **fields: Any) -> bytes:
    if command == "submit_sm" and status == ESME_ROK and fields.keys() == _SUBMIT_FIELDS:
        return encode_submit_sm(sequence, **fields)
    pdu = make_pdu(command, client=_Sequence(sequence), **fields)
    pdu.status = status
    generated: bytes = pdu.generate()
    return generated


_SUBMIT_FIELDS = frozenset({"source_addr", "source_addr_ton", "source_addr_npi", "destination_addr",
                            "dest_addr_ton", "dest_addr_npi", "esm_class", "priority_flag", "validity_period",
                            "registered_delivery", "data_coding", "short_message"})


def encode_submit_sm(sequence: int, *, source_addr: str, source_addr_ton: int, source_addr_npi: int,
                     destination_addr: str, dest_addr_ton: int, dest_addr_npi: int, esm_class: int,
                     priority_flag: int, validity_period: str, registered_delivery: int, data_coding: int,
                     short_message: bytes) -> bytes:
    """submit_sm without optional parameters, byte for byte what smpplib writes (a test
    compares them) at a tenth of its cost: one is written per part, smpplib's generic
    encoder walks every optional parameter of the command for each."""
    body = b"".join((
        b"\0", bytes((source_addr_ton, source_addr_npi)), source_addr.encode("ascii"), b"\0",
        bytes((dest_addr_ton, dest_addr_npi)), destination_addr.encode("ascii"), b"\0",
        bytes((esm_class, 0, priority_flag)), b"\0",  # protocol_id 0; no schedule
        validity_period.encode("ascii"), b"\0",
        bytes((registered_delivery, 0, data_coding, 0, len(short_message))), short_message))
    return HEADER.pack(16 + len(body), 0x00000004, ESME_ROK, sequence) + body


def decode(data: bytes) -> Command:
    """Vendor TLVs are tolerated (smpplib refuses them by default)."""
    return parse_pdu(data, client=_Sequence(0), allow_unknown_opt_params=True)


class SubmitSm(NamedTuple):
    """A client's submit_sm: what the gateway reads of it."""
    source_addr: str
    dest_addr_ton: int
    destination_addr: str
    esm_class: int
    validity_period: str
    data_coding: int
    short_message: bytes
    message_payload: bytes | None
    sar: tuple[int, int, int] | None  # sar_msg_ref_num, sar_total_segments, sar_segment_seqnum


_TLV = struct.Struct(">HH")
_SAR_REF, _SAR_TOTAL, _SAR_SEQ, _MESSAGE_PAYLOAD = 0x020C, 0x020E, 0x020F, 0x0424


def decode_submit_sm(data: bytes) -> SubmitSm | None:
    """A whole submit_sm PDU, read by hand (a tenth of smpplib's cost); None when its body
    is cut short or malformed. Unknown TLVs are skipped, as smpplib is told to."""
    try:
        _, at = _cstring(data, 16)  # service_type
        source, at = _cstring(data, at + 2)  # after source_addr_ton and _npi
        dest_ton = data[at]
        destination, at = _cstring(data, at + 2)
        esm_class = data[at]
        _, at = _cstring(data, at + 3)  # after protocol_id and priority_flag: schedule_delivery_time
        validity, at = _cstring(data, at)
        data_coding, length = data[at + 2], data[at + 4]  # registered_delivery, replace_if_present skipped
        short_message, at = data[at + 5:at + 5 + length], at + 5 + length
        if len(short_message) < length:
            return None
        payload, sar = None, {}
        while at + 4 <= len(data):
            tag, size = _TLV.unpack_from(data, at)
            value, at = data[at + 4:at + 4 + size], at + 4 + size
            if tag == _MESSAGE_PAYLOAD:
                payload = value
            elif tag in (_SAR_REF, _SAR_TOTAL, _SAR_SEQ) and value:
                sar[tag] = int.from_bytes(value, "big")
        complete = len(sar) == 3
        return SubmitSm(source, dest_ton, destination, esm_class, validity, data_coding, short_message, payload,
                        (sar[_SAR_REF], sar[_SAR_TOTAL], sar[_SAR_SEQ]) if complete else None)
    except (ValueError, IndexError):
        return None


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    """The C-string at `at`, and where the next field starts (ValueError: no NUL)."""
    end = data.index(0, at)
    return data[at:end].decode("latin-1"), end + 1


def encode_submit_sm_resp(sequence: int, status: int, message_id: str) -> bytes:
    """Its message id as a C-string (empty with an error)."""
    body = message_id.encode("ascii") + b"\0"
    return HEADER.pack(16 + len(body), 0x80000004, status, sequence) + body
