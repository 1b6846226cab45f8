"""E-mails to the body texts they carry (rule 18), and telling an e-mail from a body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from ecosms_gw.core import charsets
from ecosms_gw.core.htmltext import html_to_text
from ecosms_gw.core.mail2sms import Rejected, has_body_mark

MAX_BODIES = 20
_CANDIDATES = {"text/plain", "text/html", "application/octet-stream"}
_HEADER_LINE = re.compile(rb"[!-9;-~]+:")
_KNOWN_HEADERS = re.compile(
    rb"(?im)^(from|to|subject|date|message-id|mime-version|content-type|received|return-path"
    rb"|delivered-to|x-[!-9;-~]+):"
)


def looks_like_email(data: bytes) -> bool:
    """An RFC 5322 header block (at least one well-known field) before the first blank
    line; a mail2sms body starts with `U-`-style lines, which never have a colon-name."""
    head = re.split(rb"\r?\n\r?\n|\r\r", data[:65536], maxsplit=1)[0]
    lines = head.splitlines()
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    if not all(_HEADER_LINE.match(line) or line[:1] in (b" ", b"\t") for line in lines):
        return False
    return _KNOWN_HEADERS.search(head) is not None


@dataclass(frozen=True, slots=True)
class Email:
    message_id: str | None
    texts: list[str]  # every body, in order


def read_email(raw: bytes) -> Email:
    """The bodies of an e-mail and its Message-ID; `Rejected` when it has no body, or more
    bodies than anyone sends on purpose."""
    message = message_from_bytes(raw, policy=policy.compat32)
    texts = _walk(message)
    if not texts:
        raise Rejected("no_body", "no text/plain, text/html or octet-stream part has a U- line")
    if len(texts) > MAX_BODIES:
        raise Rejected("too_large", f"{len(texts)} bodies, at most {MAX_BODIES}")
    message_id = str(message.get("Message-ID") or "").strip() or None  # 8-bit bytes come as a Header
    return Email(message_id, texts)


def texts_of(data: bytes) -> list[str]:
    """The bodies of a file that is either a body or a saved e-mail (told by its content)."""
    return read_email(data).texts if looks_like_email(data) else [charsets.decode(data)]


def _walk(part: Message) -> list[str]:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        return []  # a forwarded e-mail is not opened
    if part.is_multipart():
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        if content_type == "multipart/alternative":
            return _one_alternative(children)
        return [text for child in children for text in _walk(child)]
    if content_type not in _CANDIDATES:
        return []
    payload = part.get_payload(decode=True)
    payload = payload if isinstance(payload, bytes) else b""
    text = charsets.decode(payload, part.get_content_charset())
    if content_type == "text/html":
        text = html_to_text(text)
    return [text] if has_body_mark(text) else []


def _one_alternative(children: list[Message]) -> list[str]:
    """The plain alternative if it holds a body, else the first other that does."""
    found = [(child.get_content_type(), _walk(child)) for child in children]
    for content_type, texts in found:
        if content_type == "text/plain" and texts:
            return texts
    return next((texts for _, texts in found if texts), [])
