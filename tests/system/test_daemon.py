"""`ecosms-gw run` as a subprocess: start, SIGTERM, faults; and the systemd unit."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from tests.support.daemon import COMMAND, UNIT, Daemon, environment
from tests.support.fixtures import MIGRATIONS


def test_sigterm_stops_the_daemon_in_order_with_exit_0(dsn: str) -> None:
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn))
    started = daemon.wait_for("daemon_started")
    assert started["level"] == "info" and "timestamp" in started
    sent = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.finish(timeout=5) == 0
    assert time.monotonic() - sent < 5
    names = daemon.names()
    order = [names.index(event) for event in ("daemon_stopping", "ftp_closed", "smtp_closed", "daemon_stopped")]
    assert order == sorted(order) and names[-1] == "daemon_stopped"  # ingest closed first


def test_systemd_hears_ready_watchdog_and_stopping(dsn: str, tmp_path: Path) -> None:
    """Type=notify: READY=1 once everything listens, WATCHDOG=1 from the loop at half of
    WatchdogSec, STOPPING=1 on SIGTERM, as datagrams on $NOTIFY_SOCKET."""
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(30)
        daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000"))
        heard = [listener.recv(100).decode() for _ in range(3)]
        daemon.wait_for("daemon_started")  # READY comes after it
        assert "READY=1" in heard and heard.count("WATCHDOG=1") >= 2
        daemon.process.send_signal(signal.SIGTERM)
        while (message := listener.recv(100).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert daemon.finish(timeout=10) == 0


def test_embedded_database_starts_and_stops_with_the_daemon(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DATA_DIR=str(data_dir)))
    embedded = daemon.wait_for("embedded_database", timeout=60)
    assert "evaluation" in embedded["note"]
    assert daemon.wait_for("daemon_started")["migrations"] == MIGRATIONS
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.finish(timeout=5) == 0
    # The embedded server went down with it: nothing is left running on its data dir.
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[smtp]\nmax_size_mb = -1\n")
    result = subprocess.run([COMMAND, "run", "--config", str(config)], env=environment(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"ecosms-gw: {config}: smtp.max_size_mb: must be at least 1, not -1\n"


def test_database_down_at_start_is_a_clear_non_zero_exit() -> None:
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN="postgresql://nobody@127.0.0.1:9/none"))
    assert daemon.finish(timeout=30) == 1
    failure = next(event for event in daemon.events if event.get("event") == "database_unavailable")
    assert failure["level"] == "error"
    assert "127.0.0.1" in failure["error"] or "refused" in failure["error"].lower()


async def test_a_lost_worker_lock_is_taken_again_and_the_daemon_runs_on(dsn: str) -> None:
    """The lock connection dropped (as a database restart drops it): the daemon locks its
    key again and keeps serving; it was a fault of the moment, not a reason to stop."""
    daemon = Daemon(env=environment(ECOSMS_DATABASE_DSN=dsn))
    worker = daemon.wait_for("daemon_started")["worker"]
    admin = await asyncpg.connect(dsn)
    await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = "
                         "'advisory' AND ((classid::bigint << 32) | objid::bigint) = $1", worker)
    assert daemon.wait_for("worker_lock_regained", timeout=20)["worker"] == worker
    held = await admin.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                                " AND ((classid::bigint << 32) | objid::bigint) = $1", worker)
    await admin.close()
    assert held == 1
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.finish(timeout=20) == 0
    assert "task_ended" not in daemon.names()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_is_hardened_and_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for setting in ("User=ecosms-gw", "StateDirectory=ecosms-gw", "ProtectSystem=strict",
                    "NoNewPrivileges=yes", "Restart=on-failure", "Type=notify", "WatchdogSec=30"):
        assert setting in text.splitlines()
    unit = tmp_path / "ecosms-gw.service"
    unit.write_text(text.replace("/opt/ecosms-gw/bin/ecosms-gw", COMMAND))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
