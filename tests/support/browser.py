"""A real browser for the pages' tests: Debian's Chromium, headless."""

from __future__ import annotations

import asyncio
import shutil


async def chromium(*arguments: str) -> str:
    """Debian's Chromium, headless, as a person's browser: what it printed."""
    if shutil.which("chromium") is None:
        raise RuntimeError("chromium is not installed: ./scripts/test installs it")
    process = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=8000",
        *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return out.decode()
