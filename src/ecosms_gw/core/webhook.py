"""Signed event webhooks: the body of a batch and its signature. Pure.

A POST carries `{"events": [...]}`; `X-Ecosms-Signature: t=UNIX_SECONDS,v1=HEX` where HEX
is HMAC-SHA256 with the account's webhook secret over `f"{t}.{raw body}"`, so that a
receiver can tell our calls from forgeries, and refuse old ones replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json

MAX_AGE_S = 300  # a signature older than this is refused by `verify` (replays)


def body(ids: list[int], payloads: list[str]) -> bytes:
    """The POST body: each event (a JSON object) with its id first."""
    events = [{"id": event_id, **json.loads(payload)} for event_id, payload in zip(ids, payloads, strict=True)]
    return json.dumps({"events": events}, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    """The `X-Ecosms-Signature` header of a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, raw: bytes, now: float, max_age_s: int = MAX_AGE_S) -> bool:
    """What a receiver checks: the signature is ours over this very body, and recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    expected = signature(secret, timestamp, raw).split("v1=")[1]
    return abs(now - timestamp) <= max_age_s and hmac.compare_digest(expected, fields.get("v1", ""))
