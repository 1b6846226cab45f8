"""docs/lifecycle.md is the one map of the lifecycle: every transition on it names a test,
and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
MAP = ROOT / "docs" / "lifecycle.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def rows() -> list[str]:
    """The table rows of the map (not headers or separators)."""
    lines = [line for line in MAP.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    return [line for line in lines if not re.fullmatch(r"\|[-| ]+\|", line) and not line.startswith("| from")
            and not line.startswith("| what |")]


def test_every_transition_on_the_map_names_a_test() -> None:
    assert len(rows()) >= 25
    assert [row for row in rows() if not NAMED.search(row)] == []


def test_every_test_the_map_names_exists() -> None:
    missing = []
    for path, name in NAMED.findall(MAP.read_text(encoding="utf-8")):
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        defined = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert missing == []
