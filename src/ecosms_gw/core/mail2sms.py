"""The mail2sms body format: lines to account, date, text blocks and recipients.

Pure: text in, `Body` out, or `Rejected` naming the reason class and the line. What the
messages finally become (numbers, substitution, GSM) is `compose`'s business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from ecosms_gw.errors import GatewayError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # not str.splitlines(): FF is a GSM character
_BODY_MARK = re.compile(r"(?:\A|[\r\n])[ \t]*[Uu]-")
_DATE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?)?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?"
)

ACCOUNT, DATE, TEXT, RECIPIENT = "U", "D", "T", "#"
_PREFIXES = {
    "U-": ACCOUNT, "u-": ACCOUNT, "D-": DATE, "d-": DATE,
    "T-": TEXT, "t-": TEXT, "T>": TEXT, "t>": TEXT, "#-": RECIPIENT,
}


class Rejected(GatewayError):
    """A whole body, e-mail or file refused: `reason` is a class of the format spec."""

    def __init__(self, reason: str, detail: str = "", line: int | None = None,
                 body: int | None = None) -> None:
        super().__init__(reason, detail, line, body)
        self.reason, self.detail, self.line, self.body = reason, detail, line, body

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.reason}{where}: {self.detail}" if self.detail else f"{self.reason}{where}"


class Recipient(NamedTuple):
    line: int
    number: str  # as written
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive text lines and the recipients listed under them."""

    line: int
    text: str
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True, slots=True)
class Body:
    account: str
    account_line: int
    date: datetime | None  # naive: a wall-clock time in the account's time zone
    blocks: tuple[Block, ...]  # only blocks that have recipients
    texts_without_recipient: tuple[int, ...]  # their first lines, for warnings
    recipients_before_text: tuple[Recipient, ...]


def has_body_mark(text: str) -> bool:
    """Whether a text holds a `U-` line, the sign that a MIME part is a body."""
    return _BODY_MARK.search(text) is not None


def parse(text: str) -> Body:
    """Read a body; raises `Rejected` for the account and date problems (rules 4 and 5),
    which win over anything found later."""
    accounts: list[tuple[int, str]] = []
    dates: list[tuple[int, str]] = []
    blocks: list[tuple[int, list[str], list[Recipient]]] = []
    orphans: list[Recipient] = []
    prefixes = _PREFIXES
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        kind = prefixes.get(line.lstrip(" \t")[:2])
        if kind is None:
            continue
        value = line.strip(" \t")[2:]
        if kind == RECIPIENT:
            recipient = _recipient(number, value)
            if blocks:
                blocks[-1][2].append(recipient)
            else:
                orphans.append(recipient)
        elif kind == TEXT:
            if blocks and not blocks[-1][2]:
                blocks[-1][1].append(value)
            else:
                blocks.append((number, [value], []))
        elif kind == ACCOUNT:
            accounts.append((number, value.strip(" \t")))
        else:
            dates.append((number, value.strip(" \t")))

    if not accounts:
        raise Rejected("missing_account", "no U- line")
    if len(accounts) > 1:
        raise Rejected("multiple_accounts", f"U- lines {accounts[0][0]} and {accounts[1][0]}",
                       accounts[1][0])
    account_line, account = accounts[0]
    if not account:
        raise Rejected("missing_account", "the U- line has no account code", account_line)
    if len(dates) > 1:
        raise Rejected("multiple_dates", f"D- lines {dates[0][0]} and {dates[1][0]}", dates[1][0])
    date = parse_date(*dates[0]) if dates else None
    return Body(
        account=account,
        account_line=account_line,
        date=date,
        blocks=tuple(Block(line, "\n".join(texts), tuple(rcpts))
                     for line, texts, rcpts in blocks if rcpts),
        texts_without_recipient=tuple(line for line, _, rcpts in blocks if not rcpts),
        recipients_before_text=tuple(orphans),
    )


def _recipient(line: int, value: str) -> Recipient:
    if ";" not in value:
        return _new_recipient(Recipient, (line, value, ()))
    number, *fields = map(str.strip, value.split(";"))
    if not fields[-1]:
        fields.pop()  # a trailing ';' means no field
    return _new_recipient(Recipient, (line, number, tuple(fields)))


_new_recipient = tuple.__new__  # Recipient(...) without the Python-level namedtuple __new__


def parse_date(line: int, value: str) -> datetime:
    """An ISO-8601 send date: aware when it carries `Z` or an offset, else naive."""
    match = _DATE.fullmatch(value)
    if not match:
        detail = "empty date" if not value else "expected YYYY-MM-DD[Thh:mm[:ss]][Z|±hh:mm]"
        raise Rejected("invalid_date", f"D-{value}: {detail}", line)
    parts = {name: int(v) for name, v in match.groupdict().items() if v and name != "offset"}
    for name, low, high in (("year", 1, 9999), ("month", 1, 12), ("day", 1, 31),
                            ("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59)):
        if name in parts and not low <= parts[name] <= high:
            raise Rejected("invalid_date", f"D-{value}: {name} {parts[name]}", line)
    tz = None
    if offset := match["offset"]:
        if offset == "Z":
            tz = UTC
        else:
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                raise Rejected("invalid_date", f"D-{value}: offset {offset}", line)
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(tzinfo=tz, **parts)
    except ValueError:  # only the day can still be out of range for its month
        raise Rejected("invalid_date", f"D-{value}: day {parts['day']}", line) from None


def parse_all(texts: Sequence[str]) -> list[Body]:
    """Every body of one e-mail or file, in order; the first refusal names its body."""
    bodies = []
    for index, text in enumerate(texts, 1):
        try:
            bodies.append(parse(text))
        except Rejected as rejected:
            rejected.body = index
            raise
    return bodies
