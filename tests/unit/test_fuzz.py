"""Whatever an attacker or a broken client sends, each reader of outside input returns its
value or one of its documented refusals, never another exception: the MIME reader, HTML
to text, the receipt parser, the PDU reader of an SMPP session and the HTTP parameter
conventions. (The body parser: test_check_robustness.py.)"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecosms_gw.core import mime, receipts
from ecosms_gw.core.htmltext import html_to_text
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.http import params
from ecosms_gw.smpp.codec import HEADER
from ecosms_gw.smpp.session import Session, SessionClosed

MANY = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), suppress_health_check=[HealthCheck.too_slow])

header_names = st.sampled_from(["Content-Type", "Content-Transfer-Encoding", "MIME-Version", "Subject", "From",
                                "Message-ID", "Content-Disposition", "X-Other"])
content_types = st.sampled_from([
    "text/plain", "text/html", "application/octet-stream", "multipart/mixed; boundary=b", "multipart/alternative;"
    " boundary=\"b\"", "multipart/mixed", "message/rfc822", "text/plain; charset=x-unknown", "text/plain; charset=",
    "text/html; charset=utf-16", "multipart/mixed; boundary=", "text/plain; charset*=utf-8''%E2%82"])
encodings = st.sampled_from(["base64", "quoted-printable", "8bit", "7bit", "x-uuencode", "binary", "bogus"])


@st.composite
def emails(draw: st.DrawFn) -> bytes:
    """E-mail-shaped bytes: known headers with odd values, boundaries that may or may not
    be there, bodies with and without a U- line, in any encoding."""
    lines = [f"{draw(header_names)}: {draw(st.one_of(content_types, encodings, st.text(max_size=30)))}"
             for _ in range(draw(st.integers(0, 6)))]
    body = draw(st.lists(st.one_of(
        st.sampled_from(["--b", "--b--", "U-ACME", "T-hello", "#-33612345678", "Content-Type: text/plain", "",
                         "=ZZ", "====", "PGh0bWw+", "<p>U-ACME<br>T-x</p>"]),
        st.text(max_size=40)), max_size=30))
    raw = "\r\n".join([*lines, "", *body]).encode("utf-8", "surrogatepass")
    return raw + draw(st.binary(max_size=40))


def read_or_refuse(data: bytes) -> None:
    try:
        found = mime.read_email(data)
    except Rejected as refusal:
        assert refusal.reason in {"no_body", "too_large"}
        return
    assert found.texts and all(isinstance(text, str) for text in found.texts)


@MANY
@given(emails())
def test_the_mime_reader_reads_or_refuses_any_email_shaped_bytes(data: bytes) -> None:
    read_or_refuse(data)


@MANY
@given(st.binary(max_size=3000))
def test_the_mime_reader_reads_or_refuses_any_bytes(data: bytes) -> None:
    read_or_refuse(data)
    assert isinstance(mime.looks_like_email(data), bool)


@MANY
@given(st.text(max_size=3000), st.lists(st.sampled_from(["<p>", "</p>", "<br>", "<script>", "</script>", "<!--",
                                                          "-->", "&amp;", "&#0;", "&#x110000;", "<![CDATA[", "<a"]),
                                         max_size=30))
def test_html_to_text_takes_any_text(text: str, tags: list[str]) -> None:
    assert isinstance(html_to_text(text + "".join(tags) + text), str)


tlvs = st.fixed_dictionaries({}, optional={  # as smpplib decodes them
    "receipted_message_id": st.one_of(st.binary(max_size=70), st.text(max_size=70)),
    "message_state": st.integers(0, 255),
    "network_error_code": st.binary(max_size=3)})


@MANY
@given(st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=300)), tlvs,
       st.sampled_from(["same", "hex", "decimal"]))
def test_the_receipt_parser_reads_or_ignores_anything(text: Any, tlvs: dict[str, Any], id_format: str) -> None:
    found = receipts.parse(text, tlvs, id_format)
    assert found is None or (found.message_id and found.stat)


class _Writer:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def _handled(pdus: list[bytes]) -> list[bytes]:
    async def stored(_: object) -> int:
        return 0
    session = Session("fuzz", asyncio.StreamReader(), _Writer(), stored)  # type: ignore[arg-type]
    for data in pdus:
        try:
            await session._handle(data)
        except SessionClosed:  # an unbind: the session ends, as it should
            pass
    await asyncio.gather(*session.answering)
    return session.writer.written  # type: ignore[attr-defined, no-any-return]


pdu_bodies = st.binary(max_size=300)
command_ids = st.one_of(st.sampled_from([0x00000005, 0x00000103, 0x00000015, 0x00000006, 0x80000004, 0x80000000,
                                         0x80000015, 0x00000004, 0x00000102]), st.integers(0, 0xFFFFFFFF))


@MANY
@given(st.lists(st.tuples(command_ids, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), pdu_bodies),
                max_size=10))
def test_an_smpp_session_answers_any_pdu_without_failing(pdus: list[tuple[int, int, int, bytes]]) -> None:
    """Whatever PDU the SMSC sends (the framing is checked before: length in bounds), the
    session answers it, nacks it or ignores it (a response to nothing), and goes on."""
    encoded = [HEADER.pack(16 + len(body), command, status, sequence) + body
               for command, status, sequence, body in pdus]
    written = asyncio.run(_handled(encoded))
    for answer in written:
        (length,) = struct.unpack_from(">L", answer)
        assert length == len(answer) and answer[4] & 0x80  # one well-formed response per write


form_keys = st.one_of(st.sampled_from(["id", "id[]", "id[0]", "date[1][operator]", "contacts[0][recipient]",
                                       "properties", "page", "size", "sort", "x[", "[]", "a[b]c", "date[][]"]),
                      st.text(max_size=20))


@MANY
@given(st.lists(st.tuples(form_keys, st.text(max_size=30)), max_size=12))
def test_the_parameter_conventions_read_or_refuse_any_form(pairs: list[tuple[str, str]]) -> None:
    try:
        nested = params.nest(pairs)
        params.check_text(nested)
        params.ids(nested, "id")
        params.values(nested, "properties")
        params.page(nested)
        params.properties(nested, ("id", "text", "recipient"), ("id",))
        params.date_range(nested, ZoneInfo("Europe/Paris"))
        params.contacts(nested, 10)
        params.meta_data(nested)
    except params.ApiError as error:
        assert error.status in (400, 417)  # 417: the seed's code for missing contacts
