"""The submission report: the `check --json` document, also written beside FTP files and
summarised in replies, so that every path tells the user the same thing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .compose import Composition
from .mail2sms import Rejected


def utc_text(moment: datetime | None) -> str | None:
    """`2017-08-04T13:19:21Z`, or None for "send now"."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def accepted(composition: Composition, bodies: int) -> dict[str, Any]:
    """Accepted: every message, every recipient left out and why, warnings."""
    several = bodies > 1
    return {
        "rejected": False,
        "account": composition.account,
        "send_at": utc_text(composition.send_at),
        "messages": [
            {"recipient": m.recipient, "text": m.text, "encoding": m.encoding, "units": m.units,
             "segments": m.segments, "send_at": utc_text(m.send_at), "line": m.line}
            | ({"body": m.body} if several else {})
            for m in composition.messages
        ],
        "dropped": [
            {"line": d.line, "recipient": d.recipient, "reason": d.reason}
            | ({"body": d.body} if several else {})
            for d in composition.dropped
        ],
        "warnings": composition.warnings,
        "transliterated": dict(sorted(composition.transliterated.items())),
        "totals": {"messages": len(composition.messages), "segments": composition.parts,
                   "dropped": len(composition.dropped)},
    }


def rejected(refusal: Rejected, bodies: int) -> dict[str, Any]:
    """Rejected: the reason class, the line when it comes from a body, and a detail."""
    document = {"rejected": True, "reason": refusal.reason, "line": refusal.line,
                "detail": refusal.detail}
    if bodies > 1 and refusal.body is not None:
        document["body"] = refusal.body
    return document
