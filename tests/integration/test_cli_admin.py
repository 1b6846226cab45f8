"""`ecosms-gw account`, `queue` and `migrate` through the entry point on real PostgreSQL."""

from __future__ import annotations

import json
import subprocess

import asyncpg

from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.daemon import COMMAND, environment
from tests.support.fixtures import MIGRATIONS
from tests.support.samples import composition


def ecosms(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], input=stdin, capture_output=True, text=True,
                          env=environment(ECOSMS_DATABASE_DSN=dsn), timeout=60)


def test_migrate_applies_then_says_up_to_date(empty_database: str) -> None:
    first = ecosms(empty_database, "migrate")
    assert (first.returncode, first.stdout) == (0, f"applied migrations {', '.join(map(str, MIGRATIONS))}\n")
    assert ecosms(empty_database, "migrate").stdout == "schema up to date\n"


async def test_account_lifecycle_never_shows_secrets(dsn: str) -> None:
    added = ecosms(dsn, "account", "add", "ACME01", "--name", "Acme", "--sender", "Office@Acme.example",
                   "--sender", "@acme.example", "--smtp-password", "s3cret-smtp", "--api-secret", "-",
                   "--country", "32", "--timezone", "Europe/Brussels", "--international",
                   "--mode", "auto", "--sender-id", "ACME", "--sender-id", "+33700000000", "--max-messages", "500",
                   "--tps", "5", "--priority", "2", "--validity-hours", "4",
                   stdin="s3cret-api\n")
    assert (added.returncode, added.stdout, added.stderr) == (0, "account ACME01 added\n", "")

    shown = ecosms(dsn, "account", "show", "acme01")
    assert shown.returncode == 0
    assert "senders:        office@acme.example, @acme.example" in shown.stdout
    assert "sender_ids:     ACME, +33700000000" in shown.stdout and "mode:           auto" in shown.stdout
    assert "priority:       2" in shown.stdout and "validity_hours: 4" in shown.stdout
    assert "smtp_password:  set" in shown.stdout and "ftp_password:   not set" in shown.stdout
    assert "s3cret" not in shown.stdout and "scrypt" not in shown.stdout

    connection = await asyncpg.connect(dsn)
    stored = await connection.fetchrow("SELECT smtp_password, api_secret FROM accounts")
    await connection.close()
    assert stored["smtp_password"].startswith("scrypt$") and "s3cret" not in stored["smtp_password"]
    assert stored["api_secret"].startswith("scrypt$")

    changed = ecosms(dsn, "account", "set", "ACME01", "--no-international", "--ftp-password", "f")
    assert changed.stdout == "account ACME01 updated: ftp_password, international\n"
    assert "international:  False" in ecosms(dsn, "account", "show", "ACME01").stdout

    listed = ecosms(dsn, "account", "list")
    assert listed.stdout.splitlines()[1].split()[:4] == ["ACME01", "0", "auto", "no"]

    removed = ecosms(dsn, "account", "remove", "ACME01")
    assert (removed.returncode, removed.stdout) == (0, "account ACME01 removed\n")
    assert ecosms(dsn, "account", "show", "ACME01").stderr == "ecosms-gw: no account ACME01\n"


def test_refusals_exit_1_with_one_line(dsn: str) -> None:
    assert ecosms(dsn, "account", "add", "ACME").returncode == 0
    for args, message in (
        (("account", "add", "acme"), "account acme exists already"),
        (("account", "add", "bad code"), "code 'bad code'"),
        (("account", "add", "B", "--timezone", "Mars/Base"), "--timezone 'Mars/Base': unknown time zone"),
        (("account", "add", "B", "--sender", "not-an-address"), "--sender 'not-an-address'"),
        (("account", "add", "B", "--sender-id", "TOO-LONG-SENDER"), "--sender-id"),
        (("account", "add", "B", "--ping-url", "ftp://x"), "--ping-url"),
        (("account", "add", "B", "--smtp-password", ""), "--smtp-password is empty"),
        (("account", "set", "ACME"), "nothing to change"),
        (("account", "set", "NOPE", "--name", "x"), "no account NOPE"),
        (("account", "remove", "NOPE"), "no account NOPE"),
    ):
        result = ecosms(dsn, *args)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1 and message in result.stderr, (args, result.stderr)
    assert ecosms(dsn, "account", "show", "B").returncode == 1  # nothing was half-created


async def test_an_account_that_sent_is_not_removed(dsn: str) -> None:
    ecosms(dsn, "account", "add", "ACME")
    store = await Store.open(dsn)
    account = await store.accounts.get("ACME")
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition(3), {})
    await store.close()
    result = ecosms(dsn, "account", "remove", "ACME")
    assert result.returncode == 1
    assert "has 1 mailings" in result.stderr


async def test_queue_shows_waiting_mailings(dsn: str) -> None:
    assert ecosms(dsn, "queue").stdout == "queue empty\n"
    ecosms(dsn, "account", "add", "ACME")
    ecosms(dsn, "account", "add", "OTHER")
    store = await Store.open(dsn)
    acme, other = await store.accounts.get("ACME"), await store.accounts.get("OTHER")
    first = await store.mailings.enqueue(Submission(acme.id, "smtp", None), composition(4), {})
    paused = await store.mailings.enqueue(Submission(other.id, "ftp", None, priority=2), composition(2), {})
    await store.mailings.pause(paused.mailing_id)
    sent = await store.dispatch.claim(1, worker=1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[c.id for c in sent])
    await store.dispatch.record_submissions("main", [(c.id, 1, "x") for c in sent], [c.id for c in sent], [])
    await store.close()

    table = ecosms(dsn, "queue").stdout.splitlines()
    assert table[-3:] == ["-- OTHER priority 2: 2 waiting", "-- ACME priority 1: 3 waiting",
                          "-- 2 mailings, 5 messages waiting, 2 paused, 0 held by quiet hours"]
    assert [line.split()[3] for line in table[1:3]] == ["1", "2"]  # priorities
    assert "paused" in table[2]
    rows = json.loads(ecosms(dsn, "queue", "--json", "--account", "acme").stdout)
    assert [(r["mailing_id"], r["account"], r["wait"], r["on"]) for r in rows] == [
        (first.mailing_id, "ACME", 3, 1)]
