"""The retention horizon: `[retention] days` for what the database keeps (mailings with
their messages, parts and events; replies, ping calls, outgoing mail), `ftp_days` for the
files in each account's `done/` and `rejected/`. The daemon purges daily, a small batch
per transaction so that no lock is held long; `ecosms-gw purge` does it on demand.
Statistics survive: a purged mailing leaves its counts by status."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

import structlog

from ecosms_gw.config import Config
from ecosms_gw.ingest.inbox import FOLDERS
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.mailings import Purged

log = structlog.get_logger()

DAY_S = 86_400.0
BATCH = 5  # mailings per transaction: at most ~10,000 messages, a lock of well under a second


@dataclass(frozen=True, slots=True)
class Removed:
    database: Purged
    files: int

    def line(self) -> str:
        counts = ", ".join(f"{getattr(self.database, f.name)} {f.name.replace('_', ' ')}"
                           for f in fields(self.database))
        return f"{counts}, {self.files} FTP files"


def old_files(root: Path, days: int) -> list[Path]:
    """Files of every account's `done/` and `rejected/` last changed before the horizon."""
    horizon = time.time() - days * DAY_S
    return [path for folder in FOLDERS for path in root.glob(f"*/{folder}/*")
            if path.is_file() and path.stat().st_mtime < horizon]


async def purge(store: Store, config: Config, dry_run: bool = False) -> Removed:
    """Apply the horizons now (0 days: keep for ever); what was (or would be) removed."""
    retention = config.retention
    database = Purged()
    if retention.days:
        database = await store.mailings.purge(timedelta(days=retention.days), BATCH, dry_run)
    files = await asyncio.to_thread(old_files, Path(config.ftp.root), retention.ftp_days) if retention.ftp_days else []
    if not dry_run:
        for path in files:
            path.unlink(missing_ok=True)
    return Removed(database, len(files))


async def purge_daily(store: Store, config: Config) -> None:
    """Once soon after start, then every day."""
    while True:
        await asyncio.sleep(60)
        try:
            removed = await purge(store, config)
        except StoreError as error:
            log.warning("purge_failed", error=str(error))
        else:
            log.info("purged", **{f.name: getattr(removed.database, f.name) for f in fields(removed.database)},
                     ftp_files=removed.files)
        await asyncio.sleep(DAY_S - 60)
