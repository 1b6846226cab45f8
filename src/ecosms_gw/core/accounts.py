"""Accounts: what the store keeps of a customer, its secrets (hashed), and the rules its
bodies are composed with. Pure: no database here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import NamedTuple

from ecosms_gw.config import DefaultsConfig
from ecosms_gw.config_values import country_code, time_zone
from ecosms_gw.core import gsm, ping
from ecosms_gw.core.compose import AccountRules
from ecosms_gw.errors import GatewayError

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SENDER = re.compile(r"[^@\s]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")  # jane@example.com or @example.com
ADDRESS = re.compile(r"[^@\s]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")  # jane@example.com
SENDER_ID = re.compile(r"[A-Za-z0-9 ]{1,11}|\+?[0-9]{1,15}")
# scrypt at n=2**14, r=8: ~16 MiB and some 50 ms per check, the standard library's own.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class InvalidAccount(GatewayError, ValueError):
    """An account option that cannot be stored; the message names it."""


class InvalidSender(GatewayError, ValueError):
    """A sender id this account may not send with; the message names those it may."""


def is_number(sender_id: str) -> bool:
    """A numeric sender id (a phone number or short code), which recipients can reply to."""
    return sender_id.lstrip("+").isdigit()


LOGIN_FAILURES_PER_MINUTE = 10  # per client address (SMTP AUTH, SMPP bind): passwords cannot be guessed by volume
QUIET_HOURS = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d-(?:[01]\d|2[0-3]):[0-5]\d")


class Spread(NamedTuple):
    """A mailing sent in packets: `volume` messages every `delay_min` minutes."""
    volume: int
    delay_min: int


@dataclass(frozen=True, slots=True)
class Account:
    id: int | None
    code: str
    name: str = ""
    senders: tuple[str, ...] = ()
    smtp_password: str | None = None  # hashes
    ftp_password: str | None = None
    api_secret: str | None = None
    smpp_password: str | None = None  # binds to the SMPP server with its code
    country: str | None = None  # None: the configured default
    timezone: str | None = None
    international: bool = False
    mode: str = "text"  # text | ucs2 | auto
    sender_ids: tuple[str, ...] = ()  # the first is the default
    reply_email: str | None = None
    ping_url: str | None = None
    max_messages: int | None = None
    tps: int | None = None
    submission_report: str = "off"  # off | sender | reply-email
    priority: int = 1  # of its messages by default: 0-3, 3 the most urgent
    weight: int = 1  # its share of a link among the accounts of one priority
    batch_volume: int | None = None  # its mails' and files' mailings go in packets of this many...
    batch_delay_min: int | None = None  # ...this many minutes apart
    quiet_hours: str | None = None  # HH:MM-HH:MM in the recipient's local time: nothing is sent then
    validity_hours: int | None = None  # how long the SMSC may try its messages; None: the SMSC's default
    webhook_url: str | None = None  # its events are POSTed here, signed with webhook_secret
    webhook_secret: str | None = None  # kept as given (signing needs the key itself), never shown

    @property
    def spread(self) -> Spread | None:
        """How its mails' and files' mailings are spread, if they are."""
        if self.batch_volume is None or self.batch_delay_min is None:
            return None
        return Spread(self.batch_volume, self.batch_delay_min)

    def rules(self, defaults: DefaultsConfig, mode: str | None = None) -> AccountRules:
        """How this account's bodies are composed, its own settings over the defaults; `mode`
        (text, ucs2, auto) over the account's, for one submission."""
        return AccountRules(
            country=self.country or defaults.country,
            timezone=self.timezone or defaults.timezone,
            international=self.international,
            encoding=gsm.MODES[mode or self.mode],
            max_messages=self.max_messages or defaults.max_messages,
            max_text_chars=defaults.max_text_chars,
        )

    def sender_id(self, asked: str | None = None, numeric: bool = False) -> str | None:
        """The sender id a message is stored with: `asked` when it is one of the account's,
        else the default (the first; None when the account has none). `numeric` (replies
        wanted) needs a number. Refused with `InvalidSender`, naming the allowed ones."""
        allowed = [s for s in self.sender_ids if is_number(s)] if numeric else list(self.sender_ids)
        if asked is None:
            if numeric and not allowed:
                raise InvalidSender("type 2 (replies wanted) needs a numeric sender id, and this account has none")
            return allowed[0] if allowed else None
        if asked not in allowed:
            kind = "numeric sender ids" if numeric else "sender ids"
            raise InvalidSender(f"sender {asked!r} is not one of this account's {kind}: "
                                f"{', '.join(allowed) or 'none'}")
        return asked

    def allows_sender(self, address: str) -> bool:
        """Whether a mail's envelope sender is one of the allowed addresses or domains."""
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        return any(address == allowed or (allowed.startswith("@") and domain == allowed[1:])
                   for allowed in self.senders)


