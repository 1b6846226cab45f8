"""The tiers: each test is marked by its folder (unit, store, integration, system), so
that `./scripts/test -m unit` runs the fast tier alone, without PostgreSQL, Node or
Chromium. Shared helpers live in tests/support."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.fixtures", "tests.support.smsc", "tests.support.mail", "tests.support.api",
                  "tests.support.gateway", "tests.support.ftp_drop"]

TIERS = ("unit", "store", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = next((part for part in item.path.parts if part in TIERS), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, tests/store, tests/integration "
                                    "or tests/system")
        item.add_marker(getattr(pytest.mark, tier))
