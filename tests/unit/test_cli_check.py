"""`ecosms-gw check` through its installed entry point, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.samples import ADVANCED, BODY, VENDOR_EXAMPLE, plain

COMMAND = str(Path(sys.executable).parent / "ecosms-gw")


def ecosms(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ECOSMS_")}
    return subprocess.run([COMMAND, *args], input=stdin.decode("latin-1") if stdin else None,
                          capture_output=True, text=True, env=environment, timeout=60)


@pytest.fixture
def write(tmp_path: Path):
    def write(data: bytes | str, name: str = "body.txt") -> str:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)
    return write


def check_json(*args: str) -> tuple[int, dict]:
    result = ecosms("check", "--json", *args)
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def test_vendor_example_as_json(write) -> None:
    code, report = check_json(write(VENDOR_EXAMPLE))
    assert code == 0
    assert report["rejected"] is False
    assert report["account"] == "code"
    assert report["send_at"] == "2017-08-04T10:30:00Z"
    assert report["messages"][0] == {
        "recipient": "+447123456789", "text": "first text message for 3 recipients",
        "encoding": "gsm7", "units": 35, "segments": 1, "send_at": "2017-08-04T10:30:00Z",
        "line": 4}
    assert len(report["messages"]) == 8
    assert report["dropped"] == [] and report["warnings"] == []


def test_rejection_as_json_exits_1(write) -> None:
    code, report = check_json(write("U-ACME01\nD-2017-13-01\nT-x\n#-33612345678"))
    assert code == 1
    assert report == {"rejected": True, "reason": "invalid_date", "line": 2,
                      "detail": "D-2017-13-01: month 13"}


def test_options_change_the_rules(write) -> None:
    path = write("U-A\nD-2017-08-04T12:00\nT-Ça «va»\n#-07123456789\n#-+33612345678\n")
    code, report = check_json("--country", "44", "--timezone", "Europe/London",
                              "--no-international", "--mode", "ucs2", path)
    assert code == 0
    assert report["send_at"] == "2017-08-04T11:00:00Z"
    assert [(m["recipient"], m["text"], m["encoding"]) for m in report["messages"]] == [
        ("+447123456789", "Ça «va»", "ucs2")]
    assert report["dropped"] == [{"line": 5, "recipient": "+33612345678",
                                  "reason": "international_not_allowed"}]
    code, report = check_json("--max-messages", "1", write("U-A\nT-x\n#-33612345678\n#-33612345679"))
    assert (code, report["reason"]) == (1, "too_many_messages")


def test_config_file_supplies_the_defaults(write, tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[defaults]\ncountry = "44"\nmax_messages = 1\n')
    code, report = check_json("--config", str(config), write("U-A\nT-x\n#-07123456789"))
    assert report["messages"][0]["recipient"] == "+447123456789"
    code, report = check_json("--config", str(config), write("U-A\nT-x\n#-07123456789\n#-07123456788"))
    assert report["reason"] == "too_many_messages"


def test_human_output_shows_table_totals_changes_and_drops(write) -> None:
    result = ecosms("check", write(ADVANCED + "#-06x\nT-Très cher… «ok»\n#-0612345678\n"))
    assert result.returncode == 0
    out = result.stdout
    assert "Account DEMO, send now" in out
    assert "+441234567891" in out and "Hello Mrs JONES,⏎You car is ready.⏎Best regards" in out
    assert "Total: 3 messages, 3 parts, 1 recipients left out" in out
    assert "'…' -> '...'" in out and "'«' deleted" in out
    assert "invalid_number" in out and "06x" in out


def test_human_output_of_a_rejection(write) -> None:
    result = ecosms("check", write("U-A\nU-B\n"))
    assert (result.returncode, result.stdout) == (1, "REJECTED: multiple_accounts (line 2): U- lines 1 and 2\n")


def test_eml_and_stdin(write) -> None:
    code, report = check_json(write(plain(BODY, "iso-8859-1"), "mail.eml"))
    assert (code, report["messages"][0]["text"]) == (0, "Hello été")
    result = ecosms("check", "--json", "-", stdin=BODY.encode())
    assert json.loads(result.stdout)["account"] == "ACME"


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "missing_account"),
    (bytes(range(256)) * 4096, "missing_account"),
    (b"\xff\xfe" + "U-A\nT-x\n#-33612345678".encode("utf-16-le"), "missing_account"),
    (b"x" * 25_000_001, "too_large"),
])
def test_input_that_is_not_a_body_gets_a_clear_rejection(write, data: bytes, reason: str) -> None:
    code, report = check_json(write(data))
    assert (code, report["rejected"], report["reason"]) == (1, True, reason)


def test_utf16_file_gets_a_hint(write) -> None:
    _, report = check_json(write(b"\xff\xfe" + "U-A\n".encode("utf-16-le")))
    assert "UTF-16" in report["detail"]


def test_fifty_megabytes_are_refused_without_reading_them_all(write) -> None:
    path = write(b"")
    with open(path, "wb") as stream:
        stream.truncate(50_000_000)
    code, report = check_json(path)
    assert (code, report["reason"], report["detail"]) == (1, "too_large", "more than 25 MB")


@pytest.mark.parametrize("args", [
    (), ("check",), ("check", "--timezone", "Mars/Olympus", "x"), ("check", "--country", "abc", "x"),
    ("check", "--mode", "binary", "x"), ("check", "--max-messages", "0", "x"), ("nonsense",),
])
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = ecosms(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_unreadable_path_and_bad_config_exit_2(tmp_path: Path, write) -> None:
    result = ecosms("check", str(tmp_path / "missing.txt"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[defaults]\ncountri = 33\n")
    result = ecosms("check", "--config", str(config), write(BODY))
    assert result.returncode == 2
    assert result.stderr == f"ecosms-gw: {config}: unknown key defaults.countri\n"
