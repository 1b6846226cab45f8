"""Operator commands on the store: `migrate`, `account ...`, `queue`, `status`, `cancel`.

Each opens the configured database (starting the embedded one if that is the setting,
shared with a running daemon), applies pending migrations, does one thing, and says in
one line what went wrong when it cannot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ecosms_gw import retention
from ecosms_gw.config import Config
from ecosms_gw.core import gsm
from ecosms_gw.core.accounts import Account, InvalidAccount, hash_secret, validate
from ecosms_gw.errors import GatewayError
from ecosms_gw.store import Store, StoreConflict, StoreError
from ecosms_gw.store.database import DatabaseSetupError, database_dsn

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
SECRET_OPTIONS = ("smtp_password", "ftp_password", "api_secret", "smpp_password")
SMPP_PASSWORD_MAX = 8  # a bind's password field: 9 octets with its NUL (clients cut longer ones)


class Refused(GatewayError):
    """An operation refused, with the one line that says why."""


async def with_store(config: Config, action: Callable[[Store], Awaitable[int]],
                     *, migrate_first: bool = True) -> int:
    try:
        async with database_dsn(config) as dsn:
            store = await Store.open(dsn, max_connections=2)
            try:
                if migrate_first:
                    await store.migrate()
                return await action(store)
            finally:
                await store.close()
    except (Refused, InvalidAccount, StoreError, DatabaseSetupError) as error:
        print(f"ecosms-gw: {error}", file=sys.stderr)
        return EXIT_REFUSED


def add_account_options(parser: argparse.ArgumentParser) -> None:
    """The options of `account add` and `account set`; unset options are None."""
    parser.add_argument("--name")
    parser.add_argument("--sender", action="append", dest="senders", metavar="EMAIL_OR_@DOMAIN",
                        help="allowed mail sender (repeatable; replaces the list on set)")
    for option in ("--smtp-password", "--ftp-password", "--api-secret", "--smpp-password"):
        parser.add_argument(option, metavar="SECRET", help="stored hashed; - reads it from stdin")
    parser.add_argument("--country", help="default country calling code, e.g. 33")
    parser.add_argument("--timezone", help="IANA zone of dates without offset")
    parser.add_argument("--international", action=argparse.BooleanOptionalAction, default=None,
                        help="may send abroad (off by default)")
    parser.add_argument("--mode", choices=tuple(gsm.MODES),
                        help="text: GSM with transliteration; ucs2: Unicode; auto: GSM when nothing is deleted")
    parser.add_argument("--sender-id", action="append", dest="sender_ids", metavar="TPOA",
                        help="<= 11 alphanumerics or a number (repeatable, the first is the default; "
                             "replaces the list on set; '' empties it)")
    parser.add_argument("--reply-email", metavar="ADDR")
    parser.add_argument("--ping-url", metavar="URL")
    parser.add_argument("--max-messages", type=int, metavar="N")
    parser.add_argument("--tps", type=int, metavar="N", help="per-account cap of SMS per second")
    parser.add_argument("--priority", type=int, metavar="0-3", help="of its messages by default (1; 3 the most urgent)")
    parser.add_argument("--batch-volume", type=int, metavar="N",
                        help="its mails' and files' mailings go N messages at a time (with --batch-delay-min)")
    parser.add_argument("--batch-delay-min", type=int, metavar="M", help="minutes between those packets")
    parser.add_argument("--quiet-hours", metavar="HH:MM-HH:MM",
                        help="nothing is sent then, in the recipient's local time (e.g. 21:00-08:00; '' for none)")
    parser.add_argument("--weight", type=int, metavar="N",
                        help="its share of a link among the accounts of one priority (1 to 1000; default 1)")
    parser.add_argument("--webhook-url", metavar="URL", help="its events are POSTed here, signed")
    parser.add_argument("--webhook-secret", metavar="SECRET", help="the key of their signature; - reads it from stdin")
    parser.add_argument("--validity-hours", type=int, metavar="N",
                        help="how long the SMSC may try its messages (1 to 72; default: the SMSC's)")
    parser.add_argument("--submission-report", choices=("off", "sender", "reply-email"),
                        help="e-mail a report of each accepted mail to its sender or to --reply-email")


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    names = ("name", "senders", *SECRET_OPTIONS, "country", "timezone", "international", "mode",
             "sender_ids", "reply_email", "ping_url", "max_messages", "tps", "submission_report", "priority",
             "validity_hours", "webhook_url", "webhook_secret", "weight", "batch_volume", "batch_delay_min",
             "quiet_hours")
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if "senders" in changes:
        changes["senders"] = tuple(dict.fromkeys(s.strip().lower() for s in changes["senders"]))
    if "sender_ids" in changes:
        changes["sender_ids"] = tuple(dict.fromkeys(s.strip() for s in changes["sender_ids"] if s.strip()))
    if changes.get("quiet_hours") == "":
        changes["quiet_hours"] = None
    for name in (*SECRET_OPTIONS, "webhook_secret"):
        if name in changes:
            secret = sys.stdin.readline().rstrip("\r\n") if changes[name] == "-" else changes[name]
            if not secret:
                raise Refused(f"--{name.replace('_', '-')} is empty")
            changes[name] = secret
    if len(changes.get("smpp_password", "")) > SMPP_PASSWORD_MAX:
        raise Refused(f"--smpp-password: at most {SMPP_PASSWORD_MAX} characters, as SMPP 3.4 carries no more")
    return changes


def _hashed(changes: dict[str, Any]) -> dict[str, Any]:
    return {name: hash_secret(value) if name in SECRET_OPTIONS else value
            for name, value in changes.items()}


async def account_add(store: Store, args: argparse.Namespace) -> int:
    changes = _changes(args)
    validate(Account(id=None, code=args.code, **changes))
    try:
        added = await store.accounts.add(Account(id=None, code=args.code, **_hashed(changes)))
    except StoreConflict:
        raise Refused(f"account {args.code} exists already") from None
    print(f"account {added.code} added")
    return EXIT_OK


async def account_set(store: Store, args: argparse.Namespace) -> int:
    account = await existing_account(store, args.code)
    changes = _changes(args)
    if not changes:
        raise Refused("nothing to change: give at least one option")
    validate(dataclasses.replace(account, **changes))
    await store.accounts.update(dataclasses.replace(account, **_hashed(changes)))
    print(f"account {account.code} updated: {', '.join(sorted(changes))}")
    return EXIT_OK


async def account_remove(store: Store, args: argparse.Namespace) -> int:
    account = await existing_account(store, args.code)
    try:
        await store.accounts.remove(account)
    except StoreConflict as conflict:
        raise Refused(f"{conflict}: accounts that sent keep their history") from None
    print(f"account {account.code} removed")
    return EXIT_OK


async def account_show(store: Store, args: argparse.Namespace) -> int:
    account = await existing_account(store, args.code)
    for name, value in _public(account).items():
        print(f"{name + ':':<16}{value}")
    return EXIT_OK


async def account_list(store: Store, args: argparse.Namespace) -> int:
    rows = await store.accounts.all()
    print(f"{'code':<16} {'mailings':>8}  {'mode':<5} {'intl':<4}  {'senders':<30} name")
    for account, mailings in rows:
        print(f"{account.code:<16} {mailings:>8}  {account.mode:<5} {'yes' if account.international else 'no':<4}  "
              f"{','.join(account.senders) or '-':<30} {account.name}")
    return EXIT_OK


def _public(account: Account) -> dict[str, Any]:
    """Everything about an account but its secrets, which only say whether they are set."""
    shown = {f.name: getattr(account, f.name) for f in dataclasses.fields(account) if f.name != "id"}
    for name in (*SECRET_OPTIONS, "webhook_secret"):
        shown[name] = "set" if shown[name] else "not set"
    shown["senders"] = ", ".join(account.senders) or "-"
    shown["sender_ids"] = ", ".join(account.sender_ids) or "-"
    return {name: "-" if value is None else value for name, value in shown.items()}


async def existing_account(store: Store, code: str) -> Account:
    account = await store.accounts.get(code)
    if account is None:
        raise Refused(f"no account {code}")
    return account


async def queue(store: Store, args: argparse.Namespace) -> int:
    rows = await store.reads.waiting(args.account)
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2,
                         default=lambda value: value.isoformat() if isinstance(value, datetime) else str(value)))
        return EXIT_OK
    if not rows:
        print("queue empty")
        return EXIT_OK
    print(f"{'mailing':>8} {'account':<12} {'source':<6} {'pri':>3} {'created (UTC)':<17} {'wait':>6} {'on':>6} "
          f"{'done':>6} {'held':>5}  {'next attempt (UTC)':<17}  last error")
    for row in rows:
        done = row.ok + row.ko + row.rep + row.no
        print(f"{row.mailing_id:>8} {row.account:<12} {row.source:<6} {_shown(row.priority):>3} "
              f"{_when(row.created_at):<17} {row.wait:>6} {row.on:>6} {done:>6} {row.paused + row.held:>5}  "
              f"{'paused' if row.mailing_status == 'paused' else _when(row.next_attempt):<17}  "
              f"{row.last_error or ''}")
    by_queue: dict[tuple[str, int | None], int] = {}
    for row in rows:
        by_queue[row.account, row.priority] = by_queue.get((row.account, row.priority), 0) + row.wait
    for (account, priority), count in sorted(by_queue.items(), key=lambda item: (-(item[0][1] or 0), item[0][0])):
        print(f"-- {account} priority {_shown(priority)}: {count} waiting")
    print(f"-- {len(rows)} mailings, {sum(row.wait for row in rows)} messages waiting, "
          f"{sum(row.paused for row in rows)} paused, {sum(row.held for row in rows)} held by quiet hours")
    return EXIT_OK


async def status(store: Store, args: argparse.Namespace) -> int:
    """The cluster at a glance: daemons, SMSC links, the queue, what waits to be notified."""
    cluster = await store.cluster()
    if args.json:
        print(json.dumps(dataclasses.asdict(cluster), indent=2,
                         default=lambda value: value.isoformat() if isinstance(value, datetime) else str(value)))
        return EXIT_OK
    print(f"{'daemon':<20} {'host':<20} {'pid':>7}  {'started (UTC)':<17}  last heartbeat")
    for daemon in cluster.daemons:
        print(f"{daemon.key:<20} {daemon.host:<20} {daemon.pid:>7}  {_when(daemon.started_at):<17}  "
              f"{daemon.heartbeat_at:%Y-%m-%d %H:%M:%S}")
    print()
    print(f"{'link':<12} {'daemon':<26} {'bound since (UTC)':<17} {'tps now/conf':>14} {'window':>9} {'in doubt':>9}")
    for link in cluster.links:
        owner = f"{link.owner_host}:{link.owner_pid}" if link.bound_since else "- (not bound)"
        print(f"{link.name:<12} {owner:<26} {_when(link.bound_since):<17} "
              f"{f'{link.tps_now:.0f}/{link.tps}':>14} {f'{link.in_flight}/{link.window_size}':>9} {link.in_doubt:>9}")
    print()
    print(f"queue: {cluster.queued} messages waiting, oldest due {cluster.oldest_due_s:.0f} s ago")
    print(f"outgoing mail: {cluster.mail_backlog} waiting, {cluster.mail_failed} given up; "
          f"ping calls: {cluster.ping_backlog} waiting; webhook events: {cluster.webhook_backlog} waiting")
    for failing in cluster.webhook_failing:
        print(f"webhook of {failing.account} failing: {failing.attempts} failed attempts, "
              f"{failing.waiting} events waiting since {_when(failing.oldest)}, "
              f"next {_when(failing.next_attempt)}: {failing.last_error}")
    return EXIT_OK


async def purge(store: Store, args: argparse.Namespace, settings: Config) -> int:
    removed = await retention.purge(store, settings, dry_run=args.dry_run)
    print(("would remove " if args.dry_run else "removed ") + removed.line())
    return EXIT_OK


def _shown(value: int | None) -> str:
    return "-" if value is None else str(value)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


async def migrate(store: Store, args: argparse.Namespace) -> int:
    applied = await store.migrate()
    print(f"applied migrations {', '.join(map(str, applied))}" if applied else "schema up to date")
    return EXIT_OK


DONE = {"cancel": "{status}: {messages} messages canceled", "pause": "paused: {messages} messages held",
        "resume": "resumed: {messages} messages queued again"}


async def mailing_action(store: Store, args: argparse.Namespace) -> int:
    """`cancel`, `pause` or `resume` MAILING_ID."""
    await _mailing(store, args.mailing_id)
    try:
        acted = await store.mailings.act(args.mailing_id, args.command)
    except StoreConflict as conflict:
        raise Refused(str(conflict)) from None
    print(f"mailing {args.mailing_id} " + DONE[args.command].format(status=acted.status, messages=acted.messages))
    return EXIT_OK


async def _mailing(store: Store, mailing_id: int) -> None:
    if await store.mailings.owner(mailing_id) is None:
        raise Refused(f"no mailing {mailing_id}")
