"""FTP uploads, once whole: each processed on the daemon's event loop, then filed away
with its report beside it.

    <root>/<CODE>/NAME                  uploaded, waiting (or being processed)
    <root>/<CODE>/done/NAME             accepted (or a duplicate), with NAME.report.json
    <root>/<CODE>/rejected/NAME         refused, with NAME.report.json
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from datetime import timedelta
from pathlib import Path

import structlog

from ecosms_gw.config import Config
from ecosms_gw.core import mime, report
from ecosms_gw.core.accounts import Account
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.ingest.pipeline import Outcome, counted, cpu_bound, refused, submit
from ecosms_gw.store import Store, StoreError

log = structlog.get_logger()

UPLOADING = ".upload-"  # the hidden name of a file being uploaded
WAITING_SUFFIXES = (".tmp", ".part")
REPORT_SUFFIX = ".report.json"
FOLDERS = ("done", "rejected")
SCAN_INTERVAL_S = 30.0
UPLOAD_RESERVE_BYTES = 16 * 1024 * 1024  # free space under which uploads are refused (452)
PROCESS_RESERVE_BYTES = 1024 * 1024  # free space a file's processing needs (its report, its move)



def is_final_name(name: str) -> bool:
    """Whether a file in a top folder is ready: names starting with `.` or ending in
    `.tmp`/`.part` wait for a rename."""
    return not name.startswith(".") and not name.lower().endswith(WAITING_SUFFIXES)


def disk_use(folder: Path) -> int:
    """Bytes below `folder`; files moved away meanwhile (by the inbox) just don't count."""
    total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                pass
    return total


def disk_full(root: Path, reserve: int) -> bool:
    """Whether the filesystem of `root` has less than `reserve` bytes free."""
    return shutil.disk_usage(root).free < reserve


def file_away(path: Path, folder: str, report_json: str) -> Path:
    """Write the report beside the file's new place, then move the file there. The report
    comes first: a crash in between leaves the file in the top folder, processed again
    (as a duplicate), never a file without its report."""
    target = path.parent / folder
    target.mkdir(mode=0o750, exist_ok=True)
    name, number = path.name, 1
    while (target / name).exists() or (target / (name + REPORT_SUFFIX)).exists():
        number += 1
        name = f"{path.stem}-{number}{path.suffix}"
    report_path = target / (name + REPORT_SUFFIX)
    temporary = target / f".{name}{REPORT_SUFFIX}.tmp"
    temporary.write_text(report_json, encoding="utf-8")
    os.replace(temporary, report_path)
    os.replace(path, target / name)
    return target / name


class Inbox:
    """Processes complete files on the event loop, each path once at a time."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.root = Path(config.ftp.root)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.busy: set[Path] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        hours = config.ftp.dedupe_hours
        self.dedupe_window = timedelta(hours=hours) if hours else None

    def hand_over(self, path: Path, code: str) -> None:
        """From an FTP thread: process this file on the event loop."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.start, path, code)

    def start(self, path: Path, code: str) -> None:
        if path in self.busy:
            return
        self.busy.add(path)
        task = asyncio.create_task(self._process(path, code))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _process(self, path: Path, code: str) -> None:
        try:
            if not path.is_file():  # renamed or taken away meanwhile
                return
            if await asyncio.to_thread(disk_full, self.root, PROCESS_RESERVE_BYTES):
                log.error("ftp_disk_full", account=code, file=path.name, action="left for the next scan")
                return  # never stored without the room to file it away: nothing half-done
            outcome = counted("ftp", await self._outcome(path, code))
            folder = "done" if outcome.accepted else "rejected"
            moved = await asyncio.to_thread(file_away, path, folder, report.as_json(outcome.report))
            log.info("ftp_file_processed", account=code, file=path.name, folder=folder,
                     reason=outcome.reason, mailing_id=outcome.mailing_id,
                     duplicate=outcome.duplicate, moved_to=str(moved))
        except StoreError as error:  # ours: the file stays and the next scan retries it
            log.error("ftp_store_unavailable", account=code, file=path.name, error=str(error))
        except Exception:
            log.exception("ftp_processing_failed", account=code, file=path.name)
        finally:
            self.busy.discard(path)

    async def _outcome(self, path: Path, code: str) -> Outcome:
        limit = self.config.ftp.max_file_mb * 1_000_000
        data = await asyncio.to_thread(_read_limited, path, limit)
        if data is None:
            return refused(Rejected("too_large", f"more than {self.config.ftp.max_file_mb} MB"), 1)
        try:
            texts = await cpu_bound(len(data), mime.texts_of, data)
        except Rejected as refusal:
            return refused(refusal, 1)

        async def authorise(account: Account) -> Rejected | None:
            if account.code.lower() == code.lower():
                return None
            return Rejected("account_mismatch",
                            f"the file names account {account.code}; this FTP user is {code}")

        return await submit(self.store, self.config, texts, source="ftp",
                            source_ref="sha256:" + hashlib.sha256(data).hexdigest(),
                            dedupe_window=self.dedupe_window, authorise=authorise)

    def scan(self) -> int:
        """Every complete file waiting in a top folder (after a crash, or our fault)."""
        found = 0
        if not self.root.is_dir():
            return found
        for home in self.root.iterdir():
            if not home.is_dir() or home.is_symlink():
                continue
            for entry in home.iterdir():
                if entry.is_file() and not entry.is_symlink() and is_final_name(entry.name):
                    self.start(entry, home.name)
                    found += 1
        return found

    async def run(self) -> None:
        """Process what waits now, then scan again now and then for files left by faults."""
        self.loop = asyncio.get_running_loop()
        try:
            while True:
                if waiting := self.scan():
                    log.info("ftp_files_waiting", files=waiting)
                await asyncio.sleep(SCAN_INTERVAL_S)
        finally:
            await self.drain()

    async def drain(self, timeout: float = 20.0) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)


def _read_limited(path: Path, limit: int) -> bytes | None:
    with path.open("rb") as stream:
        data = stream.read(limit + 1)
    return None if len(data) > limit else data
