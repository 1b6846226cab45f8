"""The HTTP API of a running daemon, called as a developer's program would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from ecosms_gw.store.dispatch import Claimed
from tests.support.daemon import COMMAND, environment
from tests.support.net import free_port

SECRET = "p280edbd76d510c41990cbe5e6108c7e"


class Client:
    """A developer's program: a token, then calls with it."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base, self.token = session, base, ""

    async def login(self, code: str = "ACME", secret: str = SECRET) -> aiohttp.ClientResponse:
        response = await self.session.post(self.base + "/token", data={
            "client_id": code, "client_secret": secret, "grant_type": "client_credentials"})
        if response.status == 200:
            self.token = (await response.json())["access_token"]
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", {}) | ({"Authorization": f"Bearer {self.token}"} if self.token else {})
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as response:
            text = await response.text()
            kind = response.content_type
            if kind == "application/json" and text:
                return response.status, json.loads(text)
            return response.status, text


@contextlib.asynccontextmanager
async def daemon(dsn: str, folder: Path, peer_port: int | None = None, more: str = "", tps: int = 1000,
                 **settings: str) -> AsyncIterator[str]:
    """`ecosms-gw run` on this database, its API on a free port; its SMSC (the simulator)
    serves only numbers starting 999, so that the messages of a test stay where the test
    puts them, or with `peer_port` every number goes to that SMSC. `more` is added to its
    config (another link...). Its base URL, once it answers; its JSON log is
    `daemon-PORT.log` in `folder`."""
    config = folder / f"gw-{free_port()}.toml"
    smsc = (f'host = "127.0.0.1"\nport = {peer_port}\ntps = {tps}\nroutes = ["*"]\n' if peer_port
            else 'simulator = true\nroutes = ["999"]\n')
    config.write_text(f'[database]\ndsn = "{dsn}"\n[[smsc]]\nname = "main"\n{smsc}{more}')
    port = free_port()
    env = environment(ECOSMS_HTTP_LISTEN=f"127.0.0.1:{port}", **settings)
    with open(folder / f"daemon-{port}.log", "w") as log:
        process = subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(300):
                    try:
                        async with session.get(base + "/health") as response:
                            if (await response.json())["smsc"].get("main") == "bound":
                                break
                    except (aiohttp.ClientError, KeyError, ValueError):
                        pass
                    assert process.poll() is None, (folder / f"daemon-{port}.log").read_text()[-2000:]
                    await asyncio.sleep(0.1)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.fixture
async def served(dsn: str, store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """The running daemon's API, and the store of its database."""
    async with daemon(dsn, tmp_path) as base:
        yield base, store


@pytest.fixture
async def client(served: tuple[str, Store]) -> AsyncIterator[Client]:
    base, store = served
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True))
    async with aiohttp.ClientSession() as session:
        found = Client(session, base)
        assert (await found.login()).status == 200
        yield found


async def claim_all(store: Store, count: int) -> list[Claimed]:
    """`count` queued messages claimed for the test (worker 1) while a daemon runs: its own
    claims (of other routes) may hold the account's queue for a moment, and are waited out."""
    taken: list[Claimed] = []
    for _ in range(100):
        taken += await store.dispatch.claim(count - len(taken), worker=1)
        if len(taken) >= count:
            return taken
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(taken)} of {count} messages claimed")
