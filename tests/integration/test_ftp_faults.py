"""The FTP drop under faults and load: aborted and oversized uploads, a full disk, bad logins, FTPS, the database down, many accounts, a SIGKILL mid-processing."""

from __future__ import annotations

import asyncio
import ftplib
import io
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.ingest.inbox import PROCESS_RESERVE_BYTES, REPORT_SUFFIX, UPLOAD_RESERVE_BYTES, is_final_name
from ecosms_gw.store import Store
from tests.support.daemon import COMMAND, environment
from tests.support.ftp_drop import BODY, Drop, mailings, start_drop, stop_drop
from tests.support.mail import in_thread
from tests.support.net import self_signed


async def test_aborted_and_oversized_uploads_leave_nothing(dsn: str, tmp_path: Path) -> None:
    started, tasks = await start_drop(dsn, tmp_path / "ftp", max_file_mb=1)

    def scenario() -> str:
        client = started.client()
        try:  # the server cuts the transfer: the client sees a reset, a 426, or both
            client.storbinary("STOR big.txt", io.BytesIO(b"U-ACME\n" + b"x" * 2_000_000))
            reply = "accepted"
        except ftplib.Error as error:
            reply = str(error)
        except OSError:
            try:
                reply = client.getresp()
            except ftplib.Error as error:
                reply = str(error)
        client.close()
        with started.client() as client:
            connection = client.transfercmd("STOR aborted.txt")
            connection.sendall(b"U-ACME\nT-half a file")
            client.abort()
            connection.close()
        return reply

    try:
        first_digit = await in_thread(scenario)
        await asyncio.sleep(0.5)
    finally:
        await stop_drop(started, tasks)
    assert first_digit.startswith("552 file larger than 1 MB")
    home = tmp_path / "ftp" / "ACME"
    assert sorted(p.name for p in home.iterdir()) == ["done", "rejected"]
    assert list((home / "done").iterdir()) == list((home / "rejected").iterdir()) == []
    assert await mailings(dsn) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB filesystem of its own (tmpfs): what fills it fills nothing else."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def leave_free(root: Path, free: int) -> None:
    """A filler file sized so that `free` bytes are left on the filesystem of `root`."""
    filler = root / ".filler"
    filler.unlink(missing_ok=True)
    size = shutil.disk_usage(root).free - free
    with filler.open("wb") as stream:
        for _ in range(size // 1_048_576):
            stream.write(bytes(1_048_576))
        stream.write(bytes(size % 1_048_576))


async def test_a_full_disk_refuses_uploads_cleanly_and_service_resumes(dsn: str, small_disk: Path) -> None:
    """Under the reserve, an upload is refused at once (452); a disk that fills during an
    upload is 452 too, and leaves no hidden file; a file waiting while the disk is full
    is not processed (no mailing without its report); all goes on when space returns."""
    started, tasks = await start_drop(dsn, small_disk / "ftp", max_file_mb=40)
    home = small_disk / "ftp" / "ACME"

    def refused(name: str, data: bytes) -> str:
        try:
            started.upload(name, data)
        except ftplib.Error as error:
            return str(error)
        return "accepted"

    try:
        await in_thread(started.upload, "before.txt", BODY)
        assert (await in_thread(started.report, "before.txt"))[0] == "done"
        leave_free(small_disk, UPLOAD_RESERVE_BYTES - 4 * 1_048_576)
        at_once = await in_thread(refused, "at-once.txt", BODY)
        leave_free(small_disk, UPLOAD_RESERVE_BYTES + 1_048_576)  # room to start, not to finish
        midway = await in_thread(refused, "midway.txt", BODY.encode() + b"x" * 20_000_000)
        for _ in range(100):  # pyftpdlib answers, then removes the hidden copy
            if not (leftovers := sorted(path.name for path in home.iterdir() if path.is_file())):
                break
            await asyncio.sleep(0.05)
        leave_free(small_disk, PROCESS_RESERVE_BYTES // 2)
        (home / "waiting.txt").write_text(BODY.replace("T-", "T-waiting "))  # as if uploaded just before
        started.inbox.scan()
        await asyncio.sleep(1.0)
        waiting_meanwhile = (home / "waiting.txt").exists(), len(await mailings(dsn))
        (small_disk / ".filler").unlink()
        started.inbox.scan()
        await in_thread(started.upload, "after.txt", BODY.replace("T-", "T-after "))
        after = await in_thread(started.report, "after.txt")
        waited = await in_thread(started.report, "waiting.txt")
    finally:
        await stop_drop(started, tasks)
    assert at_once.startswith("452 Insufficient storage")
    assert midway.startswith("452 Insufficient storage")
    assert leftovers == []  # no hidden copy of the aborted upload
    assert waiting_meanwhile == (True, 1)  # left in place, nothing stored
    assert after[0] == waited[0] == "done"
    assert len(await mailings(dsn)) == 3


async def test_wrong_password_and_unknown_user_are_refused(drop: Drop) -> None:
    for user, password in (("ACME", "wrong"), ("NOBODY", "ftp-pass")):
        with pytest.raises(ftplib.error_perm, match="530"):
            await in_thread(drop.client, user, password)


async def test_ftps_login_with_a_generated_certificate(dsn: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    started, tasks = await start_drop(dsn, tmp_path / "ftp", tls_cert=str(cert), tls_key=str(key),
                                      require_tls=True)

    def scenario() -> str:
        with pytest.raises(ftplib.error_perm):
            started.client(tls=False)  # plain FTP login refused when TLS is required
        with started.client(tls=True) as client:
            client.storbinary("STOR secure.txt", io.BytesIO(BODY.encode()))
        return started.report("secure.txt")[0]

    try:
        assert await in_thread(scenario) == "done"
    finally:
        await stop_drop(started, tasks)


async def test_database_down_leaves_the_file_for_a_retry(pg_server, dsn: str, tmp_path: Path) -> None:
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    started, tasks = await start_drop(dsn, tmp_path / "ftp")
    try:
        client = await in_thread(started.client)  # logged in before the database goes down
        await in_thread(cluster.stop, "immediate")
        try:
            await in_thread(client.storbinary, "STOR later.txt", io.BytesIO(BODY.encode()))
            await in_thread(client.quit)
            await asyncio.sleep(1.0)
        finally:
            await in_thread(cluster.start)
        home = tmp_path / "ftp" / "ACME"
        assert (home / "later.txt").exists()  # not rejected for a fault of ours
        assert list((home / "rejected").iterdir()) == []
        started.inbox.scan()  # what the periodic scan does
        assert (await in_thread(started.report, "later.txt"))[0] == "done"
    finally:
        await stop_drop(started, tasks)


async def test_ten_accounts_twenty_files_each(dsn: str, tmp_path: Path) -> None:
    started, tasks = await start_drop(dsn, tmp_path / "ftp", max_files_per_minute=100)
    for n in range(10):
        await started.store.accounts.add(Account(id=None, code=f"C{n}", ftp_password=hash_secret("pw"),
                                                international=True))

    def uploader(n: int) -> None:
        with started.client(f"C{n}", "pw") as client:
            for f in range(20):
                body = f"U-C{n}\nT-file {f}\n" + "".join(f"#-336{n:02d}{f:02d}{r:04d}\n" for r in range(1 + f % 3))
                client.storbinary(f"STOR f{f}.txt", io.BytesIO(body.encode()))

    try:
        await asyncio.gather(*(in_thread(uploader, n) for n in range(10)))
        reports = [await in_thread(started.report, f"f{f}.txt", f"C{n}", "pw") for n in range(10) for f in range(20)]
    finally:
        await stop_drop(started, tasks)
    assert {folder for folder, _ in reports} == {"done"}
    ids = [document["mailing_id"] for _, document in reports]
    rows = await mailings(dsn)
    assert sorted(ids) == [row["id"] for row in rows]
    assert all(row["messages"] == row["rows"] for row in rows)
    for n in range(10):
        done = tmp_path / "ftp" / f"C{n}" / "done"
        assert len(list(done.glob("*.report.json"))) == 20


async def test_sigkill_mid_processing_then_restart_sends_each_file_once(dsn: str, tmp_path: Path) -> None:
    store = await Store.open(dsn)
    await store.accounts.add(Account(id=None, code="ACME", ftp_password=hash_secret("ftp-pass"),
                                    international=True))
    await store.close()
    root = tmp_path / "ftp"
    env = environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_FTP_ROOT=str(root),
                      ECOSMS_FTP_MAX_FILES_PER_MINUTE="1000")
    port = int(env["ECOSMS_FTP_LISTEN"].rpartition(":")[2])
    daemon = subprocess.Popen([COMMAND, "run"], env=env, stdout=subprocess.DEVNULL)

    def upload_all() -> None:
        for _ in range(100):
            try:
                client = ftplib.FTP()
                client.connect("127.0.0.1", port, timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        client.login("ACME", "ftp-pass")
        for n in range(40):
            body = BODY + f"#-33699{n:06d}\n"
            client.storbinary(f"STOR f{n}.txt", io.BytesIO(body.encode()))
        client.close()

    await in_thread(upload_all)
    daemon.send_signal(signal.SIGKILL)  # while files are being stored and moved
    daemon.wait(10)
    home = root / "ACME"
    assert (home / "f39.txt").exists() or (home / "done" / "f39.txt").exists()
    restarted = subprocess.Popen([COMMAND, "run"], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if not [p for p in home.iterdir() if p.is_file() and is_final_name(p.name)]:
                break
            await asyncio.sleep(0.1)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(10)
    assert sorted(p.name for p in (home / "done").glob("*.txt")) == sorted(f"f{n}.txt" for n in range(40))
    reports = [json.loads((home / "done" / f"f{n}.txt{REPORT_SUFFIX}").read_text()) for n in range(40)]
    rows = await mailings(dsn)
    assert len(rows) == 40  # each file once, none twice
    assert sorted(r["mailing_id"] for r in reports) == [row["id"] for row in rows]
