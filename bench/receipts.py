"""Figures of receipts (issue 7), printed; run by hand from the repository:

    .venv/bin/python bench/receipts.py

With 1,000,000 submitted messages in the table (one part each, with its SMSC id), apply
200,000 receipts in batches of 1,000, as the gateway does: receipts/s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store import fresh_store  # noqa: E402
from ecosms_gw.accounts import Account  # noqa: E402
from tests.postgres import server  # noqa: E402

ROWS, RECEIPTS, BATCH = 1_000_000, 200_000, 1000


async def main() -> None:
    with server(durable=True) as (admin_dsn, _):
        store, dsn = await fresh_store(admin_dsn, "bench_receipts")
        account = await store.add_account(Account(id=None, code="B"))
        connection = await asyncpg.connect(dsn)
        mailing = await connection.fetchval(
            "INSERT INTO mailings (account_id, source, messages, parts) VALUES ($1, 'http', $2, $2) RETURNING id",
            account.id, ROWS)
        await connection.execute(
            "INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, state, status)"
            " SELECT $1, $2, '+336' || lpad(g::text, 8, '0'), 'text', 'gsm7', 1, 'submitted', 'on'"
            " FROM generate_series(1, $3) g", mailing, account.id, ROWS)
        await connection.execute(
            "INSERT INTO parts (message_id, seq, smsc, smsc_message_id, state)"
            " SELECT id, 1, 'main', to_hex(id), 'submitted' FROM messages")
        await connection.execute("VACUUM ANALYZE")
        ids = [row["id"] for row in await connection.fetch(
            "SELECT id FROM messages ORDER BY random() LIMIT $1", RECEIPTS)]
        await connection.close()
        start = time.perf_counter()
        for offset in range(0, RECEIPTS, BATCH):
            batch = [(format(i, "x"), "delivered", "000") for i in ids[offset:offset + BATCH]]
            await store.apply_receipts("main", batch)
        elapsed = time.perf_counter() - start
        print(f"receipts applied with {ROWS:,} messages in the table: {RECEIPTS / elapsed:,.0f}/s "
              f"(batches of {BATCH}, each message settled ok with its status event)")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
