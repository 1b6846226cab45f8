"""Which recipients a link serves: its route prefixes, minus those a more specific link
bound now by any daemon of the cluster serves instead."""

from __future__ import annotations

from collections.abc import Mapping


def excluded(name: str, mine: tuple[str, ...], cluster: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Prefixes that another bound link (`cluster`: name -> routes) serves instead of link
    `name`, whose routes are `mine`; when that link is down its messages fall back here."""
    return tuple(route for other, routes in cluster.items() if other != name
                 for route in routes if route != "*" and route not in mine
                 and any(m == "*" or (route.startswith(m) and len(route) > len(m)) for m in mine))
