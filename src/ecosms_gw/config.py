"""Configuration: one TOML file, `ECOSMS_<SECTION>_<KEY>` overrides, one frozen object.

Loaded once at start and passed down. Every key is optional; an unknown key or a bad
value stops start-up with one line naming the key and the file (`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ecosms_gw.config_values import (
    Address,
    Bind,
    InDoubt,
    LogFormat,
    LogLevel,
    OptOutScope,
    PingMethod,
    PortRange,
    ReceiptIdFormat,
    coerce,
    country_code,
    time_zone,
)
from ecosms_gw.errors import GatewayError

SYSTEM_CONFIG = Path("/etc/ecosms-gw/ecosms-gw.toml")


class ConfigError(GatewayError):
    """A configuration that cannot be used; the message names the key and the file."""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: str = ""  # empty: embedded PostgreSQL in data_dir
    data_dir: str = "/var/lib/ecosms-gw"


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    listen: Address = Address("0.0.0.0", 2525)
    addresses: tuple[str, ...] = ("sms@localhost",)
    max_size_mb: int = 25
    tls_cert: str = ""
    tls_key: str = ""
    require_tls_for_auth: bool = True
    max_connections_per_ip: int = 20
    max_mails_per_minute: int = 120  # per account


@dataclass(frozen=True, slots=True)
class FtpConfig:
    listen: Address = Address("0.0.0.0", 2121)
    root: str = "/var/lib/ecosms-gw/ftp"
    passive_ports: PortRange = PortRange(60000, 60099)
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    max_file_mb: int = 25
    max_files_per_minute: int = 60  # per account
    max_disk_mb: int = 500  # per account, reports included
    dedupe_hours: int = 24  # the same file content again within: a duplicate; 0: off


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: Address = Address("127.0.0.1", 8080)
    token_ttl_s: int = 3600
    # Bearer token of operators for /metrics and /monitor; empty: they answer only on loopback.
    operator_token: str = ""
    max_body_kb: int = 1024  # a create call with 200 contacts is well under 100 KB
    tls_cert: str = ""  # HTTPS on `listen` when set (PEM chain), with tls_key
    tls_key: str = ""


@dataclass(frozen=True, slots=True)
class SmppServerConfig:
    listen: Address | None = None  # e.g. "0.0.0.0:2775"; empty: off
    tls_cert: str = ""  # SMPP over TLS when set (PEM chain), with tls_key
    tls_key: str = ""
    max_binds_per_account: int = 4
    window: int = 100  # a bind's submits read ahead of their answers; beyond, reading waits


@dataclass(frozen=True, slots=True)
class DefaultsConfig:
    country: str = "33"
    timezone: str = "Europe/Paris"
    max_messages: int = 2000
    max_text_chars: int = 1024


@dataclass(frozen=True, slots=True)
class SmscConfig:
    name: str = "main"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    bind: Bind = Bind.TRANSCEIVER
    tps: int = 20
    window: int = 10
    source_addr: str = ""
    routes: tuple[str, ...] = ("*",)
    simulator: bool = False
    receipt_id_format: ReceiptIdFormat = ReceiptIdFormat.SAME  # receipts' ids differ from submit_sm_resp's


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    # Parts written to the SMSC without an answer when the daemon died or the link broke:
    # "unknown" makes the message `no` (never a duplicate SMS), "resend" sends it again
    # (never a loss, sometimes twice).
    in_doubt: InDoubt = InDoubt.UNKNOWN
    max_age_hours: int = 48  # a message that could not leave within this ends `ko` (expired)
    receipt_wait_hours: int = 48  # submitted without a final receipt this long: `no`


@dataclass(frozen=True, slots=True)
class RepliesConfig:
    # A reply that is one of these (case, accents and spaces ignored) opts the number out.
    stop_keywords: tuple[str, ...] = ("STOP", "STOP SMS", "ARRET", "UNSUBSCRIBE")
    # A reply that is one of these opts the number back in (it was out by a STOP).
    start_keywords: tuple[str, ...] = ("START", "UNSTOP")
    optout_scope: OptOutScope = OptOutScope.ACCOUNT  # global: a STOP stops every account's messages
    subject: str = "Response from {number} to SMS #{id}"


@dataclass(frozen=True, slots=True)
class PingConfig:
    """Calls to accounts' ping URLs: bounded, never in the way of sending."""
    method: PingMethod = PingMethod.GET  # GET: ids in the URL; POST: also as the form field sms_id
    timeout_s: int = 10  # a whole call, waiting for a connection included
    concurrency: int = 10  # calls at once (at most a quarter of them to one host)
    retry_hours: int = 24  # a failing call is retried with backoff for this long
    allow_private: bool = False  # loopback, private and link-local addresses are refused


