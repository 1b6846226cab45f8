"""The typed values of the configuration, each parsed from its text once, at load: an
address to listen on or to connect to, a range of ports, and the enumerations."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):([0-9]{1,5})")


class Address(NamedTuple):
    """`host:port`; an empty host (`:2525`) means every interface, `[::1]:25` an IPv6 one."""
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        match = _ADDRESS.fullmatch(text.strip())
        if not match or not 0 < int(match[2]) < 65536:
            raise ValueError(f"{text!r} is not host:port")
        return cls(match[1].strip("[]"), int(match[2]))

    @property
    def bind_host(self) -> str | None:
        """The host to listen on, None for every interface (asyncio's and aiohttp's way)."""
        return self.host or None

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class PortRange(NamedTuple):
    """`FIRST-LAST`, both included."""
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        match = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", text.strip())
        if not match or not 0 < int(match[1]) <= int(match[2]) < 65536:
            raise ValueError(f"{text!r} is not FIRST-LAST")
        return cls(int(match[1]), int(match[2]))

    def ports(self) -> range:
        return range(self.first, self.last + 1)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


class InDoubt(StrEnum):
    """What becomes of a message written to the SMSC when no answer came before a crash."""
    UNKNOWN = "unknown"  # `no`: never a duplicate SMS
    RESEND = "resend"  # sent again: never a loss, sometimes twice


class OptOutScope(StrEnum):
    """Whom a STOP reply stops: the account it answers, or every account."""
    ACCOUNT = "account"
    GLOBAL = "global"


class Bind(StrEnum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"


class ReceiptIdFormat(StrEnum):
    """How an SMSC writes the ids of its receipts, against those of its submit_sm_resp."""
    SAME = "same"
    DECIMAL = "decimal"
    HEX = "hex"


class PingMethod(StrEnum):
    GET = "GET"
    POST = "POST"


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    """Written in any case (`INFO` is `info`)."""
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        return next((level for level in cls if isinstance(value, str) and level.value == value.lower()), None)


def member(kind: type[StrEnum], text: str) -> StrEnum:
    """The member written `text`, or a ValueError naming the choices."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {_choices(kind)}") from None


def _choices(kind: type[StrEnum]) -> str:
    values = [item.value for item in kind]
    return ", ".join(values[:-1]) + " or " + values[-1]


def country_code(text: str) -> str:
    """A country calling code, as the configuration, the accounts and `check` take it
    (`+33` is `33`)."""
    code = text.strip().removeprefix("+")
    if not re.fullmatch(r"[1-9][0-9]{0,2}", code):
        raise ValueError("not a country calling code such as 33")
    return code


def time_zone(text: str) -> str:
    """An IANA time zone name. (These two raise ValueError with the reason alone: each caller
    names the value its own way.)"""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return text


def coerce(value: Any, kind: Any) -> Any:
    """TOML values as they are; strings from the environment parsed to the key's type.
    A ValueError's text follows the key's name."""
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        raise ValueError(f" must be true or false, not {value!r}")
    if kind is int:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f" must be a whole number, not {value!r}")
    if kind == tuple[str, ...]:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f" must be a list of strings, not {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `country = 33` means "33"
    if not isinstance(value, str):
        raise ValueError(f" must be a string, not {value!r}")
    if kind == Address | None:
        return parsed(Address.parse, value) if value.strip() else None
    if kind in (Address, PortRange):
        return parsed(kind.parse, value)
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return parsed(lambda text: member(kind, text), value)
    return value


def parsed(parse: Any, value: str) -> Any:
    try:
        return parse(value)
    except ValueError as error:
        raise ValueError(f": {error}") from None
