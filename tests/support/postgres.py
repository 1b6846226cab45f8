"""A real PostgreSQL for the tests: `$ECOSMS_TEST_DSN`, else Debian's server binaries in a
throw-away cluster (through `runuser -u postgres` as root), else the embedded pgserver."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Cluster:
    """A PostgreSQL server the tests may stop and start again (to test outages)."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir, self.folder = bin_dir, folder
        self.data = folder / "data"
        self.port = _free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        subprocess.run(_as_postgres([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                     "-A", "trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)

    def start(self, durable: bool = False, settings: str = "") -> None:
        """Tests trade durability against a machine crash for speed; benchmarks do not.
        `settings` are more `-c name=value` options, e.g. a production-sized cache."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   f"-c max_connections=300 {settings}")
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options,
                                     "-l", str(self.folder / "log"), "-w", "start"]),
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode,
                                     "-w", "stop"]), check=False, capture_output=True)


def debian_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def server(durable: bool = False, settings: str = "") -> Iterator[tuple[str, Cluster | None]]:
    """The admin DSN of a server for this test session, and the cluster when it is ours."""
    if os.environ.get("ECOSMS_TEST_DSN"):
        yield os.environ["ECOSMS_TEST_DSN"], None
        return
    bin_dir = debian_bin_dir()
    if bin_dir is None:
        import pgserver  # noqa: PLC0415 - the fallback when no server binaries are installed
        with tempfile.TemporaryDirectory(prefix="ecosms-pgserver-", dir="/tmp") as folder:
            embedded = pgserver.get_server(Path(folder) / "pgdata", cleanup_mode="stop")
            try:
                yield embedded.get_uri(), None
            finally:
                embedded.cleanup()
        return
    folder = Path(tempfile.mkdtemp(prefix="ecosms-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = Cluster(bin_dir, folder)
    try:
        cluster.init()
        cluster.start(durable, settings)
        yield cluster.dsn, cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def with_database(dsn: str, database: str) -> str:
    """The same server, another database."""
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{database}" + (f"?{query}" if query else "")
