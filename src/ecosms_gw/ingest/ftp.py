"""The FTP file drop: pyftpdlib in a thread of its own, each account jailed in its folder.

An upload is written under a hidden name and only gets its real name once complete, so a
file with a final name in a top folder is always whole: it is processed on arrival, again
by the periodic scan if our database was down, and at start after a crash. Processing
happens on the daemon's event loop; the FTP threads only hand paths over.
The inbox (inbox.py) processes the files and files them away.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import structlog
from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.filesystems import AbstractedFS, FilesystemError
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_FTPHandler
from pyftpdlib.handlers.ftps.data import TLS_DTPHandler
from pyftpdlib.servers import ThreadedFTPServer

from ecosms_gw.config import Config
from ecosms_gw.core.accounts import verify_secret
from ecosms_gw.core.ratelimit import SlidingWindow
from ecosms_gw.ingest.inbox import (
    FOLDERS,
    UPLOAD_RESERVE_BYTES,
    UPLOADING,
    Inbox,
    disk_full,
    disk_use,
    is_final_name,
)
from ecosms_gw.store import Store, StoreError

log = structlog.get_logger()
_pyftpdlib_log = logging.getLogger("pyftpdlib")  # where pyftpdlib logs its replies

LOOP_TIMEOUT_S = 30.0


class Authorizer:
    """pyftpdlib's authorizer interface, backed by the accounts table. Called from the FTP
    connection threads; database work runs on the event loop and is waited for."""

    def __init__(self, config: Config, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.root = Path(config.ftp.root)
        self.store = store
        self.loop = loop
        self.codes: dict[str, str] = {}  # login as typed -> account code
        self.lock = threading.Lock()

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(LOOP_TIMEOUT_S)

    def validate_authentication(self, username: str, password: str, handler: FTPHandler) -> None:
        try:
            account = self._on_loop(self.store.known.get(username))
        except (StoreError, concurrent.futures.TimeoutError) as error:
            log.error("ftp_store_unavailable", during="login", error=str(error))
            raise AuthenticationFailed("service temporarily unavailable, retry later") from None
        valid = verify_secret(password, account.ftp_password if account else None)
        if not (account and valid):
            raise AuthenticationFailed("authentication failed")
        with self.lock:
            self.codes[username] = account.code
        home = self.home(username)
        for folder in ("", *FOLDERS):
            (home / folder).mkdir(mode=0o750, parents=True, exist_ok=True)

    def home(self, username: str) -> Path:
        with self.lock:
            return self.root / self.codes[username]

    def get_home_dir(self, username: str) -> str:
        return str(self.home(username))

    def has_user(self, username: str) -> bool:
        return True  # never tell which accounts exist

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        """Browse and download anywhere in the home; upload and rename only in its top
        folder; never delete, make folders, change modes or append."""
        if perm not in "elrwf":
            return False
        home = self.home(username).resolve()
        if path is None:
            return True
        target = Path(os.path.realpath(path))
        if target != home and home not in target.parents:
            return False
        if perm in "wf":
            return target.parent == home and target.name not in FOLDERS
        return True

    def get_perms(self, username: str) -> str:
        return "elrwf"

    def get_msg_login(self, username: str) -> str:
        return ("Upload a body file here; when it is complete it is sent and moved to done/ or "
                "rejected/ with NAME.report.json beside it.")

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass  # one system user serves every account: the jail is the home folder

    def terminate_impersonation(self, username: str) -> None:
        pass


class _TooLarge(OSError):
    """An upload past the size limit."""


class _LimitedFile(io.BufferedWriter):
    """An upload that stops being written past the size limit (the transfer then fails)."""

    limit = 0

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.limit:
            raise _TooLarge(f"file larger than {self.limit // 1_000_000} MB")
        return super().write(data)


class HomeFS(AbstractedFS):
    """Uploads go to a hidden name in the top folder, within the size and disk limits."""

    def open(self, filename: str, mode: str) -> Any:
        if "r" in mode and "+" not in mode:
            return super().open(filename, mode)
        handler = self.cmd_channel
        settings = handler.gateway_config.ftp
        path = Path(filename)
        if path.parent != Path(self.root) or not path.name or path.name in FOLDERS:
            raise FilesystemError("upload into the top folder only")
        if "+" in mode or "a" in mode:
            raise FilesystemError("resuming or appending is not supported: upload the whole file")
        if disk_use(Path(self.root)) >= settings.max_disk_mb * 1_000_000:
            raise FilesystemError(f"disk quota of {settings.max_disk_mb} MB reached: "
                                  "fetch and delete nothing, ask the operator")
        stream = _LimitedFile(io.FileIO(path.with_name(UPLOADING + path.name), "w"))
        stream.limit = settings.max_file_mb * 1_000_000
        return stream


def final_path(uploading: Path) -> Path:
    return uploading.with_name(uploading.name.removeprefix(UPLOADING))


class _RenameOnComplete(DTPHandler):
    """pyftpdlib answers "226 Transfer complete" before it calls on_file_received: the file
    gets its final name (on disk, synced) before that answer, so that an uploader told
    "complete" never leaves behind a hidden file that nobody would process. A disk that
    fills up during the upload, or at its last write, is 452 (retry later), the size
    limit 552; either way the hidden copy is removed and nothing is processed."""

    transfer_finished: bool

    def close(self) -> None:
        upload = self.file_obj
        if self.receive and upload is not None and not upload.closed and not self._closed:
            if self.transfer_finished:
                try:
                    upload.flush()
                    os.fsync(upload.fileno())
                    upload.close()
                    os.replace(upload.name, final_path(Path(upload.name)))
                except OSError as error:
                    self.transfer_finished = False
                    self._resp = (_refusal(error), _pyftpdlib_log.warning)
            with contextlib.suppress(OSError):  # on a full disk the last flush fails: the copy goes anyway
                upload.close()
        super().close()

    def handle_error(self) -> None:
        cause = getattr(sys.exc_info()[1], "__cause__", None)  # pyftpdlib wraps the file's error
        if not isinstance(cause, OSError):
            super().handle_error()
            return
        self._resp = (_refusal(cause), _pyftpdlib_log.warning)
        self.close()


def _refusal(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("ftp_disk_full", error=str(error))
        return "452 Insufficient storage: the disk is full, retry later."
    if isinstance(error, _TooLarge):
        return f"552 {error}; transfer aborted."
    return f"451 {os.strerror(error.errno) if error.errno else error}; transfer aborted, retry later."


class _DataChannel(_RenameOnComplete, DTPHandler):
    pass


class _TLSDataChannel(_RenameOnComplete, TLS_DTPHandler):
    pass


class _Handlers(FTPHandler):
    """The pyftpdlib handler methods of the gateway, mixed into the plain or TLS handler."""

    gateway_config: Config
    inbox: Inbox
    file_rate: SlidingWindow

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        if not self.file_rate.allow(self.username):
            self.respond(f"450 more than {self.file_rate.limit} files this minute, retry later.")
            return None
        if disk_full(self.inbox.root, UPLOAD_RESERVE_BYTES):
            log.error("ftp_disk_full", account=self.username, action="upload refused")
            self.respond("452 Insufficient storage: the disk is full, retry later.")
            return None
        return super().ftp_STOR(file, mode)

    def on_file_received(self, file: str) -> None:
        final = final_path(Path(file))  # renamed already, see _DataChannel
        log.info("ftp_upload_complete", account=self.username, file=final.name)
        if is_final_name(final.name):
            self.inbox.hand_over(final, self.authorizer.codes[self.username])

    def on_incomplete_file_received(self, file: str) -> None:
        log.warning("ftp_upload_aborted", account=self.username, file=Path(file).name)
        Path(file).unlink(missing_ok=True)  # our hidden copy; the user's name never appeared

    def ftp_RNTO(self, path: str) -> Any:
        renamed = super().ftp_RNTO(path)
        if renamed and is_final_name(Path(path).name) and Path(path).is_file():
            self.inbox.hand_over(Path(path), self.authorizer.codes[self.username])
        return renamed

    def on_login_failed(self, username: str, password: str) -> None:
        log.warning("ftp_login_failed", login=username[:64], peer=self.remote_ip)


class GatewayFTPHandler(_Handlers, FTPHandler):
    pass


class GatewayTLSHandler(_Handlers, TLS_FTPHandler):
    pass


class _PassiveListener(FTPHandler.passive_dtp):
    """pyftpdlib binds passive ports with SO_REUSEADDR, so two sessions of the threaded
    server could bind the same port at once and the second `listen()` failed (the session
    got no data connection). Without it, a port in use fails at `bind()`, where pyftpdlib
    moves on to another port of the range."""

    def set_reuse_addr(self) -> None:
        pass


class FtpServer:
    """The pyftpdlib server in its own thread, stopped from the event loop."""

    def __init__(self, config: Config, store: Store, inbox: Inbox) -> None:
        self.config = config
        settings = config.ftp
        handler: type[FTPHandler] = GatewayTLSHandler if settings.tls_cert else GatewayFTPHandler
        handler = type("Handler", (handler,), {})  # class attributes of this server only
        if settings.tls_cert:
            handler.certfile, handler.keyfile = settings.tls_cert, settings.tls_key
            handler.tls_control_required = handler.tls_data_required = settings.require_tls
        handler.authorizer = Authorizer(config, store, asyncio.get_running_loop())
        handler.abstracted_fs = HomeFS
        handler.dtp_handler = _TLSDataChannel if settings.tls_cert else _DataChannel
        handler.gateway_config = config
        handler.inbox = inbox
        handler.file_rate = SlidingWindow(settings.max_files_per_minute)
        handler.passive_ports = settings.passive_ports.ports()
        handler.passive_dtp = _PassiveListener
        handler.banner = "ecosms-gw FTP: upload SMS body files"
        handler.auth_failed_timeout = 2
        handler.max_login_attempts = 3
        self.server = ThreadedFTPServer((settings.listen.host, settings.listen.port), handler)
        self.server.max_cons_per_ip = 10
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="ftp", daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            self.server.serve_forever(timeout=0.5, blocking=False, handle_exit=False)
        self.server.close_all()

    async def run(self) -> None:
        """Serve until cancelled, then close every FTP connection."""
        Path(self.config.ftp.root).mkdir(parents=True, exist_ok=True)
        self.thread.start()
        log.info("ftp_listening", listen=str(self.config.ftp.listen), tls=bool(self.config.ftp.tls_cert),
                 root=self.config.ftp.root)
        try:
            await asyncio.Event().wait()
        finally:
            self.stopping.set()
            await asyncio.to_thread(self.thread.join, 10)
            log.info("ftp_closed")
