"""The `ecosms-gw` command: exit 0 on success, 1 on a refused operation, 2 on usage errors."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import BinaryIO
from zoneinfo import ZoneInfo

from ecosms_gw import admin, config, daemon, lists, logs
from ecosms_gw.config_values import LogFormat, LogLevel, country_code, time_zone
from ecosms_gw.core import gsm, report
from ecosms_gw.core.compose import AccountRules
from ecosms_gw.core.mail2sms import Rejected
from ecosms_gw.smpp import simulator

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _argument(parse: Callable[[str], str]) -> Callable[[str], str]:
    """A value checked by `parse`, its refusal in argparse's words."""
    def checked(value: str) -> str:
        try:
            return parse(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{value!r}: {error}") from None
    return checked


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecosms-gw", description="Self-hosted SMS gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(commands)
    run_parser = commands.add_parser("run", help="the daemon: SMTP, FTP, HTTP, dispatcher")
    run_parser.add_argument("--config", help="configuration file")
    run_parser.set_defaults(handler=_run)
    _add_store_commands(commands)
    _add_simulator(commands)
    _add_account(commands)
    return parser





def _add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check_parser = commands.add_parser(
        "check", help="show what a body or .eml would send, without sending or storing")
    check_parser.add_argument("path", metavar="PATH", help="body file or .eml; - for stdin")
    check_parser.add_argument("--json", action="store_true", help="print the JSON report")
    check_parser.add_argument("--config", help="configuration file (defaults come from it)")
    check_parser.add_argument("--country", type=_argument(country_code), help="default country calling code")
    check_parser.add_argument("--timezone", type=_argument(time_zone), help="IANA zone for dates without offset")
    check_parser.add_argument("--mode", choices=tuple(gsm.MODES), default="text",
                              help="text: GSM 03.38 with transliteration (default); ucs2: Unicode; "
                                   "auto: GSM when nothing would be deleted, else UCS-2")
    check_parser.add_argument("--max-messages", type=_positive, help="cap of messages per file")
    check_parser.add_argument("--no-international", action="store_true",
                              help="only numbers of the default country")
    check_parser.set_defaults(handler=_check)


def _add_store_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate_parser = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate_parser.add_argument("--config", help="configuration file")
    migrate_parser.set_defaults(handler=_store_command(admin.migrate, migrate_first=False))

    queue_parser = commands.add_parser("queue", help="what waits, per mailing (like mailq)")
    queue_parser.add_argument("--config", help="configuration file")
    queue_parser.add_argument("--json", action="store_true")
    queue_parser.add_argument("--account", metavar="CODE")
    queue_parser.set_defaults(handler=_store_command(admin.queue))

    status_parser = commands.add_parser("status", help="the cluster: daemons, SMSC links, queue, backlogs")
    status_parser.add_argument("--config", help="configuration file")
    status_parser.add_argument("--json", action="store_true")
    status_parser.set_defaults(handler=_store_command(admin.status))

    purge_parser = commands.add_parser("purge", help="apply the retention horizon now; says what it removed")
    purge_parser.add_argument("--config", help="configuration file")
    purge_parser.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")
    purge_parser.set_defaults(handler=_store_command(admin.purge, with_settings=True))

    numbers_parser = commands.add_parser("numbers", help="check phone numbers")
    numbers_commands = numbers_parser.add_subparsers(dest="numbers_command", required=True, metavar="ACTION")
    check_numbers = numbers_commands.add_parser(
        "check", help="one line per number: valid, E.164, country, type, opted out, why a mailing would leave it out")
    check_numbers.add_argument("path", metavar="FILE", help="one number a line; - for stdin")
    check_numbers.add_argument("--account", metavar="CODE", help="its rules and opt-out list (else the defaults, "
                                                                 "international numbers allowed)")
    check_numbers.add_argument("--json", action="store_true", help="one JSON object a line")
    check_numbers.add_argument("--config", help="configuration file")
    check_numbers.set_defaults(handler=_numbers_check)

    optout_parser = commands.add_parser("optout", help="an account's opt-out list")
    optout_parser.add_argument("action", choices=("list", "add", "remove", "import", "export", "history"))
    optout_parser.add_argument("items", nargs="*", metavar="NUMBER|FILE",
                               help="numbers (add, remove, history) or CSV files, the number first (import)")
    optout_parser.add_argument("--account", metavar="CODE", required=True)
    optout_parser.add_argument("--config", help="configuration file")
    optout_parser.set_defaults(handler=_store_command(lists.optout, with_settings=True))

    for name, summary in (("cancel", "cancel what is not yet sent of a mailing"),
                          ("pause", "stop handing a mailing's messages to the SMSC"),
                          ("resume", "hand a paused mailing's messages to the SMSC again")):
        mailing_parser = commands.add_parser(name, help=summary)
        mailing_parser.add_argument("mailing_id", type=int, metavar="MAILING_ID")
        mailing_parser.add_argument("--config", help="configuration file")
        mailing_parser.set_defaults(handler=_store_command(admin.mailing_action))


def _add_simulator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim_parser = commands.add_parser("smsc-sim", help="the built-in SMSC simulator")
    sim_parser.add_argument("--port", type=int, default=2775)
    sim_parser.add_argument("--dlr-delay", type=float, default=1.0, metavar="S",
                            help="seconds before each delivery receipt (negative: none)")
    for ratio, meaning in (("fail", "receipts saying UNDELIV"),
                           ("throttle", "submit_sm answered ESME_RTHROTTLED"),
                           ("nack", "submit_sm answered with generic_nack"),
                           ("reply", "recipients replying with an MO message")):
        sim_parser.add_argument(f"--{ratio}-ratio", type=float, default=0.0, metavar="R",
                                help=f"share of {meaning} (0 to 1)")
    sim_parser.add_argument("--verbose", action="store_true", help="print every submit_sm")
    sim_parser.set_defaults(handler=_smsc_sim)


def _add_account(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account_parser = commands.add_parser("account", help="manage accounts")
    account_commands = account_parser.add_subparsers(dest="account_command", required=True,
                                                     metavar="ACTION")
    for action, needs_code, takes_options, help_text in (
            ("add", True, True, "create an account"), ("list", False, False, "list accounts"),
            ("show", True, False, "show an account (secrets only as set/not set)"),
            ("set", True, True, "change options of an account"),
            ("remove", True, False, "remove an account that never sent")):
        sub = account_commands.add_parser(action, help=help_text)
        sub.add_argument("--config", help="configuration file")
        if needs_code:
            sub.add_argument("code", metavar="CODE")
        if takes_options:
            admin.add_account_options(sub)
        sub.set_defaults(handler=_store_command(getattr(admin, f"account_{action}")))


Handler = Callable[[argparse.Namespace, config.Config], int]


def _store_command(action: Callable[..., Awaitable[int]], *, migrate_first: bool = True,
                   with_settings: bool = False) -> Handler:
    """A handler running `action(store, args)` (and the configuration, `with_settings`)
    on the configured database."""
    def handler(args: argparse.Namespace, settings: config.Config) -> int:
        logs.configure(config.LogConfig(LogFormat.CONSOLE, LogLevel.ERROR), stream=sys.stderr)
        extra = (settings,) if with_settings else ()
        return asyncio.run(admin.with_store(settings, lambda store: action(store, args, *extra),
                                            migrate_first=migrate_first))
    return handler


def _numbers_check(args: argparse.Namespace, settings: config.Config) -> int:
    if args.account:
        return _store_command(lists.numbers_check, with_settings=True)(args, settings)
    return lists.check_numbers(args, settings.defaults.country, True)


def _smsc_sim(args: argparse.Namespace, settings: config.Config) -> int:
    logs.configure(settings.log)
    behaviour = simulator.Behaviour(args.dlr_delay, args.fail_ratio, args.throttle_ratio,
                                   args.nack_ratio, args.reply_ratio, args.verbose)
    try:
        asyncio.run(simulator.serve(args.port, behaviour))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _run(args: argparse.Namespace, settings: config.Config) -> int:
    logs.configure(settings.log)
    return asyncio.run(daemon.serve(settings))


def _check(args: argparse.Namespace, settings: config.Config) -> int:
    defaults = settings.defaults
    rules = AccountRules(
        country=args.country or defaults.country,
        timezone=args.timezone or defaults.timezone,
        international=not args.no_international,
        encoding=gsm.MODES[args.mode],
        max_messages=args.max_messages or defaults.max_messages,
        max_text_chars=defaults.max_text_chars,
    )
    max_bytes = settings.smtp.max_size_mb * 1_000_000
    try:
        if args.path == "-":
            data = read_limited(sys.stdin.buffer, max_bytes)
        else:
            with open(args.path, "rb") as stream:
                data = read_limited(stream, max_bytes)
        checked = report.check(data, rules)
    except OSError as error:
        print(f"ecosms-gw check: cannot read {args.path}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except Rejected as refusal:
        checked = report.Report.rejected(refusal, 1)
    sys.stdout.write(report.as_json(checked) + "\n" if args.json else report.as_text(checked, ZoneInfo(rules.timezone)))
    return EXIT_REFUSED if checked.refusal else EXIT_OK


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most `max_bytes`; one more byte means the input is refused as too large."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Rejected("too_large", f"more than {max_bytes // 1_000_000} MB")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(getattr(args, "config", None))
    except config.ConfigError as error:
        print(f"ecosms-gw: {error}", file=sys.stderr)
        return EXIT_USAGE
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
