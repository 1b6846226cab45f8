"""Ping URLs (seed 2.11): which calls tell an account that its messages changed. Pure.

An account's URL is called with the message id each time one of its messages changes,
instead of being polled. Three forms: `#ids#` in the URL gets a comma-separated batch,
`#id#` one id per call, otherwise `sms_id=<id>` is appended to the query. With POST the
ids are also sent as the form field `sms_id`. A message that changed several times
before the call is named once: the receiver reads its current status anyway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

MAX_IDS_PER_CALL = 100  # `#ids#`: keeps the URL under 1 KB


class Call(NamedTuple):
    url: str
    form: str | None  # the POST body, form-encoded
    ping_ids: tuple[int, ...]  # the stored pings this call answers for


def url_problem(url: str) -> str | None:
    """Why this cannot be a ping URL, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are called"
    if not parts.hostname:
        return "no host"
    return None


def address_refused(host: str, allow_private: bool) -> bool:
    """Loopback, private, link-local and reserved addresses reach the gateway's own
    network, not a customer's server: refused unless the configuration allows them."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False  # a name: its addresses are checked when it is resolved
    return not allow_private and not address.is_global


def calls(url: str, pings: Iterable[tuple[int, int]], method: str) -> list[Call]:
    """The calls to `url` for these (ping id, message id) pairs."""
    by_message: dict[int, list[int]] = {}
    for ping_id, message_id in pings:
        by_message.setdefault(message_id, []).append(ping_id)
    message_ids = sorted(by_message)
    if "#ids#" in url:
        groups = [message_ids[i:i + MAX_IDS_PER_CALL] for i in range(0, len(message_ids), MAX_IDS_PER_CALL)]
    else:
        groups = [[message_id] for message_id in message_ids]
    result = []
    for group in groups:
        ids = ",".join(map(str, group))
        if "#ids#" in url or "#id#" in url:
            target = url.replace("#ids#", ids).replace("#id#", ids)
        elif method == "GET":
            target = url + ("&" if urlsplit(url).query else "?") + urlencode({"sms_id": ids})
        else:
            target = url
        form = urlencode({"sms_id": ids}) if method == "POST" else None
        result.append(Call(target, form, tuple(p for m in group for p in by_message[m])))
    return result


def backoff_s(attempts: int) -> float:
    """Wait before the next try of a call that failed `attempts` times: 30 s doubling,
    at most an hour (about thirty tries in a day)."""
    return min(30.0 * 2.0 ** min(attempts, 10), 3600.0)
