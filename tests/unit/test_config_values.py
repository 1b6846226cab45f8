"""Configuration values parsed once into types, and every problem of a file reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecosms_gw import config
from ecosms_gw.config_values import Address, Bind, InDoubt, LogLevel, PortRange, member


@pytest.mark.parametrize(("text", "expected", "shown"), [
    ("127.0.0.1:2525", Address("127.0.0.1", 2525), "127.0.0.1:2525"),
    (":2525", Address("", 2525), ":2525"),
    ("[::1]:25", Address("::1", 25), "[::1]:25"),
    ("relay.example.com:587", Address("relay.example.com", 587), "relay.example.com:587"),
])
def test_addresses(text: str, expected: Address, shown: str) -> None:
    assert Address.parse(text) == expected and str(expected) == shown


@pytest.mark.parametrize("text", ["8080", "host:", "host:0", "host:65536", "a b:25", "::1:25"])
def test_what_is_not_an_address(text: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        Address.parse(text)


def test_every_interface_is_none_for_the_listeners() -> None:
    assert Address.parse(":2121").bind_host is None and Address.parse("10.0.0.1:2121").bind_host == "10.0.0.1"


def test_port_ranges() -> None:
    assert PortRange.parse("60000-60002").ports() == range(60000, 60003)
    for text in ("60002-60000", "0-10", "60000", "a-b"):
        with pytest.raises(ValueError, match="FIRST-LAST"):
            PortRange.parse(text)


def test_enumerations_name_their_choices() -> None:
    assert member(InDoubt, "resend") is InDoubt.RESEND and member(LogLevel, "WARNING") is LogLevel.WARNING
    with pytest.raises(ValueError, match="'both' is not transmitter, receiver or transceiver"):
        member(Bind, "both")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[smtp]\nlisten = '2525'\nmax_size_mb = 'big'\n[ftp]\npassive_ports = '9-1'\n"
                    "[dispatch]\nin_doubt = 'maybe'\n[[smsc]]\nbind = 'both'\n[sms]\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: 6 problems:\n")
    for problem in ("unknown section [sms]", "smtp.listen: '2525' is not host:port",
                    "smtp.max_size_mb must be a whole number", "ftp.passive_ports: '9-1' is not FIRST-LAST",
                    "dispatch.in_doubt: 'maybe' is not unknown or resend", "smsc[0].bind: 'both' is not"):
        assert problem in message


def test_checks_after_parsing_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[defaults]\ncountry = 'FR'\nmax_messages = 0\n[mail_out]\nrelay = ':25'\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    assert "3 problems" in str(caught.value) and "mail_out.relay" in str(caught.value)


def test_the_environment_gives_typed_values_too() -> None:
    loaded = config.load(None, environ={"ECOSMS_HTTP_LISTEN": ":9000", "ECOSMS_DISPATCH_IN_DOUBT": "resend",
                                        "ECOSMS_FTP_PASSIVE_PORTS": "50000-50009"})
    assert loaded.http.listen == Address("", 9000) and loaded.dispatch.in_doubt is InDoubt.RESEND
    assert loaded.ftp.passive_ports.ports() == range(50000, 50010)