@dataclass(frozen=True, slots=True)
class MailOutConfig:
    relay: Address = Address("127.0.0.1", 25)
    from_: str = "ecosms-gw@localhost"  # TOML key `from`
    starttls: bool = False  # upgrade the relay connection (certificate checked) before sending
    username: str = ""  # AUTH at the relay when set (after STARTTLS when that is on)
    password: str = ""
    retry_hours: int = 24  # a mail the relay did not take is retried with backoff this long


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    days: int = 400  # mailings, messages, events, replies, pings, mail older than this go; 0: never
    ftp_days: int = 30  # files in done/ and rejected/; 0: never


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: LogFormat = LogFormat.AUTO
    level: LogLevel = LogLevel.INFO


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    ftp: FtpConfig = field(default_factory=FtpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    smpp_server: SmppServerConfig = field(default_factory=SmppServerConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    smsc: tuple[SmscConfig, ...] = (SmscConfig(name="simulator", simulator=True),)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    replies: RepliesConfig = field(default_factory=RepliesConfig)
    ping: PingConfig = field(default_factory=PingConfig)
    mail_out: MailOutConfig = field(default_factory=MailOutConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: str = "built-in defaults"  # the file it came from, for messages


_SECTIONS = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("smsc", "source")}


def config_path(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """`--config`, then `$ECOSMS_CONFIG`, then the system file if present, else none."""
    if explicit:
        return Path(explicit)
    if environ.get("ECOSMS_CONFIG"):
        return Path(environ["ECOSMS_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read, override from the environment, check; raises `ConfigError`."""
    path = config_path(explicit, environ)
    data: dict[str, Any] = {}
    source = "built-in defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{source}: cannot read: {error.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{source}: not valid TOML: {error}") from None
    return from_mapping(data, source, environ)


def from_mapping(data: Mapping[str, Any], source: str,
                 environ: Mapping[str, str] = os.environ) -> Config:
    """A `Config` from parsed TOML plus environment overrides; every problem is reported at
    once, each naming its key."""
    problems: list[str] = [f"unknown section [{key}]" for key in data if key not in _SECTIONS and key != "smsc"]
    sections: dict[str, Any] = {}
    for name, section_field in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table")
            continue
        table = dict(table) | _environment_overrides(name, section_field.default_factory, environ)
        sections[name] = _build(section_field.default_factory, table, name, problems)
    if "smsc" in data:
        smscs = data["smsc"]
        if not isinstance(smscs, list) or not smscs or not all(isinstance(t, dict) for t in smscs):
            problems.append("smsc must be one or more [[smsc]] tables")
        else:
            sections["smsc"] = tuple(_build(SmscConfig, table, f"smsc[{i}]", problems) for i, table in enumerate(smscs))
    if not problems:
        config = Config(**sections, source=source)
        problems = _problems(config)
    if problems:
        raise ConfigError(f"{source}: {problems[0]}" if len(problems) == 1 else
                          f"{source}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems))
    return config


def _environment_overrides(section: str, cls: Any, environ: Mapping[str, str]) -> dict[str, str]:
    prefix = f"ECOSMS_{section.upper()}_"
    names = {_toml_key(f.name).upper(): _toml_key(f.name) for f in dataclasses.fields(cls)}
    return {names[key[len(prefix):]]: value for key, value in environ.items()
            if key.startswith(prefix) and key[len(prefix):] in names}


def _toml_key(attribute: str) -> str:
    return attribute.rstrip("_")  # `from_` is spelled `from` in the file


def _build(cls: Any, table: Mapping[str, Any], section: str, problems: list[str]) -> Any:
    hints = get_type_hints(cls)
    attributes = {_toml_key(f.name): f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in attributes:
            problems.append(f"unknown key {section}.{key}")
            continue
        attribute = attributes[key]
        try:
            values[attribute] = coerce(value, hints[attribute])
        except ValueError as error:
            problems.append(f"{section}.{key}{error}")
    return cls(**values)


def _problems(config: Config) -> list[str]:
    """Values that parse but cannot work."""
    problems = []
    defaults = config.defaults
    for name, text, check in (("defaults.country", defaults.country, country_code),
                              ("defaults.timezone", defaults.timezone, time_zone)):
        try:
            check(text)
        except ValueError as error:
            problems.append(f"{name}: {error} {text!r}")
    for key, value in (("defaults.max_messages", defaults.max_messages),
                       ("defaults.max_text_chars", defaults.max_text_chars),
                       ("smtp.max_size_mb", config.smtp.max_size_mb),
                       ("smtp.max_connections_per_ip", config.smtp.max_connections_per_ip),
                       ("smtp.max_mails_per_minute", config.smtp.max_mails_per_minute),
                       ("ftp.max_file_mb", config.ftp.max_file_mb),
                       ("ftp.max_files_per_minute", config.ftp.max_files_per_minute),
                       ("ftp.max_disk_mb", config.ftp.max_disk_mb),
                       ("http.token_ttl_s", config.http.token_ttl_s),
                       ("http.max_body_kb", config.http.max_body_kb),
                       ("smpp_server.max_binds_per_account", config.smpp_server.max_binds_per_account),
                       ("smpp_server.window", config.smpp_server.window),
                       ("ping.timeout_s", config.ping.timeout_s),
                       ("ping.concurrency", config.ping.concurrency),
                       ("ping.retry_hours", config.ping.retry_hours),
                       ("mail_out.retry_hours", config.mail_out.retry_hours)):
        if value < 1:
            problems.append(f"{key}: must be at least 1, not {value}")
    if not config.mail_out.relay.host:
        problems.append("mail_out.relay: a host to connect to, not every interface")
    for section in ("smtp", "ftp", "http", "smpp_server"):
        tls = getattr(config, section)
        if bool(tls.tls_cert) != bool(tls.tls_key):
            problems.append(f"{section}.tls_cert and {section}.tls_key: give both or neither")
    if config.ftp.require_tls and not config.ftp.tls_cert:
        problems.append("ftp.require_tls: needs ftp.tls_cert and ftp.tls_key")
    for key, value in (("retention.days", config.retention.days), ("retention.ftp_days", config.retention.ftp_days)):
        if value < 0:
            problems.append(f"{key}: must be 0 (keep for ever) or more, not {value}")
    if config.ftp.dedupe_hours < 0:
        problems.append(f"ftp.dedupe_hours: must be 0 or more, not {config.ftp.dedupe_hours}")
    if config.dispatch.receipt_wait_hours < 1:
        problems.append(f"dispatch.receipt_wait_hours: must be at least 1, not {config.dispatch.receipt_wait_hours}")
    if config.dispatch.max_age_hours < 1:
        problems.append(f"dispatch.max_age_hours: must be at least 1, not {config.dispatch.max_age_hours}")
    names = [smsc.name for smsc in config.smsc]
    for i, smsc in enumerate(config.smsc):
        if smsc.tps < 1 or smsc.window < 1:
            problems.append(f"smsc[{i}]: tps and window must be at least 1")
        if smsc.name in names[:i]:
            problems.append(f"smsc[{i}].name: {smsc.name!r} is used twice")
    return problems
