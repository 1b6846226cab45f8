"""systemd's notify protocol (sd_notify), without a library: one datagram per state on the
socket systemd names in $NOTIFY_SOCKET. READY=1 once every listener is up (Type=notify:
`systemctl start` returns then, and units ordered after it start when it really serves),
WATCHDOG=1 from the event loop (WatchdogSec=: a loop stuck for that long is restarted),
STOPPING=1 on shutdown. Without $NOTIFY_SOCKET (not under systemd) nothing is sent."""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

log = structlog.get_logger()


def notify(state: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(state.encode(), address)
    except OSError as error:
        log.warning("systemd_notify_failed", state=state, error=str(error))


async def watchdog() -> None:
    """WATCHDOG=1 at half the interval systemd asked for ($WATCHDOG_USEC), from the loop
    itself: if the loop stops turning, systemd stops hearing it."""
    microseconds = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
    if not microseconds or os.environ.get("WATCHDOG_PID", str(os.getpid())) != str(os.getpid()):
        await asyncio.Event().wait()  # not asked for: nothing to do, for ever
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(microseconds / 2e6)
