"""The FTP file drop against real PostgreSQL, driven by ftplib as uploaders do."""

from __future__ import annotations

import asyncio
import dataclasses
import ftplib
import io
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ecosms_gw.config import Config, DatabaseConfig, FtpConfig
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.ingest import ftp
from ecosms_gw.ingest.inbox import FOLDERS, REPORT_SUFFIX, Inbox, is_final_name
from ecosms_gw.store import Store
from tests.support.daemon import COMMAND, environment
from tests.support.mail import in_thread
from tests.support.net import free_port

BODY = "U-ACME\nT-Hello from FTP\n#-+33612345678\n#-+33612345679\n"


class Drop:
    """A running FTP drop on the test's loop, and ways to talk to it."""

    def __init__(self, config: Config, store: Store, inbox: Inbox) -> None:
        self.config, self.store, self.inbox = config, store, inbox
        self.port = int(config.ftp.listen.rpartition(":")[2])
        self.root = Path(config.ftp.root)

    def client(self, user: str = "ACME", password: str = "ftp-pass", tls: bool | None = None) -> ftplib.FTP:
        tls = self.config.ftp.require_tls if tls is None else tls
        client = ftplib.FTP_TLS(timeout=30) if tls else ftplib.FTP(timeout=30)
        client.connect("127.0.0.1", self.port)
        client.login(user, password)
        if tls:
            client.prot_p()
        return client

    def upload(self, name: str, data: bytes | str, user: str = "ACME") -> None:
        with self.client(user) as client:
            client.storbinary(f"STOR {name}", io.BytesIO(data.encode() if isinstance(data, str) else data))

    def report(self, name: str, user: str = "ACME", password: str = "ftp-pass",
               timeout: float = 20) -> tuple[str, dict]:
        """Wait for the report of `name` and fetch it by FTP: (folder, document)."""
        deadline = time.monotonic() + timeout
        with self.client(user, password) as client:
            while time.monotonic() < deadline:
                for folder in FOLDERS:
                    if f"{name}{REPORT_SUFFIX}" in {n.rpartition("/")[2] for n in client.nlst(folder)}:
                        data = io.BytesIO()
                        client.retrbinary(f"RETR {folder}/{name}{REPORT_SUFFIX}", data.write)
                        return folder, json.loads(data.getvalue())
                time.sleep(0.05)
        raise AssertionError(f"no report for {name}")


async def start_drop(dsn: str, root: Path, **ftp_options: object) -> tuple[Drop, list[asyncio.Task]]:
    passive = min(free_port(), 65535 - 500)
    settings = dataclasses.replace(FtpConfig(listen=f"127.0.0.1:{free_port()}", root=str(root),
                                             passive_ports=f"{passive}-{passive + 500}"), **ftp_options)
    config = Config(database=DatabaseConfig(dsn=dsn), ftp=settings)
    store = await Store.open(dsn, max_connections=20)
    for code in ("ACME", "OTHER"):
        await store.accounts.add(Account(id=None, code=code, ftp_password=hash_secret("ftp-pass"),
                                        international=True))
    inbox = Inbox(config, store)
    tasks = [asyncio.create_task(inbox.run()), asyncio.create_task(ftp.FtpServer(config, store, inbox).run())]
    for _ in range(100):
        try:
            await in_thread(lambda: ftplib.FTP().connect("127.0.0.1", int(settings.listen.rpartition(":")[2])))
            break
        except OSError:
            await asyncio.sleep(0.05)
    return Drop(config, store, inbox), tasks


