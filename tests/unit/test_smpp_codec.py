"""The fast submit_sm encoder writes exactly what smpplib's generic encoder writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from smpplib.smpp import make_pdu

from ecosms_gw.smpp.pump import source_address, submit_fields
from ecosms_gw.smpp.session import _Sequence, decode, encode_submit_sm

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