def spread_problem(spread: Spread) -> str | None:
    """Why a spreading cannot be, or None."""
    if not 1 <= spread.volume <= 100_000:
        return f"a packet of {spread.volume}: 1 to 100,000 messages"
    if not 1 <= spread.delay_min <= 1440:
        return f"{spread.delay_min} minutes apart: 1 to 1,440"
    return None


def validate(account: Account) -> Account:
    """Refuse what would not work later, with the option's name; normalise the rest."""
    if not CODE.fullmatch(account.code):
        raise InvalidAccount(f"code {account.code!r}: letters, digits, '.', '_' or '-', at most 64")
    for sender in account.senders:
        if not SENDER.fullmatch(sender):
            raise InvalidAccount(f"--sender {sender!r}: an address (jane@example.com) or @domain")
    for name, text, check in (("--country", account.country, country_code),
                              ("--timezone", account.timezone, time_zone)):
        try:
            if text is not None:
                check(text)
        except ValueError as error:
            raise InvalidAccount(f"{name} {text!r}: {error}") from None
    if account.mode not in gsm.MODES:
        raise InvalidAccount(f"--mode {account.mode!r}: text, ucs2 or auto")
    for sender_id in account.sender_ids:
        if not SENDER_ID.fullmatch(sender_id):
            raise InvalidAccount(f"--sender-id {sender_id!r}: at most 11 letters and digits, or a number")
    if account.reply_email is not None and not ADDRESS.fullmatch(account.reply_email):
        raise InvalidAccount(f"--reply-email {account.reply_email!r}: an address (jane@example.com)")
    if account.webhook_url is not None and (problem := ping.url_problem(account.webhook_url)):
        raise InvalidAccount(f"--webhook-url {account.webhook_url!r}: {problem}")
    if account.webhook_url and not account.webhook_secret:
        raise InvalidAccount("--webhook-url needs --webhook-secret (its calls are signed with it)")
    if account.ping_url is not None and (problem := ping.url_problem(account.ping_url)):
        raise InvalidAccount(f"--ping-url {account.ping_url!r}: {problem}")
    if account.submission_report not in ("off", "sender", "reply-email"):
        raise InvalidAccount(f"--submission-report {account.submission_report!r}: off, sender or reply-email")
    if account.submission_report == "reply-email" and not account.reply_email:
        raise InvalidAccount("--submission-report reply-email needs --reply-email")
    if not 0 <= account.priority <= 3:
        raise InvalidAccount(f"--priority {account.priority}: 0 to 3 (3 the most urgent)")
    if (account.batch_volume is None) != (account.batch_delay_min is None):
        raise InvalidAccount("--batch-volume and --batch-delay-min go together")
    if (spread := account.spread) and (problem := spread_problem(spread)):
        raise InvalidAccount(f"--batch-volume/--batch-delay-min: {problem}")
    if account.quiet_hours is not None and not QUIET_HOURS.fullmatch(account.quiet_hours):
        raise InvalidAccount(f"--quiet-hours {account.quiet_hours}: HH:MM-HH:MM, e.g. 21:00-08:00")
    if not 1 <= account.weight <= 1000:
        raise InvalidAccount(f"--weight {account.weight}: 1 to 1000")
    if account.validity_hours is not None and not 1 <= account.validity_hours <= 72:
        raise InvalidAccount(f"--validity-hours {account.validity_hours}: 1 to 72")
    for option, value in (("--max-messages", account.max_messages), ("--tps", account.tps)):
        if value is not None and value < 1:
            raise InvalidAccount(f"{option} {value}: at least 1")
    return account


def hash_secret(secret: str) -> str:
    """A salted scrypt hash, self-describing so that its cost can change later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "$".join(("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


# Checked when there is no hash (unknown login, secret never set), so that the time an
# answer takes does not tell which accounts exist.
_NO_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 86 + "=="


def verify_secret(secret: str, stored: str | None) -> bool:
    """Constant-time check of a secret against its stored hash; no hash never matches,
    after the same work as a real check."""
    if not stored:
        verify_secret(secret, _NO_HASH)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)
