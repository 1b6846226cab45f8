"""Commands on lists of numbers: `numbers check` (by an account's rules, or the
defaults) and `optout` (an account's opt-out list, its changes and their history)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from ecosms_gw.admin import EXIT_OK, EXIT_USAGE, Refused, existing_account
from ecosms_gw.config import Config
from ecosms_gw.core import numbers
from ecosms_gw.core.cells import cell
from ecosms_gw.store import Store
from ecosms_gw.store.reads import Page


async def numbers_check(store: Store, args: argparse.Namespace, settings: Config) -> int:
    """`numbers check --account CODE`: by that account's rules and opt-out list."""
    account = await existing_account(store, args.account)
    assert account.id is not None, "accounts read from the store have an id"
    rules = account.rules(settings.defaults)
    return check_numbers(args, rules.country, rules.international, await store.accounts.opt_outs(account.id))


def check_numbers(args: argparse.Namespace, country: str, international: bool,
                  opted_out: frozenset[str] = frozenset()) -> int:
    """One line per number of a file (or stdin), streamed: a file of 100,000 numbers is
    never held whole; on a terminal, stderr shows how far it got."""
    try:
        stream = sys.stdin if args.path == "-" else open(args.path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as error:
        print(f"ecosms-gw numbers check: cannot read {args.path}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    progress, count = sys.stderr.isatty(), 0
    with stream:
        try:
            for line in stream:
                if not line.strip():
                    continue
                checked = numbers.check(line.strip(), country, international, opted_out)
                sys.stdout.write((json.dumps(checked.document(), ensure_ascii=False) if args.json
                                  else _shown(checked)) + "\n")
                count += 1
                if progress and count % 1000 == 0:
                    print(f"\r{count:,} numbers checked", end="", file=sys.stderr, flush=True)
        except BrokenPipeError:  # `| head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
    if progress:
        print(f"\r{count:,} numbers checked", file=sys.stderr)
    return EXIT_OK


def _shown(checked: numbers.Checked) -> str:
    return (f"{checked.number:<20} {'valid' if checked.valid else 'invalid':<7} {checked.e164 or '-':<16} "
            f"{checked.country or '-':<3} {checked.type:<20} {'opted-out' if checked.opted_out else '-':<9} "
            f"{checked.reason or 'sent'}")


async def optout(store: Store, args: argparse.Namespace, settings: Config) -> int:
    """`optout list|add|remove|import|export|history --account CODE [NUMBER...|FILE]`."""
    account = await existing_account(store, args.account)
    assert account.id is not None, "accounts read from the store have an id"
    if args.action in ("list", "export"):
        listing = await store.optouts.list(account.id, None, None, None, Page(limit=10**9), "UTC")
        rows = [(row["number"], row["date"], row["reason"]) for row in json.loads(listing.items)]
        if args.action == "export":  # CSV, as import reads it
            csv.writer(sys.stdout, lineterminator="\n").writerows(
                [("number", "date", "reason"), *((number, date, cell(reason)) for number, date, reason in rows)])
        for number, date, reason in rows if args.action == "list" else ():
            print(f"{number:<16} {date} UTC  {reason}")
        return EXIT_OK
    if not args.items:
        raise Refused(f"optout {args.action}: give {'files' if args.action == 'import' else 'numbers'}")
    country = account.rules(settings.defaults).country
    raws = _numbers_in(args.items) if args.action == "import" else args.items
    found, bad = numbers.e164_all(raws, country)
    if bad:
        raise Refused(f"not phone numbers: {', '.join(bad[:10])}")
    if args.action == "history":
        changes = await store.optouts.history(account.id, found, "UTC")
        for number in found:
            for change in changes.get(number, []):
                print(f"{number:<16} {change.date} UTC  {'out' if change.opted_out else 'in ':<3}  {change.source}")
        return EXIT_OK
    if args.action == "remove":
        changed = await store.optouts.remove(account.id, found, "cli")
    else:
        source = "import" if args.action == "import" else "cli"
        changed = await store.optouts.add(account.id, found, source, source)
    print(f"{changed} of {len(found)} numbers {'back in' if args.action == 'remove' else 'opted out'}")
    return EXIT_OK


def _numbers_in(paths: list[str]) -> list[str]:
    """The numbers of CSV files (the first column; a header line is skipped) or plain lists."""
    found: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig", errors="replace", newline="") as stream:
                found += numbers.listed(stream)
        except OSError as error:
            raise Refused(f"cannot read {path}: {error.strerror}") from None
    return found
