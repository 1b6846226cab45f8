"""A real browser for the pages' tests: Debian's Chromium, headless."""

from __future__ import annotations

import asyncio
import shutil


async def chromium(*arguments: str) -> str:
    """Debian's Chromium, headless, as a person's browser: what it printed."""
    printed, _ = await chromium_console(*arguments)
    return printed


async def chromium_console(*arguments: str) -> tuple[str, list[str]]:
    """What Chromium printed, and every message of the page's console (its errors, CSP
    refusals and failed loads among them)."""
    if shutil.which("chromium") is None:
        raise RuntimeError("chromium is not installed: ./scripts/test installs it")
    process = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=8000",
        "--enable-logging=stderr", "--v=0", *arguments, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return out.decode(), [line for line in err.decode().splitlines() if ":CONSOLE" in line]
