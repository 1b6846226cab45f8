"""Figures of the SMPP server (issue 20), printed; run by hand from the repository:

    PYTHONPATH=. .venv/bin/python -m bench.smpp_server [--messages 20000]

`ecosms-gw run` on a durable PostgreSQL (fsync on), its SMPP server on. The client is
node-smpp's, one transceiver bind with a window of 100 (at most 100 submits waiting for
their answer), sending short GSM messages to distinct numbers:
1. submit_sm accepted per second, from the first submit to the last submit_sm_resp (each
   answered once its message is committed), with nothing sent on (the daemon's only link
   serves other numbers): what the server takes;
2. end to end, with one link to node-smpp as the operator's SMSC (tps 10,000, window 100,
   receipts at once): from the first submit to the last receipt back at the client, every
   message through the SMSC and its receipt through the outbox, in messages per second,
   and the acceptance rate meanwhile (the same 2 CPUs also send and take receipts).
Each twice, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from bench.store import fresh_store
from ecosms_gw.core.accounts import Account, hash_secret
from tests.support.daemon import Daemon, environment
from tests.support.esme import node_client
from tests.support.net import free_port
from tests.support.postgres import server
from tests.support.smsc import Peer

PASSWORD = "bench-pw"


async def one_run(admin_dsn: str, folder: Path, run: int, count: int, end_to_end: bool) -> None:
    store, dsn = await fresh_store(admin_dsn, f"bench_smpp_{run}")
    await store.accounts.add(Account(id=None, code="B", international=True, smpp_password=hash_secret(PASSWORD)))
    await store.close()
    peer = Peer(folder, "--receipts")
    port = free_port()
    link = (f'host = "127.0.0.1"\nport = {peer.port}\ntps = 10000\nwindow = 100\n' if end_to_end
            else 'simulator = true\nroutes = ["999"]\n')
    config = folder / f"bench-{run}.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[smpp_server]\nlisten = "127.0.0.1:{port}"\n'
                      f'[[smsc]]\nname = "main"\n{link}')
    daemon = Daemon("--config", str(config), env=environment(ECOSMS_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
                                                             ECOSMS_LOG_LEVEL="warning"))
    try:
        await asyncio.sleep(3)  # bound to the SMSC, listening
        submits = [{"destination": f"336{n:08d}", "message": f"Bench message {n}"} for n in range(count)]
        lines = await node_client(port, {"submits": submits, "window": 100, "receipts": count if end_to_end else 0},
                                  folder,
                                  system_id="B", password=PASSWORD)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.finish(timeout=30)
        peer.stop()
    [summary] = [line for line in lines if "submitted" in line]
    refused = [line for line in lines if "status" in line]
    accepted = f"accepted {count / summary['answered_s']:,.0f}/s ({summary['answered_s']:.2f} s, {len(refused)} refused)"
    if end_to_end:
        print(f"end to end, run {run}: {count:,} submit_sm, {accepted}; with receipts back "
              f"{count / summary['receipts_s']:,.0f} msg/s ({summary['receipts_s']:.2f} s); "
              f"at the SMSC {len(peer.received()):,}")
    else:
        print(f"server alone, run {run}: {count:,} submit_sm, window 100: {accepted}")


async def main(arguments: argparse.Namespace) -> None:
    with server(durable=True) as (admin_dsn, _), tempfile.TemporaryDirectory(prefix="bench-smpp-") as folder:
        for run in (1, 2):
            await one_run(admin_dsn, Path(folder), run, arguments.messages, end_to_end=False)
            await one_run(admin_dsn, Path(folder), run + 10, arguments.messages, end_to_end=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))
