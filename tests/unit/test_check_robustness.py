"""Whatever arrives, `check` answers with a report, never a traceback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ecosms_gw.core import report
from ecosms_gw.core.compose import AccountRules


def check(data: bytes, rules: AccountRules) -> dict:
    """The `check --json` document."""
    return report.check(data, rules).document()

REASONS = {"missing_account", "multiple_accounts", "invalid_date", "multiple_dates",
           "text_too_long", "no_messages", "too_many_messages", "no_body"}

line = st.one_of(
    st.sampled_from(["U-A", "u-B", "D-2017-08-04", "D-2017-13-01", "D-", "T-", "T>", "#-", "#-;;"]),
    st.builds(lambda p, s: p + s, st.sampled_from(["U-", "D-", "T-", "T>", "#-", "t-", "#", ""]),
              st.text(max_size=40)),
)
bodies = st.lists(line, max_size=30).map(lambda lines: "\n".join(lines))


def assert_is_a_report(document: dict) -> None:
    if document["rejected"]:
        assert document["reason"] in REASONS
    else:
        assert document["messages"]
        for message in document["messages"]:
            assert message["recipient"].startswith("+") and message["segments"] >= 1


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    assert_is_a_report(check(data, AccountRules()))


@settings(max_examples=300)
@given(bodies, st.sampled_from(["gsm7", "ucs2"]), st.sampled_from(["utf-8", "cp1252", "utf-16"]))
def test_any_body_shaped_text(body: str, encoding: str, charset: str) -> None:
    data = body.encode(charset, errors="replace")
    assert_is_a_report(check(data, AccountRules(encoding=encoding, max_messages=5)))
