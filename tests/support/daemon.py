"""`ecosms-gw run` as a subprocess: its environment, its config, waiting for it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.smsc import all_settled


def write_config(folder: Path, dsn: str, peer_port: int, tps: int, in_doubt: str = "unknown", window: int = 20,
                 name: str = "peer", routes: str = "*") -> Path:
    config = folder / f"gw-{peer_port}-{in_doubt}.toml"
    config.write_text(f"""
[database]
dsn = "{dsn}"
[[smsc]]
name = "{name}"
host = "127.0.0.1"
port = {peer_port}
tps = {tps}
window = {window}
routes = ["{routes}"]
[dispatch]
in_doubt = "{in_doubt}"
""")
    return config


def daemon(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([COMMAND, "run", "--config", str(config)], env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_settled(dsn: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await all_settled(dsn)():
        assert loop.time() < deadline, "messages still waiting"
        await asyncio.sleep(0.2)


COMMAND = str(Path(sys.executable).parent / "ecosms-gw")


UNIT = Path(__file__).parents[2] / "systemd" / "ecosms-gw.service"


def environment(**overrides: str) -> dict[str, str]:
    """The daemon's environment: JSON logs, listening on free loopback ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")}
    passive = free_port()
    return env | {"ECOSMS_LOG_FORMAT": "json",
                  "ECOSMS_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
                  "ECOSMS_FTP_LISTEN": f"127.0.0.1:{free_port()}",
                  "ECOSMS_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
                  "ECOSMS_FTP_PASSIVE_PORTS": f"{passive}-{passive}",
                  "ECOSMS_FTP_ROOT": tempfile.mkdtemp(prefix="ecosms-ftp-")} | overrides




class Daemon:
    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([COMMAND, "run", *args], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.events: list[dict] = []

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(record)
            if record.get("event") == event:
                return record
        raise AssertionError(f"no {event} event; saw {[e.get('event') for e in self.events]}")

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        for line in self.process.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return code

    def names(self) -> list[str]:
        return [event.get("event") for event in self.events]
