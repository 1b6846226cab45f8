"""`ecosms-gw check`: what a body or an `.eml` would send, without storing or sending."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from . import charsets, mime, report
from .compose import AccountRules, compose
from .mail2sms import Rejected, parse_all

_TEXT_WIDTH = 48


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most `max_bytes`; one more byte means the input is refused as too large."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Rejected("too_large", f"more than {max_bytes // 1_000_000} MB")
    return data


def check(data: bytes, rules: AccountRules) -> dict[str, Any]:
    """The report document of a body file or an e-mail (told apart by their content)."""
    texts: list[str] = []
    try:
        texts = mime.texts_of(data)
        return report.accepted(compose(parse_all(texts), rules), len(texts))
    except Rejected as refusal:
        if refusal.reason == "missing_account" and charsets.looks_like_utf16(data):
            refusal.detail += " (the file is UTF-16: save it as UTF-8)"
        return report.rejected(refusal, len(texts))


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def as_text(document: dict[str, Any], zone: ZoneInfo) -> str:
    """The same document for a person: a table, totals, what was changed or left out."""
    if document["rejected"]:
        where = f" (line {document['line']})" if document.get("line") else ""
        body = f" in body {document['body']}" if document.get("body") else ""
        return f"REJECTED{body}: {document['reason']}{where}: {document['detail']}\n"
    lines = [f"Account {document['account']}, send {_when(document['send_at'], zone)}", ""]
    several = any("body" in m for m in document["messages"])
    header = f"{'body ' if several else ''}{'line':>5}  {'recipient':<16}  {'encoding':<8} {'units':>5} {'parts':>5}  text"
    lines.append(header)
    for m in document["messages"]:
        prefix = f"{m['body']:>4} " if several else ""
        lines.append(f"{prefix}{m['line']:>5}  {m['recipient']:<16}  {m['encoding']:<8} "
                     f"{m['units']:>5} {m['segments']:>5}  {_shorten(m['text'])}")
    totals = document["totals"]
    lines += ["", f"Total: {totals['messages']} messages, {totals['segments']} parts, "
                  f"{totals['dropped']} recipients left out"]
    if document["transliterated"]:
        changes = ", ".join(f"{c!r} -> {r!r}" if r else f"{c!r} deleted"
                            for c, r in document["transliterated"].items())
        lines.append(f"Transliterated for GSM: {changes}")
    if document["dropped"]:
        lines += ["", "Left out:"]
        lines += [f"  line {d['line']:>5}  {d['recipient']:<20} {d['reason']}" for d in document["dropped"]]
    if document["warnings"]:
        lines += ["", "Warnings:"] + [f"  {w}" for w in document["warnings"]]
    return "\n".join(lines) + "\n"


def _when(send_at: str | None, zone: ZoneInfo) -> str:
    if send_at is None:
        return "now"
    moment = datetime.fromisoformat(send_at)
    return f"at {send_at} ({moment.astimezone(zone):%Y-%m-%d %H:%M:%S} {zone.key})"


def _shorten(text: str) -> str:
    shown = text.replace("\n", "⏎")
    return shown if len(shown) <= _TEXT_WIDTH else shown[:_TEXT_WIDTH - 1] + "…"
