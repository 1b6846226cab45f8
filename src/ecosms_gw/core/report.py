"""The submission report: what a body, a mail or a file sends, or why it was refused.
Every door builds the same `Report` and renders it its own way: JSON (`check --json`, the
file written beside FTP uploads), text for people (`check`, the report mailed back), an
SMTP reply line and an HTTP error (in those doors' modules)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ecosms_gw.core import charsets, mime
from ecosms_gw.core.compose import AccountRules, Composition, compose
from ecosms_gw.core.mail2sms import Rejected, parse_all

_TEXT_WIDTH = 48


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # the reason class (mail2sms-format.md)
    detail: str
    line: int | None = None  # of the body, when the refusal comes from one
    body: int | None = None  # which body of several


@dataclass(frozen=True, slots=True)
class Report:
    """Exactly one of `composition` (accepted) and `refusal` is set."""
    bodies: int
    composition: Composition | None = None
    refusal: Refusal | None = None
    mailing_id: int | None = None  # once stored
    duplicate: bool = False  # an earlier copy was stored; this one was not

    @classmethod
    def accepted(cls, composition: Composition, bodies: int) -> Report:
        return cls(bodies, composition=composition)

    @classmethod
    def rejected(cls, refusal: Rejected, bodies: int) -> Report:
        return cls(bodies, refusal=Refusal(refusal.reason, refusal.detail, refusal.line, refusal.body))

    @property
    def several(self) -> bool:
        return self.bodies > 1

    @property
    def warnings(self) -> list[str]:
        return self.composition.warnings if self.composition else []

    def dropped_document(self) -> list[dict[str, Any]]:
        """Every recipient left out and why."""
        dropped = self.composition.dropped if self.composition else []
        return [{"line": d.line, "recipient": d.recipient, "reason": d.reason}
                | ({"body": d.body} if self.several else {}) for d in dropped]

    def document(self) -> dict[str, Any]:
        """The `check --json` document, also written beside FTP files."""
        if self.refusal is not None:
            refused: dict[str, Any] = {"rejected": True, "reason": self.refusal.reason, "line": self.refusal.line,
                                       "detail": self.refusal.detail}
            if self.several and self.refusal.body is not None:
                refused["body"] = self.refusal.body
            return refused
        assert self.composition is not None
        return {"rejected": False, **self._accepted(self.composition)} | self._stored()

    def _accepted(self, composition: Composition) -> dict[str, Any]:
        return {
            "account": composition.account,
            "send_at": utc_text(composition.send_at),
            "messages": [
                {"recipient": m.recipient, "text": m.text, "encoding": m.encoding, "units": m.units,
                 "segments": m.segments, "send_at": utc_text(m.send_at), "line": m.line}
                | ({"body": m.body} if self.several else {})
                for m in composition.messages
            ],
        } | self._summary(composition)

    def _summary(self, composition: Composition) -> dict[str, Any]:
        return {
            "dropped": self.dropped_document(),
            "warnings": composition.warnings,
            "transliterated": dict(sorted(composition.transliterated.items())),
            "totals": {"messages": len(composition.messages), "segments": composition.parts,
                       "dropped": len(composition.dropped)},
        } | ({"encoding": _choice(composition)} if composition.encoding == "auto" else {})

    def _stored(self) -> dict[str, Any]:
        if self.mailing_id is None:
            return {}
        return {"mailing_id": self.mailing_id} | ({"duplicate": True} if self.duplicate else {})

    def kept(self) -> dict[str, Any]:
        """What the mailing keeps of its report: the messages themselves are rows already
        (so their part of the document is not even built)."""
        assert self.composition is not None, "only an accepted report is kept"
        return self._summary(self.composition)


def _choice(composition: Composition) -> dict[str, Any]:
    """`auto` mode: how many messages went each way, and the characters that chose UCS-2."""
    ucs2 = sum(1 for m in composition.messages if m.encoding == "ucs2")
    return {"mode": "auto", "gsm7": len(composition.messages) - ucs2, "ucs2": ucs2,
            "no_gsm_form": list(composition.no_gsm)}


def choice_line(composition: Composition) -> str:
    """`auto` mode, for a person: which encoding was chosen and why."""
    choice = _choice(composition)
    line = f"Encoding auto: {choice['gsm7']} messages in GSM 7-bit (every character has a GSM form)"
    if choice["ucs2"]:
        shown = ", ".join(repr(c) for c in choice["no_gsm_form"][:10])
        line += f", {choice['ucs2']} in UCS-2 (no GSM form for {shown})"
    return line


def utc_text(moment: datetime | None) -> str | None:
    """`2017-08-04T13:19:21Z`, or None for "send now"."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check(data: bytes, rules: AccountRules) -> Report:
    """The report of a body file or an e-mail (told apart by their content)."""
    texts: list[str] = []
    try:
        texts = mime.texts_of(data)
        return Report.accepted(compose(parse_all(texts), rules), len(texts))
    except Rejected as refusal:
        if refusal.reason == "missing_account" and charsets.looks_like_utf16(data):
            refusal.detail += " (the file is UTF-16: save it as UTF-8)"
        return Report.rejected(refusal, len(texts))


def as_json(report: Report) -> str:
    return json.dumps(report.document(), ensure_ascii=False, indent=2)


def as_text(report: Report, zone: ZoneInfo) -> str:
    """The report for a person: a table, totals, what was changed or left out."""
    if report.refusal is not None:
        refusal = report.refusal
        where = f" (line {refusal.line})" if refusal.line else ""
        body = f" in body {refusal.body}" if refusal.body and report.several else ""
        return f"REJECTED{body}: {refusal.reason}{where}: {refusal.detail}\n"
    assert report.composition is not None
    composition = report.composition
    lines = [f"Account {composition.account}, send {_when(composition.send_at, zone)}", ""]
    several = report.several
    lines.append(f"{'body ' if several else ''}{'line':>5}  {'recipient':<16}  {'encoding':<8} {'units':>5} "
                 f"{'parts':>5}  text")
    for m in composition.messages:
        prefix = f"{m.body:>4} " if several else ""
        lines.append(f"{prefix}{m.line:>5}  {m.recipient:<16}  {m.encoding:<8} "
                     f"{m.units:>5} {m.segments:>5}  {_shorten(m.text)}")
    lines += ["", f"Total: {len(composition.messages)} messages, {composition.parts} parts, "
                  f"{len(composition.dropped)} recipients left out"]
    if composition.transliterated:
        changes = ", ".join(f"{c!r} -> {r!r}" if r else f"{c!r} deleted"
                            for c, r in sorted(composition.transliterated.items()))
        lines.append(f"Transliterated for GSM: {changes}")
    if composition.encoding == "auto":
        lines.append(choice_line(composition))
    if composition.dropped:
        lines += ["", "Left out:"]
        lines += [f"  line {d.line:>5}  {d.recipient:<20} {d.reason}" for d in composition.dropped]
    if composition.warnings:
        lines += ["", "Warnings:"] + [f"  {w}" for w in composition.warnings]
    return "\n".join(lines) + "\n"


def _when(send_at: datetime | None, zone: ZoneInfo) -> str:
    if send_at is None:
        return "now"
    return f"at {utc_text(send_at)} ({send_at.astimezone(zone):%Y-%m-%d %H:%M:%S} {zone.key})"


def _shorten(text: str) -> str:
    shown = text.replace("\n", "⏎")
    return shown if len(shown) <= _TEXT_WIDTH else shown[:_TEXT_WIDTH - 1] + "…"
