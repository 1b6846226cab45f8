"""Ports for the servers a test starts.

They are taken below the kernel's ephemeral range: a port the kernel hands out (bind to
port 0) can be given again at once to an outgoing connection (a daemon connecting to
PostgreSQL as it starts), and the server that was to listen on it then fails with
"address already in use". Ports below the range are never given that way; each is handed
out once per test session."""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

LOWEST = 10_000


def _first_ephemeral() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


_HIGHEST = max(LOWEST + 1_000, _first_ephemeral() - 600)  # room for an FTP passive range above
_candidates = itertools.count(random.randrange(LOWEST, _HIGHEST))


def free_port() -> int:
    """A loopback port nobody listens on now, not handed out before in this session."""
    for _ in range(_HIGHEST - LOWEST):
        port = LOWEST + next(_candidates) % (_HIGHEST - LOWEST)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate (valid for `name`, localhost and 127.0.0.1) and its key, made with the
    openssl command line as an operator would."""
    import subprocess
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},DNS:localhost,IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextlib.asynccontextmanager
async def http_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """An HTTP server on loopback answering every path with `handler`: its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
