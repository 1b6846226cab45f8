"""Dispatch as operators run it: daemons killed and restarted, two daemons on one
database, routes with failover, cancel from the command line, expiry."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import smtplib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all
from ecosms_gw.store import Store
from ecosms_gw.store.mailings import Submission
from tests.support.daemon import COMMAND, daemon, environment, wait_settled, write_config
from tests.support.smsc import (
    Peer,
    all_settled,
    busiest_second,
    dispatcher_for,
    peer_jitter,
    queue_mailing,
    run_until,
    statuses,
)


def messages(count: int) -> list[str]:
    return ["U-ACME\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(count))]


@pytest.mark.parametrize("policy", ["unknown", "resend"])
@pytest.mark.parametrize("tps, count", [(100_000, 2000), (50, 300)])
async def test_daemon_killed_mid_run_then_restarted(store: Store, dsn: str, account: Account,
                                                    tmp_path: Path, policy: str, tps: int, count: int) -> None:
    """SIGKILL during a send, then a restart: only what was written to the SMSC without a
    stored answer is in doubt, at most the window (20) of messages. Everything else is sent
    exactly once."""
    peer = Peer(tmp_path)
    config = write_config(tmp_path, dsn, peer.port, tps=tps, in_doubt=policy)
    await queue_mailing(store, account, messages(count))
    first = daemon(config)
    try:
        while len(peer.received()) < count // 6:
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = daemon(config)
        try:
            await wait_settled(dsn)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        peer.stop()
    destinations = [pdu["destination"] for pdu in peer.received()]
    connection = await asyncpg.connect(dsn)
    rows = await connection.fetch("SELECT recipient, status, code FROM messages")
    await connection.close()
    in_doubt = {row["recipient"].lstrip("+") for row in rows if (row["status"], row["code"]) == ("no", "in_doubt")}
    everyone = {row["recipient"].lstrip("+") for row in rows}
    assert {row["status"] for row in rows} <= {"on", "no"}
    if policy == "unknown":
        assert len(destinations) == len(set(destinations))  # nobody gets it twice
        assert everyone == set(destinations) | in_doubt  # each is sent, or said in doubt
        assert len(in_doubt) <= 20
    else:
        assert set(destinations) == everyone and not in_doubt  # nothing lost
        assert len(destinations) - count <= 20  # the price: at most a window sent twice


async def test_two_daemons_one_database_one_peer(store: Store, dsn: str, account: Account,
                                                 tmp_path: Path) -> None:
    peer = Peer(tmp_path)
    config = write_config(tmp_path, dsn, peer.port, tps=200, in_doubt="unknown")
    await queue_mailing(store, account, messages(2000))
    first, second = daemon(config), daemon(config)
    try:
        await wait_settled(dsn)
    finally:
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            process.wait(20)
        peer.stop()
    arrivals = sorted(pdu["at"] / 1000 for pdu in peer.received())
    destinations = [pdu["destination"] for pdu in peer.received()]
    assert len(destinations) == len(set(destinations)) == 2000
    # one daemon owns the connection, so its TPS holds: two would send twice as fast
    assert busiest_second(arrivals) <= 200 + peer_jitter(200)


async def test_routes_prefer_the_specific_connection_and_fail_over(store: Store, dsn: str,
                                                                   account: Account, tmp_path: Path) -> None:
    french, anywhere = Peer(tmp_path), Peer(tmp_path)
    worker = await store.dispatch.register_worker()
    specific = dispatcher_for(french.port, store, name="fr", routes=("33",), worker=worker.key)
    general = dispatcher_for(anywhere.port, store, name="all", worker=worker.key)
    tasks = [asyncio.create_task(specific.run()), asyncio.create_task(general.run())]
    try:
        while "fr" not in general.cluster:  # routes come from the cluster's bound links
            await asyncio.sleep(0.05)
        await queue_mailing(store, account, ["U-ACME\nT-x\n#-+33600000001\n#-+44700000001"])
        await wait_settled(dsn)
        french.stop()  # the French route goes down: its messages fall back
        while "fr" in general.cluster:
            await asyncio.sleep(0.05)
        await queue_mailing(store, account, ["U-ACME\nT-y\n#-+33600000002"])
        await wait_settled(dsn)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        anywhere.stop()
        await worker.close()
    assert [pdu["destination"] for pdu in french.received()] == ["33600000001"]
    assert sorted(pdu["destination"] for pdu in anywhere.received()) == ["33600000002", "44700000001"]


async def test_two_daemons_with_different_links_route_across_the_cluster(
        store: Store, dsn: str, account: Account, tmp_path: Path) -> None:
    """Daemon A serves `*`, daemon B serves `33`, each on its own SMSC: the +33 numbers go
    through B while B is bound (A knows it from the database), and through A within 15 s
    of B being killed."""
    peer_a, peer_b = Peer(tmp_path), Peer(tmp_path)
    a = daemon(write_config(tmp_path, dsn, peer_a.port, tps=500, name="all", routes="*"))
    b = daemon(write_config(tmp_path, dsn, peer_b.port, tps=500, name="fr", routes="33"))
    connection = await asyncpg.connect(dsn)
    bound = "SELECT count(*) FROM links WHERE bound_since IS NOT NULL"
    try:
        while await connection.fetchval(bound) < 2:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # A's next look at the cluster
        shown = json.loads(subprocess.run([COMMAND, "status", "--json"], env=environment(ECOSMS_DATABASE_DSN=dsn),
                                          capture_output=True, text=True, timeout=60, check=True).stdout)
        assert sorted(daemon["pid"] for daemon in shown["daemons"]) == sorted([a.pid, b.pid])
        assert {link["name"]: (link["owner_pid"], link["routes"]) for link in shown["links"]} == {
            "all": (a.pid, ["*"]), "fr": (b.pid, ["33"])}
        text = subprocess.run([COMMAND, "status"], env=environment(ECOSMS_DATABASE_DSN=dsn),
                              capture_output=True, text=True, timeout=60, check=True).stdout
        assert f":{b.pid}" in text and "queue: 0 messages waiting" in text
        await queue_mailing(store, account, ["U-ACME\nT-x\n" + "".join(
            f"#-+{country}60000{n:04d}\n" for n in range(100) for country in (33, 44))])
        await wait_settled(dsn)
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        killed = asyncio.get_running_loop().time()
        await queue_mailing(store, account, ["U-ACME\nT-y\n#-+33700000001"])
        await wait_settled(dsn, timeout=15)
        took = asyncio.get_running_loop().time() - killed
    finally:
        await connection.close()
        a.send_signal(signal.SIGTERM)
        a.wait(20)
        for peer in (peer_a, peer_b):
            peer.stop()
    through_b = sorted(pdu["destination"] for pdu in peer_b.received())
    through_a = sorted(pdu["destination"] for pdu in peer_a.received())
    assert through_b == [f"3360000{n:04d}" for n in range(100)]
    assert through_a == sorted([f"4460000{n:04d}" for n in range(100)] + ["33700000001"])
    assert took < 15


async def test_per_account_rate_cap_and_sender_id(store: Store, dsn: str, tmp_path: Path) -> None:
    slow = await store.accounts.add(Account(id=None, code="SLOW", international=True, tps=5,
                                           sender_ids=("SLOWCO",)))
    peer = Peer(tmp_path)
    try:
        await queue_mailing(store, slow, ["U-SLOW\n" + "".join(f"T-m{n}\n#-336{n:08d}\n" for n in range(11))])
        dispatcher = dispatcher_for(peer.port, store, tps=1000)
        await run_until(dispatcher, all_settled(dsn))
    finally:
        peer.stop()
    received = peer.received()
    arrivals = sorted(pdu["at"] / 1000 for pdu in received)
    assert arrivals[-1] - arrivals[0] >= 1.9  # 11 messages at 5/s
    assert {(pdu["source"], pdu["source_ton"]) for pdu in received} == {("SLOWCO", 5)}


async def test_cancel_from_the_command_line(store: Store, dsn: str, account: Account) -> None:
    mailing = await queue_mailing(store, account, ["U-ACME\nD-2099-01-01\nT-x\n#-33600000001\n#-33600000002"])
    result = subprocess.run([COMMAND, "cancel", str(mailing)], env=environment(ECOSMS_DATABASE_DSN=dsn),
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"mailing {mailing} canceled: 2 messages canceled\n")
    again = subprocess.run([COMMAND, "cancel", str(mailing)], env=environment(ECOSMS_DATABASE_DSN=dsn),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "nothing left to cancel" in again.stderr
    missing = subprocess.run([COMMAND, "cancel", "999999"], env=environment(ECOSMS_DATABASE_DSN=dsn),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr == "ecosms-gw: no mailing 999999\n"
    assert {value for value in (await statuses(dsn)).values()} == {("canceled", "ko", "canceled")}


async def test_messages_waiting_past_the_maximum_age_expire(store: Store, dsn: str, account: Account) -> None:
    await queue_mailing(store, account, ["U-ACME\nT-x\n#-33600000001"])
    await queue_mailing(store, account, ["U-ACME\nT-y\n#-33600000002"])
    connection = await asyncpg.connect(dsn)
    # the first has been due for three days (its SMSC was down all that time)
    await connection.execute("UPDATE messages SET due_at = now() - interval '3 days' WHERE recipient = '+33600000001'")
    assert await store.dispatch.expire(timedelta(hours=48), timedelta(hours=48)) == (1, 0)
    rows = await connection.fetch("SELECT recipient, status, code FROM messages ORDER BY id")
    events = await connection.fetchval("SELECT count(*) FROM status_events WHERE queued")
    await connection.close()
    assert [tuple(row) for row in rows] == [("+33600000001", "ko", "expired"), ("+33600000002", "wait", None)]
    assert events == 1


async def test_a_date_in_the_past_means_now(store: Store, dsn: str, account: Account) -> None:
    """The vendor's examples are dated 2017: such a message is due at its acceptance, so the
    maximum age counts from then and it never expires at once."""
    old = datetime(2017, 8, 4, 9, 0, tzinfo=UTC)
    composition = compose(parse_all(["U-ACME\nD-2017-08-04T11:00\nT-x\n#-33600000001"]), AccountRules())
    assert composition.messages[0].send_at == old
    before = datetime.now(UTC)
    await store.mailings.enqueue(Submission(account.id, "smtp", None), composition, {})
    assert await store.dispatch.expire(timedelta(hours=1), timedelta(hours=48)) == (0, 0)
    connection = await asyncpg.connect(dsn)
    due_at = await connection.fetchval("SELECT due_at FROM messages")
    send_at = await connection.fetchval("SELECT send_at FROM mailings")
    await connection.close()
    assert due_at >= before and send_at == old  # sent at once; the date as written is kept


async def test_a_mail_dated_2017_is_sent_whole_by_the_daemon(store: Store, dsn: str, account: Account,
                                                            tmp_path: Path) -> None:
    """As a new user tried it: 2,000 recipients in a mail dated 2017, at 20 per second
    through the daemon (whose reaper expires what waited past the maximum age)."""
    await store.accounts.update(dataclasses.replace(account, senders=("ops@example.com",)))
    peer = Peer(tmp_path)
    config = write_config(tmp_path, dsn, peer.port, tps=20, in_doubt="unknown")
    env = environment(ECOSMS_DISPATCH_MAX_AGE_HOURS="1")
    process = subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host, port = env["ECOSMS_SMTP_LISTEN"].split(":")
    body = "U-ACME\nD-2017-08-04T11:00\nT-hello\n" + "".join(f"#-336{n:08d}\n" for n in range(2000))
    try:
        await wait_for_port(int(port))
        with smtplib.SMTP(host, int(port)) as client:
            client.sendmail("ops@example.com", ["sms@localhost"], f"Subject: x\n\n{body}".encode())
        await wait_settled(dsn, timeout=180)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        peer.stop()
    destinations = [pdu["destination"] for pdu in peer.received()]
    assert len(destinations) == len(set(destinations)) == 2000
    assert {status for _, status, _ in (await statuses(dsn)).values()} == {"on"}


async def wait_for_port(port: int, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert loop.time() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def test_a_standby_is_ready_and_takes_http(store: Store, dsn: str, tmp_path: Path) -> None:
    """Two daemons, one SMSC link: the one that does not own it is a standby, and still
    takes work (/health/ready is 200, so a load balancer keeps it); /health is 200 on both,
    since the link is bound by a daemon of the cluster. The owner killed, the standby
    takes the link over and sends within 15 s."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret("s3cret"), international=True))
    peer = Peer(tmp_path)
    config = write_config(tmp_path, dsn, peer.port, tps=100, in_doubt="unknown")
    envs = [environment(), environment()]
    processes = [subprocess.Popen([COMMAND, "run", "--config", str(config)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for env in envs]
    connection = await asyncpg.connect(dsn)
    try:
        owner = None
        while owner is None:
            owner = await connection.fetchval("SELECT w.pid FROM links l JOIN workers w ON w.key = l.owner "
                                              "WHERE l.bound_since IS NOT NULL")
            await asyncio.sleep(0.1)
        standby = envs[[process.pid for process in processes].index(owner) ^ 1]
        base = f"http://{standby['ECOSMS_HTTP_LISTEN']}"
        async with aiohttp.ClientSession() as session:
            await wait_for_port(int(standby["ECOSMS_HTTP_LISTEN"].rsplit(":", 1)[1]))
            for path in ("/health/ready", "/health"):
                async with session.get(base + path) as response:
                    assert response.status == 200, (path, await response.text())
            async with session.post(base + "/token", data={"grant_type": "client_credentials",
                                                           "client_id": "ACME", "client_secret": "s3cret"}) as response:
                token = (await response.json())["access_token"]
            async with session.post(base + "/rest/sms", headers={"Authorization": f"Bearer {token}"},
                                    json={"text": "hi", "contacts": [{"recipient": "+33600000001"}]}) as response:
                assert response.status == 201
        await wait_settled(dsn)
        owning = processes[[process.pid for process in processes].index(owner)]
        owning.send_signal(signal.SIGKILL)  # the standby takes the link over within 15 s
        owning.wait(10)
        killed = asyncio.get_running_loop().time()
        await store.mailings.enqueue(Submission((await store.accounts.get("ACME")).id, "http"),
                                     compose(parse_all(["U-ACME\nT-again\n#-33600000002"]), AccountRules()), {})
        await wait_settled(dsn, timeout=15)
        took = asyncio.get_running_loop().time() - killed
        new_owner = await connection.fetchval("SELECT w.pid FROM links l JOIN workers w ON w.key = l.owner "
                                              "WHERE l.bound_since IS NOT NULL")
    finally:
        await connection.close()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(20)
        peer.stop()
    assert [pdu["destination"] for pdu in peer.received()] == ["33600000001", "33600000002"]
    assert new_owner != owner and took < 15
