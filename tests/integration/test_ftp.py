"""The FTP drop with ftplib against the real server on real PostgreSQL: uploads, reports, duplicates, refusals, the jail."""

from __future__ import annotations

import ftplib
import io
import time
from pathlib import Path

import pytest

from tests.support.ftp_drop import BODY, Drop, mailings, start_drop, stop_drop
from tests.support.mail import in_thread


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
