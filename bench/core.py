"""Figures of the message core (issue 2), printed; run by hand: .venv/bin/python -m bench.core

1. parse + compose of a 2,000-recipient body with two fields per recipient, one core;
2. `ecosms-gw check` of 5 MB e-mails of three shapes, as a user runs it (subprocess).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from ecosms_gw.core.compose import AccountRules, compose
from ecosms_gw.core.mail2sms import parse_all

RECIPIENTS = 2000


def personalised_body(recipients: int) -> str:
    lines = ["U-ACME01", "D-2026-12-24T09:00", "T>Bonjour #1# #2#,",
             "T-votre commande est prête. Code: (%1)-#2#."]
    lines += [f"#-06{n:08d};Mme;NOM{n}" for n in range(recipients)]
    return "\n".join(lines) + "\n"


def bench_compose() -> None:
    text = personalised_body(RECIPIENTS)
    rules = AccountRules(max_messages=RECIPIENTS)
    runs = []
    for _ in range(50):
        start = time.perf_counter()
        result = compose(parse_all([text]), rules)
        runs.append(time.perf_counter() - start)
    assert len(result.messages) == RECIPIENTS
    best, median = min(runs), statistics.median(runs)
    print(f"parse+compose {RECIPIENTS} recipients, 2 fields each: "
          f"median {median * 1000:.2f} ms = {RECIPIENTS / median:,.0f} recipients/s "
          f"(best {RECIPIENTS / best:,.0f}/s)")


def email_with(*parts: MIMEText | MIMEApplication) -> bytes:
    message = MIMEMultipart()
    message["From"], message["To"], message["Subject"] = "a@example.com", "sms@localhost", "x"
    for part in parts:
        message.attach(part)
    return message.as_bytes()


def five_megabyte_emails() -> dict[str, bytes]:
    huge_body = personalised_body(120_000)  # ~5 MB of recipients: refused, too many messages
    html = "<html><body><p>U-ACME01</p><p>T-Bonjour&nbsp;#1#</p>" + "".join(
        f"<div>#-06{n:08d};Nom {n}</div>" for n in range(1500)) + "<p>" + "lorem ipsum " * 420_000 + "</p></body></html>"
    return {
        "5 MB body, 120k recipients (too_many_messages)": email_with(MIMEText(huge_body, "plain", "utf-8")),
        "small body + 5 MB PDF attachment": email_with(
            MIMEText(personalised_body(2000), "plain", "utf-8"),
            MIMEApplication(os.urandom(5_000_000), "pdf")),
        "5 MB HTML body, 1500 recipients": email_with(MIMEText(html, "html", "utf-8")),
    }


def bench_check() -> None:
    command = str(Path(sys.executable).parent / "ecosms-gw")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in five_megabyte_emails().items():
            path = Path(folder) / "mail.eml"
            path.write_bytes(data)
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                result = subprocess.run([command, "check", "--json", str(path)], capture_output=True)
                runs.append(time.perf_counter() - start)
            assert result.returncode in (0, 1), result.stderr
            print(f"check {name} ({len(data) / 1e6:.1f} MB on the wire): "
                  f"median {statistics.median(runs):.2f} s, worst {max(runs):.2f} s "
                  f"(exit {result.returncode})")


if __name__ == "__main__":
    bench_compose()
    bench_check()
