"""Faults that hurt gateways in production, on real parts: PostgreSQL restarted and stopped
under load, the daemon's wall clock jumping. Nothing accepted is lost or sent twice, every
door says "later" while the database is away, the daemon comes back on its own, and the
rate and the schedule hold whatever the daemon's clock says."""

from __future__ import annotations

import asyncio
import json
import smtplib
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, daemon
from tests.support.gateway import mailing_id, stored
from tests.support.net import free_port
from tests.support.smsc import Peer, all_final, busiest_second, peer_jitter, scalar, statuses

NUMBERS_PER_MAIL = 25  # 20 mails/s: 500 messages/s, the link's rate
WINDOW = 20


class MailLoad:
    """An office sending 20 campaign mails a second, each to 25 new numbers; every reply
    kept with its time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replies: list[tuple[float, int, str]] = []  # (monotonic time, code, text)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(60)

    @staticmethod
    def _transact(mail: smtplib.SMTP, body: str) -> tuple[int, str]:
        """MAIL, RCPT and DATA, stopping at the first refusal."""
        code, text = mail.mail("ops@example.com")
        if code < 400:
            code, text = mail.rcpt("sms@localhost")
        if code < 400:
            code, text = mail.data(f"Subject: drill\n\n{body}".encode())
        return code, text.decode()

    def _run(self) -> None:
        sent = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            body = "U-ACME\nT-outage drill\n" + "".join(
                f"#-336{sent * NUMBERS_PER_MAIL + n:08d}\n" for n in range(NUMBERS_PER_MAIL))
            try:  # DATA spoken here: sendmail() hides the 250's text, which has the mailing id
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as mail:
                    mail.ehlo()
                    reply = self._transact(mail, body)
            except smtplib.SMTPResponseException as error:
                reply = (error.smtp_code, error.smtp_error.decode())
            except (OSError, smtplib.SMTPException) as error:
                reply = (0, repr(error))
            self.replies.append((time.monotonic(), *reply))
            sent += 1
            time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))


async def restart(cluster, mode: str) -> None:
    await asyncio.to_thread(cluster.stop, mode)
    await asyncio.to_thread(cluster.start)


async def test_database_restarted_and_stopped_under_load_loses_nothing_and_the_daemon_recovers(
        pg_server, store: Store, dsn: str, tmp_path: Path) -> None:
    """Mail at 20/s (500 SMS/s), dispatch at 500 TPS with receipts; PostgreSQL restarted
    fast, then immediate, then stopped for 30 s. SMTP says 451 and HTTP 503 while it is
    away, never a 250 or 201 for what was not stored; every accepted SMS reaches the SMSC
    once (at most a window per outage left in doubt, never sent twice); the daemon lives
    through it and sends again within 10 s of the database's return."""
    _, cluster = pg_server
    if cluster is None:
        pytest.skip("needs a server the tests control")
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     senders=("ops@example.com",)))
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "1000")
    smtp_port = free_port()
    api: list[tuple[int, object]] = []
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port, tps=500, more=f"window = {WINDOW}\n",
                          ECOSMS_SMTP_LISTEN=f"127.0.0.1:{smtp_port}", ECOSMS_SMTP_MAX_MAILS_PER_MINUTE="5000") as base, \
                aiohttp.ClientSession() as session:
            client = Client(session, base)
            assert (await client.login()).status == 200

            async def post(number: str) -> tuple[int, object]:
                api.append(await client.call("POST", "/rest/mailing", json={
                    "text": "API drill", "contacts": [{"recipient": number}]}))
                return api[-1]

            load = MailLoad(smtp_port)
            try:
                await asyncio.sleep(5)
                await restart(cluster, "fast")
                await asyncio.sleep(5)
                await restart(cluster, "immediate")
                await asyncio.sleep(5)
                await asyncio.to_thread(cluster.stop, "immediate")
                down_at = time.monotonic()
                away = [await post(f"+3370000{n:04d}") for n in range(3)]
                await asyncio.sleep(30 - (time.monotonic() - down_at))
                await asyncio.to_thread(cluster.start)
                back_at, back_wall = time.monotonic(), time.time()
                await asyncio.sleep(15)
            finally:
                load.stop()
            status, _ = await post("+33710000000")
            assert status == 201
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 180
            while not await all_final(dsn)():  # receipts included
                assert loop.time() < deadline, Counter(s for _, s, _ in (await statuses(dsn)).values())
                await asyncio.sleep(0.5)
            async with session.get(base + "/health") as response:
                assert response.status == 200, await response.text()
        log = [json.loads(line) for line in next(tmp_path.glob("daemon-*.log")).read_text().splitlines()
               if line.startswith("{")]
    finally:
        peer.stop()

    events = Counter(line["event"] for line in log)
    assert events["task_ended"] == 0 and events["daemon_stopping"] == 1, events  # once: the test's SIGTERM
    assert [status for status, _ in away] == [503, 503, 503], away

    replies = load.replies
    codes = Counter(code for _, code, _ in replies)
    assert set(codes) == {250, 451}, codes
    assert codes[451] >= 20  # the 30 s outage at least
    assert all(text.startswith("4.3.0") for _, code, text in replies if code == 451)
    smtp_back = min(at for at, code, _ in replies if code == 250 and at > back_at) - back_at
    accepted = sorted([mailing_id(text) for _, code, text in replies if code == 250]
                      + [answer["id"] for status, answer in api if status == 201])  # type: ignore[index]
    rows = await stored(dsn)
    assert [row[0] for row in rows] == accepted  # nothing stored without its 250 or 201
    assert all(messages == count for _, messages, count in rows)
    total = sum(messages for _, messages, _ in rows)

    received = peer.received()
    destinations = Counter(pdu["destination"] for pdu in received)
    assert max(destinations.values()) == 1  # never sent twice
    final = await statuses(dsn)
    in_doubt = [number for number, (_, status, code) in final.items() if code == "in_doubt"]
    assert len(in_doubt) <= 3 * WINDOW
    assert len(destinations) + len(in_doubt) >= total == len(final)
    assert Counter(status for _, status, _ in final.values()).keys() <= {"ok", "no"}
    dispatch_back = min(pdu["at"] / 1000 for pdu in received if pdu["at"] / 1000 > back_wall) - back_wall
    assert smtp_back < 10 and dispatch_back < 10, (smtp_back, dispatch_back)
    print(f"\nmessages {total}, in doubt {len(in_doubt)}, 451 {codes[451]}, back after: SMTP {smtp_back:.1f} s, "
          f"dispatch {dispatch_back:.1f} s")


