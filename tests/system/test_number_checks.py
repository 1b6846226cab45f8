"""Number checking (issue 17): the `number` resource and `ecosms-gw numbers check` say what
phonenumbers says of each number, and what a mailing to it would do."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from pathlib import Path

import asyncpg
import phonenumbers
from phonenumbers import PhoneNumberType

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client
from tests.support.daemon import COMMAND, environment
from tests.support.samples import mixed_numbers

TYPES = {PhoneNumberType.MOBILE: "mobile", PhoneNumberType.FIXED_LINE: "fixed_line",
         PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile", PhoneNumberType.VOIP: "voip",
         PhoneNumberType.TOLL_FREE: "toll_free", PhoneNumberType.PREMIUM_RATE: "premium_rate"}


async def test_a_thousand_numbers_checked_as_phonenumbers_and_a_mailing_see_them(client: Client,
                                                                                 store: Store) -> None:
    numbers = mixed_numbers(1000)
    account = await store.accounts.get("ACME")
    assert account is not None
    await store.accounts.update(dataclasses.replace(account, international=False))
    await asyncio.sleep(1.1)  # the daemon's copy of the account is at most 1 s old
    status, checked = await client.call("POST", "/rest/number", json={"action": "read", "number": numbers})
    assert status == 200 and checked["size"] == 1000
    sent: dict[int, str | None] = {}
    for start in range(0, 1000, 200):
        contacts = [{"recipient": number} for number in numbers[start:start + 200]]
        status, created = await client.call("POST", "/rest/mailing", json={"text": "x", "contacts": contacts})
        dropped = {item["line"]: item["reason"] for item in created.get("dropped", [])} if status == 201 else {}
        for line in range(1, len(contacts) + 1):
            sent[start + line - 1] = dropped.get(line) if status == 201 else "no_messages"
    for index, (number, item) in enumerate(zip(numbers, checked["list"], strict=True)):
        assert item["number"] == number
        if item["e164"] is not None:
            parsed = phonenumbers.parse(item["e164"])
            assert item["valid"] == phonenumbers.is_valid_number(parsed), number
            assert item["type"] == TYPES.get(phonenumbers.number_type(parsed), "unknown"), number
        if sent[index] != "no_messages":  # a whole batch refused says nothing of each number
            assert item["reason"] == (None if sent[index] == "duplicate" else sent[index]), number
    assert {item["type"] for item in checked["list"]} >= {"mobile", "fixed_line", "premium_rate", "toll_free",
                                                          "fixed_line_or_mobile", "unknown"}


async def test_numbers_check_on_the_command_line_by_an_accounts_rules(dsn: str, store: Store,
                                                                       tmp_path: Path) -> None:
    account = await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET)))
    listed = tmp_path / "numbers.txt"
    listed.write_text("0612345678\n+442071838750\n\n0699999999\nnot a number\n")
    connection = await asyncpg.connect(dsn)
    await connection.execute("INSERT INTO opt_outs (account_id, recipient, reason) VALUES ($1, $2, 'test')",
                             account.id, "+33699999999")
    await connection.close()
    env = environment(ECOSMS_DATABASE_DSN=dsn)
    by_account = subprocess.run([COMMAND, "numbers", "check", "--account", "ACME", "--json", str(listed)],
                                env=env, capture_output=True, text=True, timeout=60)
    anyone = subprocess.run([COMMAND, "numbers", "check", str(listed)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert by_account.returncode == 0, by_account.stderr
    lines = [json.loads(line) for line in by_account.stdout.splitlines()]
    assert [(line["e164"], line["type"], line["reason"]) for line in lines] == [
        ("+33612345678", "mobile", None), ("+442071838750", "fixed_line", "international_not_allowed"),
        ("+33699999999", "mobile", "opted_out"), (None, "unknown", "invalid_number")]
    assert anyone.returncode == 0 and len(anyone.stdout.splitlines()) == 4
    assert anyone.stdout.splitlines()[1].split()[-1] == "sent"  # without an account, international is allowed
