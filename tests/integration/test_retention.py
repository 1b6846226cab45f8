"""The retention horizon: `ecosms-gw purge [--dry-run]` on backdated rows and files."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from ecosms_gw.core.accounts import Account
from ecosms_gw.store import Store
from ecosms_gw.store.notifications import Mail
from tests.support.daemon import COMMAND, environment
from tests.support.smsc import queue_mailing


async def test_purge_removes_what_is_past_the_horizon_and_keeps_statistics(store: Store, dsn: str,
                                                                          tmp_path: Path) -> None:
    account = await store.accounts.add(Account(id=None, code="ACME", international=True))
    old = await queue_mailing(store, account, ["U-ACME\nT-old\n#-33600000001\n#-33600000002\n#-33600000003"])
    new = await queue_mailing(store, account, ["U-ACME\nT-new\n#-33600000004"])
    await store.notifications.queue_mail(Mail("a@example.com", "old", "x"))
    await store.notifications.queue_mail(Mail("b@example.com", "new", "y"))
    long_ago = datetime.now(UTC) - timedelta(days=500)
    connection = await asyncpg.connect(dsn)
    await connection.execute("UPDATE mailings SET created_at = $1 WHERE id = $2", long_ago, old)
    await connection.execute("UPDATE messages SET created_at = $1, state = 'done', status = 'ok' "
                             "WHERE mailing_id = $2 AND recipient <> '+33600000003'", long_ago, old)
    await connection.execute("UPDATE messages SET created_at = $1, state = 'done', status = 'ko', code = 'x' "
                             "WHERE recipient = '+33600000003'", long_ago)
    await connection.execute("INSERT INTO mo_messages (smsc, source, destination, text, received_at) "
                             "VALUES ('main', '+33600000001', 'ACME', 'old', $1), ('main', '+33600000004', 'ACME', 'new', now())",
                             long_ago)
    await connection.execute("UPDATE mail_out SET created_at = $1 WHERE subject = 'old'", long_ago)
    month = (long_ago.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
             (long_ago.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    before = await store.reads.stats(account.id, None, None, *month)
    by_id = await store.reads.stats(account.id, [old], None, None, None)
    everything = await store.reads.stats(account.id, None, None, None, None)
    by_day = await store.reads.stats(account.id, None, None, None, None, "day", "Europe/Paris")
    root = tmp_path / "ftp"
    for name, age_days in (("old.txt", 40), ("new.txt", 1)):
        for folder in ("done", "rejected"):
            path = root / "ACME" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("U-ACME\n")
            moment = time.time() - age_days * 86_400
            os.utime(path, (moment, moment))
    env = environment(ECOSMS_DATABASE_DSN=dsn, ECOSMS_FTP_ROOT=str(root))

    dry = subprocess.run([COMMAND, "purge", "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ("would remove 1 mailings, 3 messages, 3 events, 1 replies, 0 pings, 1 mails, "
                          "0 early receipts, 2 FTP files\n")
    assert await connection.fetchval("SELECT count(*) FROM messages") == 4
    assert (root / "ACME" / "done" / "old.txt").exists()

    done = subprocess.run([COMMAND, "purge"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("removed 1 mailings, 3 messages, 3 events, 1 replies, 0 pings, 1 mails, "
                           "0 early receipts, 2 FTP files\n")
    assert await connection.fetchval("SELECT array_agg(id) FROM mailings") == [new]
    assert await connection.fetchval("SELECT count(*) FROM messages") == 1
    assert await connection.fetchval("SELECT count(*) FROM parts WHERE message_id NOT IN (SELECT id FROM messages)") == 0
    assert await connection.fetchval("SELECT array_agg(text) FROM mo_messages") == ["new"]
    assert await connection.fetchval("SELECT array_agg(subject) FROM mail_out") == ["new"]
    await connection.close()
    assert sorted(p.name for p in root.rglob("*.txt")) == ["new.txt", "new.txt"]
    assert await store.reads.stats(account.id, None, None, *month) == before
    assert len(before) == 1 and before[0].ok == 2 and before[0].ko == 1 and before[0].total == 3
    assert await store.reads.stats(account.id, [old], None, None, None) == by_id
    assert await store.reads.stats(account.id, None, None, None, None) == everything
    assert await store.reads.stats(account.id, None, None, None, None, "day", "Europe/Paris") == by_day
    assert len(by_day) == 2 and sum(day.total for day in by_day) == everything[0].total