def libfaketime() -> Path | None:
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0] if found else None


async def test_a_wall_clock_jump_neither_bursts_nor_stalls_sending_and_dates_follow_the_database(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """The daemon's wall clock (libfaketime; its monotonic clock is left alone, as an NTP
    step leaves it) jumps 1 h ahead, then 1 h behind, during a send at 50 SMS/s: no second
    carries more than the rate, none is skipped. While it is 1 h ahead, a mail without a
    date goes at once and one dated 30 min ahead (by the database's clock) waits."""
    library = libfaketime()
    if library is None:
        pytest.skip("libfaketime is not installed (Debian: faketime)")
    await store.accounts.add(Account(id=None, code="ACME", international=True, senders=("ops@example.com",)))
    peer = Peer(tmp_path)
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    smtp_port = free_port()
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port, tps=50, ECOSMS_SMTP_LISTEN=f"127.0.0.1:{smtp_port}",
                          LD_PRELOAD=str(library), FAKETIME_TIMESTAMP_FILE=str(offset),
                          FAKETIME_CACHE_DURATION="1", FAKETIME_DONT_FAKE_MONOTONIC="1"):
            def mail(body: str) -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                    client.sendmail("ops@example.com", ["sms@localhost"], f"Subject: x\n\n{body}".encode())

            await asyncio.to_thread(mail, "U-ACME\nT-steady\n" + "".join(f"#-336{n:08d}\n" for n in range(600)))
            await asyncio.sleep(3)
            offset.write_text("+1h\n")
            await asyncio.sleep(2)  # the daemon reads the file at most a second late
            database_now = await scalar(dsn, "SELECT now()")
            later = database_now.astimezone(ZoneInfo("Europe/Paris")) + timedelta(minutes=30)
            await asyncio.to_thread(mail, "U-ACME\nT-now\n#-33700000001\n")
            await asyncio.to_thread(mail, f"U-ACME\nD-{later:%Y-%m-%dT%H:%M}\nT-later\n#-33700000002\n")
            await asyncio.sleep(3)
            offset.write_text("-1h\n")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(peer.received()) < 601:
                assert loop.time() < deadline, len(peer.received())
                await asyncio.sleep(0.2)
            dated = await scalar(dsn, "SELECT due_at - now() FROM messages WHERE recipient = '+33700000002'")
    finally:
        peer.stop()
    times = sorted(pdu["at"] / 1000 for pdu in peer.received() if pdu["destination"].startswith("336"))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 600
    # a limiter on the wall clock would send an hour's worth at once, or stop for an hour
    assert busiest_second(times) <= 50 + peer_jitter(50) and max(gaps) < 2.0, (busiest_second(times), max(gaps))
    assert "33700000001" in {pdu["destination"] for pdu in peer.received()}
    assert "33700000002" not in {pdu["destination"] for pdu in peer.received()}
    assert timedelta(minutes=25) < dated < timedelta(minutes=31)

