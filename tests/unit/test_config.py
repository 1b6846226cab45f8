"""Configuration: defaults, the example file, environment overrides, clear refusals."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ecosms_gw import config

EXAMPLE = Path(__file__).parents[2] / "config" / "ecosms-gw.example.toml"


def test_built_in_defaults_without_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "SYSTEM_CONFIG", Path("/nonexistent/ecosms-gw.toml"))
    settings = config.load(None, environ={})
    assert settings.source == "built-in defaults"
    assert settings.database.dsn == ""
    assert settings.defaults.country == "33"
    assert settings.smsc[0].simulator is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.defaults.country = "44"  # type: ignore[misc]


def test_the_example_file_states_the_defaults() -> None:
    settings = config.load(str(EXAMPLE), environ={})
    defaults = config.Config()
    for section in ("database", "smtp", "ftp", "http", "defaults", "mail_out", "log"):
        assert getattr(settings, section) == getattr(defaults, section), section
    assert settings.smsc == (config.SmscConfig(),)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[defaults]\ncountry = "44"\n[smtp]\nmax_size_mb = 10\n')
    settings = config.load(str(path), environ={
        "ECOSMS_DEFAULTS_COUNTRY": "32", "ECOSMS_SMTP_ADDRESSES": "sms@a.example, sms@b.example",
        "ECOSMS_SMTP_REQUIRE_TLS_FOR_AUTH": "false", "ECOSMS_MAIL_OUT_FROM": "gw@a.example",
        "ECOSMS_HTTP_TOKEN_TTL_S": "60"})
    assert settings.defaults.country == "32"
    assert settings.smtp.addresses == ("sms@a.example", "sms@b.example")
    assert settings.smtp.max_size_mb == 10
    assert settings.smtp.require_tls_for_auth is False
    assert settings.mail_out.from_ == "gw@a.example"
    assert settings.http.token_ttl_s == 60


def test_config_path_order(tmp_path: Path) -> None:
    assert config.config_path("a.toml", {"ECOSMS_CONFIG": "b.toml"}) == Path("a.toml")
    assert config.config_path(None, {"ECOSMS_CONFIG": "b.toml"}) == Path("b.toml")


@pytest.mark.parametrize(("text", "message"), [
    ("[smpt]\n", "unknown section [smpt]"),
    ("[smtp]\nlisten_on = 1\n", "unknown key smtp.listen_on"),
    ("[smtp]\nmax_size_mb = 'big'\n", "smtp.max_size_mb must be a whole number"),
    ("[smtp]\naddresses = 'sms@x'\n", None),  # a single string is a one-item list
    ("[smtp]\nrequire_tls_for_auth = 'maybe'\n", "smtp.require_tls_for_auth must be true or false"),
    ("[defaults]\ntimezone = 'Europe/Pariss'\n", "defaults.timezone: unknown time zone"),
    ("[defaults]\ncountry = 'FR'\n", "defaults.country"),
    ("[defaults]\nmax_messages = 0\n", "defaults.max_messages: must be at least 1"),
    ("[http]\nlisten = '8080'\n", "http.listen: '8080' is not host:port"),
    ("[log]\nformat = 'xml'\n", "log.format"),
    ("[[smsc]]\nbind = 'both'\n", "smsc[0].bind"),
    ("[[smsc]]\nname = 'a'\n[[smsc]]\nname = 'a'\n", "smsc[1].name: 'a' is used twice"),
    ("[smtp\n", "not valid TOML"),
])
def test_bad_configuration_names_the_key_and_the_file(tmp_path: Path, text: str,
                                                      message: str | None) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    if message is None:
        assert config.load(str(path), environ={}).smtp.addresses == ("sms@x",)
        return
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="defaults.max_messages must be a whole number"):
        config.load(None, environ={"ECOSMS_DEFAULTS_MAX_MESSAGES": "lots"})
