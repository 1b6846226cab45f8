"""The fast submit_sm encoder writes exactly what smpplib's generic encoder writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from smpplib.smpp import make_pdu

from ecosms_gw.smpp.codec import _Sequence, decode, decode_submit_sm, encode_submit_sm, encode_submit_sm_resp
from ecosms_gw.smpp.pump import source_address, submit_fields

senders = st.one_of(st.just(""), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabc0123456789 ", min_size=1, max_size=11),
                    st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True))


@given(sequence=st.integers(1, 0x7FFFFFFF), sender=senders,
       recipient=st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
       payload=st.binary(max_size=140), encoding=st.sampled_from(["gsm7", "ucs2"]), multipart=st.booleans(),
       flash=st.booleans(), priority=st.integers(0, 3), validity=st.one_of(st.none(), st.integers(5, 4320)))
def test_submit_sm_is_byte_for_byte_smpplibs(sequence: int, sender: str, recipient: str, payload: bytes,
                                             encoding: str, multipart: bool, flash: bool, priority: int,
                                             validity: int | None) -> None:
    fields = submit_fields(recipient, payload, encoding, multipart, source_address(sender), flash, priority,
                           validity)
    expected = make_pdu("submit_sm", client=_Sequence(sequence), **fields).generate()
    assert encode_submit_sm(sequence, **fields) == expected
    assert (decode(expected).short_message or b"") == payload


def test_validity_in_smpps_relative_format() -> None:
    from ecosms_gw.smpp.pump import relative_time
    assert relative_time(5) == "000000000500000R"
    assert relative_time(90) == "000000013000000R"
    assert relative_time(4320) == "000003000000000R"


@given(sequence=st.integers(1, 0x7FFFFFFF), sender=senders, destination=st.from_regex(r"[0-9]{3,15}", fullmatch=True),
       ton=st.integers(0, 6), payload=st.binary(max_size=254), coding=st.integers(0, 255),
       esm_class=st.sampled_from([0, 0x40]), validity=st.sampled_from(["", "000000013000000R"]),
       long_payload=st.one_of(st.none(), st.binary(min_size=1, max_size=1000)),
       sar=st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.integers(1, 255), st.integers(1, 255))))
def test_submit_sm_read_by_hand_as_smpplib_reads_it(sequence: int, sender: str, destination: str, ton: int,
                                                     payload: bytes, coding: int, esm_class: int, validity: str,
                                                     long_payload: bytes | None,
                                                     sar: tuple[int, int, int] | None) -> None:
    fields = {"source_addr": sender, "destination_addr": destination, "dest_addr_ton": ton, "data_coding": coding,
              "esm_class": esm_class, "validity_period": validity, "short_message": b"" if long_payload else payload}
    if long_payload:
        fields["message_payload"] = long_payload
    if sar:
        fields |= dict(zip(("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum"), sar, strict=True))
    data = make_pdu("submit_sm", client=_Sequence(sequence), **fields).generate()
    by_hand, by_smpplib = decode_submit_sm(data), decode(data)
    assert by_hand is not None
    assert (by_hand.source_addr, by_hand.destination_addr, by_hand.dest_addr_ton, by_hand.data_coding,
            by_hand.esm_class, by_hand.validity_period) == (sender, destination, ton, coding, esm_class, validity)
    assert by_hand.short_message == (by_smpplib.short_message or b"")
    assert by_hand.message_payload == (getattr(by_smpplib, "message_payload", None) or None)
    assert by_hand.sar == sar
    assert decode_submit_sm(data[:20]) is None  # cut short in the addresses
    if payload and not (sar or long_payload):
        assert decode_submit_sm(data[:-1]) is None  # cut short in the text


def test_submit_sm_resp_as_smpplib_writes_it() -> None:
    assert encode_submit_sm_resp(7, 0, "12345") == make_pdu("submit_sm_resp", client=_Sequence(7),
                                                            message_id="12345").generate()