async def stop_drop(drop: Drop, tasks: list[asyncio.Task]) -> None:
    for task in reversed(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await drop.store.close()


@pytest.fixture
async def drop(dsn: str, tmp_path: Path) -> AsyncIterator[Drop]:
    started, tasks = await start_drop(dsn, tmp_path / "ftp")
    yield started
    await stop_drop(started, tasks)


async def mailings(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT g.id, g.source, g.source_ref, g.messages, "
                                  "(SELECT count(*) FROM messages m WHERE m.mailing_id = g.id) AS rows "
                                  "FROM mailings g ORDER BY g.id")
    await connection.close()
    return rows


# ---------------------------------------------------------------- accepted

async def test_upload_is_sent_and_its_report_fetched_back(drop: Drop, dsn: str) -> None:
    await in_thread(drop.upload, "campaign.txt", BODY)
    folder, document = await in_thread(drop.report, "campaign.txt")
    assert folder == "done"
    assert document["rejected"] is False and document["account"] == "ACME"
    assert [m["recipient"] for m in document["messages"]] == ["+33612345678", "+33612345679"]
    [mailing] = await mailings(dsn)
    assert document["mailing_id"] == mailing["id"]
    assert (mailing["source"], mailing["messages"], mailing["rows"]) == ("ftp", 2, 2)
    assert mailing["source_ref"].startswith("sha256:")
    assert (drop.root / "ACME" / "done" / "campaign.txt").read_text() == BODY
    assert not (drop.root / "ACME" / "campaign.txt").exists()


async def test_a_2000_recipient_file(drop: Drop) -> None:
    body = "U-ACME\nT>Bonjour #1#\n" + "".join(f"#-06{n:08d};Client {n}\n" for n in range(2000))
    await in_thread(drop.upload, "big.txt", body)
    folder, document = await in_thread(drop.report, "big.txt")
    assert (folder, len(document["messages"]), document["messages"][-1]["text"]) == (
        "done", 2000, "Bonjour Client 1999")


async def test_the_same_content_again_is_a_duplicate(drop: Drop, dsn: str) -> None:
    await in_thread(drop.upload, "first.txt", BODY)
    _, first = await in_thread(drop.report, "first.txt")
    await in_thread(drop.upload, "again.txt", BODY)
    folder, again = await in_thread(drop.report, "again.txt")
    assert (folder, again["duplicate"], again["mailing_id"]) == ("done", True, first["mailing_id"])
    assert len(await mailings(dsn)) == 1


async def test_waiting_names_are_processed_only_once_renamed(drop: Drop) -> None:
    def scenario() -> list[str]:
        with drop.client() as client:
            client.storbinary("STOR batch.tmp", io.BytesIO(BODY.encode()))
            client.storbinary("STOR .hidden", io.BytesIO(BODY.encode()))
            time.sleep(0.5)
            before = sorted(client.nlst())
            client.rename("batch.tmp", "batch.txt")
        return before

    before = await in_thread(scenario)
    assert before == [".hidden", "batch.tmp", "done", "rejected"]
    assert (await in_thread(drop.report, "batch.txt"))[0] == "done"
    assert (drop.root / "ACME" / ".hidden").exists()  # still waiting for a rename


async def test_files_in_top_folders_at_start_are_processed(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "ftp" / "ACME").mkdir(parents=True)
    (tmp_path / "ftp" / "ACME" / "left.txt").write_text(BODY)
    (tmp_path / "ftp" / "ACME" / ".upload-partial.txt").write_text("U-ACME\nT-half")
    started, tasks = await start_drop(dsn, tmp_path / "ftp")
    try:
        assert (await in_thread(started.report, "left.txt"))[0] == "done"
        assert (tmp_path / "ftp" / "ACME" / ".upload-partial.txt").exists()  # never processed
    finally:
        await stop_drop(started, tasks)


# ---------------------------------------------------------------- refused

@pytest.mark.parametrize(("body", "reason", "line"), [
    ("U-ACME\nD-2017-13-01\nT-x\n#-33612345678", "invalid_date", 2),
    ("U-ACME\nT-x\n#-06x\n", "no_messages", None),
    ("T-x\n#-33612345678", "missing_account", None),
    ("U-NOBODY\nT-x\n#-33612345678", "unknown_account", None),
    ("U-OTHER\nT-x\n#-33612345678", "account_mismatch", None),
    ("\x00\x01binary garbage\xff", "missing_account", None),
])
async def test_refusals_go_to_rejected_with_reason(drop: Drop, dsn: str, body: str, reason: str,
                                                  line: int | None) -> None:
    await in_thread(drop.upload, "bad.txt", body.encode("latin-1"))
    folder, document = await in_thread(drop.report, "bad.txt")
    assert (folder, document["reason"], document["line"]) == ("rejected", reason, line)
    assert await mailings(dsn) == []


async def test_jail_cannot_be_escaped(drop: Drop, tmp_path: Path) -> None:
    (drop.root / "OTHER").mkdir(parents=True, exist_ok=True)
    (drop.root / "OTHER" / "secret.txt").write_text("other account's file")

    def scenario() -> dict[str, str]:
        seen: dict[str, str] = {}
        with drop.client() as client:
            (drop.root / "ACME" / "link").symlink_to("/etc")
            client.cwd("..")
            seen["pwd after cd .."] = client.pwd()
            for label, command in (("parent", "RETR ../OTHER/secret.txt"), ("absolute", "RETR /etc/passwd"),
                                   ("symlink", "RETR link/passwd"), ("store in done", "STOR done/x.txt"),
                                   ("delete", "DELE done"), ("mkdir", "MKD mine"),
                                   ("upload outside", "STOR ../OTHER/x.txt")):
                try:
                    if command.startswith(("RETR", "STOR")):
                        verb, name = command.split(" ", 1)
                        method = client.retrbinary if verb == "RETR" else client.storbinary
                        method(command, io.BytesIO(b"x").write if verb == "RETR" else io.BytesIO(b"x"))
                    else:
                        client.sendcmd(command)
                    seen[label] = "allowed"
                except ftplib.error_perm as error:
                    seen[label] = str(error)[:3]
        return seen

    seen = await in_thread(scenario)
    assert seen.pop("pwd after cd ..") == "/"
    assert seen == {label: "550" for label in seen}
    assert not (drop.root / "OTHER" / "x.txt").exists()


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
    assert first_digit.startswith("426")
    home = tmp_path / "ftp" / "ACME"
    assert sorted(p.name for p in home.iterdir()) == ["done", "rejected"]
    assert list((home / "done").iterdir()) == list((home / "rejected").iterdir()) == []
    assert await mailings(dsn) == []


async def test_wrong_password_and_unknown_user_are_refused(drop: Drop) -> None:
    for user, password in (("ACME", "wrong"), ("NOBODY", "ftp-pass")):
        with pytest.raises(ftplib.error_perm, match="530"):
            await in_thread(drop.client, user, password)


async def test_ftps_login_with_a_generated_certificate(dsn: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
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


# ---------------------------------------------------------------- faults, crashes, load

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
