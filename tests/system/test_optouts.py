"""Opt-out lists managed by people and programs (issue 17): by the API, the command line
and replies, each change in the number's history with its source."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace

from ecosms_gw.config import Config, RepliesConfig, SmscConfig
from ecosms_gw.config_values import OptOutScope
from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.smpp.delivery import Deliveries
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client
from tests.support.daemon import COMMAND, environment
from tests.support.smsc import queue_mailing


async def dropped(client: Client) -> list[tuple[str, str]]:
    status, created = await client.call("POST", "/rest/mailing", json={
        "text": "Sale", "contacts": [{"recipient": "0612345678"}, {"recipient": "+33612345679"}]})
    assert status == 201, created
    return [(item["recipient"], item["reason"]) for item in created["dropped"]]


async def history(client: Client, *numbers: str) -> list[tuple[str, bool, str]]:
    """The numbers' opt-out history as the `number` resource shows it."""
    status, read = await client.call("GET", "/rest/number", params={
        "number": ",".join(numbers), "properties": "e164,history"})
    assert status == 200, read
    assert all(len(change["date"]) == 19 for item in read["list"] for change in item["history"])
    return [(item["e164"], change["optedOut"], change["source"]) for item in read["list"] for change in item["history"]]


async def test_an_opt_out_added_and_removed_by_the_api(client: Client) -> None:
    added = await client.call("POST", "/rest/optout", json={"number": ["06 12 34 56 78", "+33612345670"]})
    await asyncio.sleep(1.1)  # a daemon's copy of the list is at most 1 s old
    after_add = await dropped(client)
    _, listed = await client.call("GET", "/rest/optout?number=%2B33612345678&properties=number,reason")
    _, exported = await client.call("GET", "/rest/optout.csv?properties=number")
    removed = await client.call("DELETE", "/rest/optout?number=0612345678")
    await asyncio.sleep(1.1)
    after_remove = await dropped(client)
    refused = await client.call("POST", "/rest/optout", json={"number": "12"})
    assert added == (201, {"count": 2})
    assert after_add == [("+33612345678", "opted_out")]
    assert listed["list"] == [{"number": "+33612345678", "reason": "api"}]
    assert exported.splitlines()[1:] == ["+33612345670", "+33612345678"]
    assert removed == (200, {"count": 1})
    assert after_remove == []
    assert refused == (400, {"status": 400, "message": "number: not phone numbers: 12"})
    assert await history(client, "+33612345670", "0612345678", "+33612345679") == [
        ("+33612345670", True, "api"), ("+33612345678", True, "api"), ("+33612345678", False, "api")]


async def test_stop_then_start_replies_take_a_number_out_and_back_in(store: Store) -> None:
    account = await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME",)))
    await queue_mailing(store, account, ["U-ACME\nT-Your order is ready\n#-33600000001"])
    [message] = await store.dispatch.claim(10, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[message.id])
    await store.dispatch.record_submissions("main", [(message.id, 1, "a")], [message.id], [])
    on_deliver = Deliveries(store).handler(SmscConfig(name="main"))
    assert account.id is not None
    opted = []
    for word in ("Stop", "start"):
        reply = SimpleNamespace(esm_class=0, source_addr=b"33600000001", destination_addr=b"ACME", data_coding=0,
                                short_message=word.encode())
        assert await on_deliver(reply) == 0
        opted.append(await store.accounts.opt_outs(account.id))
    assert opted == [{"+33600000001"}, set()]
    changes = await store.optouts.history(account.id, ["+33600000001"], "UTC")
    assert [(change.opted_out, change.source) for change in changes["+33600000001"]] == [(True, "reply"), (False, "reply")]


async def test_export_after_import_gives_the_same_list(dsn: str, store: Store, tmp_path: Path) -> None:
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET)))
    listed = tmp_path / "stop-list.csv"
    listed.write_text("number,name\n+33612345678,Jean\n0612345679,Ann\n06 12 34 56 79,Ann again\n+447700900123,Bob\n")
    env = environment(ECOSMS_DATABASE_DSN=dsn)

    def ecosms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COMMAND, "optout", *args, "--account", "ACME"], env=env, capture_output=True,
                              text=True, timeout=60)

    imported = ecosms("import", str(listed))
    exported = ecosms("export")
    (tmp_path / "again.csv").write_text(exported.stdout)
    again = ecosms("import", str(tmp_path / "again.csv"))
    removed = ecosms("remove", "+447700900123")
    shown = ecosms("list")
    changes = ecosms("history", "+447700900123", "0612345679")
    assert imported.stdout == "3 of 3 numbers opted out\n", imported.stderr
    assert [line.split(",")[0] for line in exported.stdout.splitlines()] == [
        "number", "+33612345678", "+33612345679", "+447700900123"]
    assert again.stdout == "0 of 3 numbers opted out\n"
    assert removed.stdout == "1 of 1 numbers back in\n"
    assert [line.split()[0] for line in shown.stdout.splitlines()] == ["+33612345678", "+33612345679"]
    assert [line.split()[:1] + line.split()[4:] for line in changes.stdout.splitlines()] == [
        ["+33612345679", "out", "import"], ["+447700900123", "out", "import"], ["+447700900123", "in", "cli"]]


async def test_in_global_scope_a_stop_stops_every_account(store: Store, dsn: str) -> None:
    acme = await store.accounts.add(Account(id=None, code="ACME", international=True, sender_ids=("ACME",)))
    other = await store.accounts.add(Account(id=None, code="OTHER", international=True))
    await queue_mailing(store, acme, ["U-ACME\nT-Your order is ready\n#-33600000001"])
    [message] = await store.dispatch.claim(10, 1)
    await store.dispatch.record_submissions("main", [], [], [], mark=[message.id])
    await store.dispatch.record_submissions("main", [(message.id, 1, "a")], [message.id], [])
    config = Config(replies=RepliesConfig(optout_scope=OptOutScope.GLOBAL))
    on_deliver = Deliveries(store, config).handler(SmscConfig(name="main"))
    assert acme.id is not None and other.id is not None
    seen = []
    for word in ("STOP", "START"):
        assert await on_deliver(SimpleNamespace(esm_class=0, source_addr=b"33600000001", destination_addr=b"ACME",
                                                data_coding=0, short_message=word.encode())) == 0
        seen.append((await store.accounts.opt_outs(acme.id), await store.accounts.opt_outs(other.id)))
    assert seen == [({"+33600000001"}, {"+33600000001"}), (set(), set())]


async def test_a_csv_list_imported_by_the_api_comes_back_as_csv(client: Client) -> None:
    imported = await client.call("POST", "/rest/optout.csv", data="number,name\n06 12 34 56 78,Jean\n+447700900123,Bob\n",
                                 headers={"Content-Type": "text/csv"})
    _, exported = await client.call("GET", "/rest/optout.csv?properties=number,reason")
    assert imported[0] == 201 and "2" in imported[1]
    assert exported.splitlines()[1:] == ["+33612345678,import", "+447700900123,import"]
    assert await history(client, "+33612345678", "+447700900123") == [
        ("+33612345678", True, "import"), ("+447700900123", True, "import")]
