"""Operations as an operator meets them: the monitor in Chromium with live data (charts,
links, errors, a paused mailing, a failed link) at desktop and phone sizes, the canonical
log lines of a mailing, and every metric the alerts and the dashboard name in a live
/metrics."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from ecosms_gw.core.accounts import Account, hash_secret
from ecosms_gw.store import Store
from tests.support.api import SECRET, Client, daemon
from tests.support.browser import chromium_console
from tests.support.net import free_port
from tests.support.smsc import Peer

ROOT = Path(__file__).parents[2]
OPERATOR = {"Authorization": "Bearer op-secret"}
MESSAGES = 2000
CHARTS = ("submitted", "finals", "queue", "rate", "latency")
SIZES = ((1280, 800), (390, 844))


def named_metrics() -> set[str]:
    """Every metric of ours the alert rules and the dashboard's queries name."""
    dashboard = json.loads((ROOT / "config/grafana/ecosms-gw.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = (ROOT / "config/prometheus/alerts.yml").read_text()
    return set(re.findall(r"\becosms_[a-z_]+", "\n".join(queries) + rules))


def send_mail(port: int, body: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as mail:
        mail.sendmail("ops@example.com", ["sms@localhost"], f"Subject: campaign\n\n{body}".encode())


def test_the_alert_rules_pass_promtool_and_each_has_a_summary_and_a_runbook() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ROOT / "config/prometheus/alerts.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 12 rules found" in checked.stdout
    rules = (ROOT / "config/prometheus/alerts.yml").read_text()
    assert rules.count("- alert: ") == rules.count("summary: ") == rules.count("runbook: ") == 12


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, checked by promtool as the expression of a recording rule."""
    dashboard = json.loads((ROOT / "config/grafana/ecosms-gw.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": query} for n, query in enumerate(queries)]}]}))
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout and len(queries) >= 16


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


async def test_the_monitor_alerts_dashboard_and_logs_with_live_data(store: Store, dsn: str, tmp_path: Path) -> None:
    """A 2,000-message mailing by mail, with receipts (some failed) and throttles from
    node-smpp; a mailing paused; a second link that never binds. The data endpoint holds
    the figures, the page draws every chart with axes at both sizes without a console
    message, /metrics has every name the alerts and dashboard use, and the daemon's log
    tells the mailing's story in two lines."""
    await store.accounts.add(Account(id=None, code="ACME", api_secret=hash_secret(SECRET), international=True,
                                     senders=("ops@example.com",)))
    peer = Peer(tmp_path, "--receipts", "--receipt-delay-ms", "300", "--fail-every", "25", "--throttle-every", "400")
    smtp_port = free_port()
    dead = f'[[smsc]]\nname = "backup"\nhost = "127.0.0.1"\nport = {free_port()}\nroutes = ["4471"]\n'
    try:
        async with daemon(dsn, tmp_path, peer_port=peer.port, more=dead, ECOSMS_HTTP_OPERATOR_TOKEN="op-secret",
                          ECOSMS_SMTP_LISTEN=f"127.0.0.1:{smtp_port}") as base, aiohttp.ClientSession() as session:
            body = "U-ACME\nT-Spring sale\n" + "".join(f"#-336{n:08d}\n" for n in range(MESSAGES))
            await asyncio.to_thread(send_mail, smtp_port, body)
            client = Client(session, base)
            assert (await client.login()).status == 200
            _, later = await client.call("POST", "/rest/mailing", json={
                "text": "Next week", "name": "held back", "date": "2099-01-01 10:00:00",
                "contacts": [{"recipient": "+33611111111"}, {"recipient": "+33622222222"}]})
            status, paused = await client.call("POST", "/rest/mailing", data={"action": "pause", "id": later["id"]})
            assert status == 200, paused

            async def monitor_data() -> dict:
                async with session.get(base + "/monitor/data", headers=OPERATOR) as response:
                    assert response.status == 200
                    return await response.json()

            async def all_final() -> bool:
                data = await monitor_data()
                campaign = next(m for m in data["mailings"] if m["messages"] == MESSAGES)
                finals = sum(sum(line) for line in data["charts"]["finals"]["lines"].values())
                return campaign["status"] == "ended" and round(finals * 10) == MESSAGES
            # the receipts, the mailing's end (the reaper's turn, 30 s) and the charts' last
            # steps rolled up (20 to 25 s later); the charts are read again after 5 s
            await until(all_final, 180, "the campaign's receipts, its end and its charts")
            data = await monitor_data()
            campaign = next(m for m in data["mailings"] if m["messages"] == MESSAGES)
            async with session.get(base + f"/monitor/data?mailing={campaign['id']}", headers=OPERATOR) as response:
                detail = (await response.json())["mailing"]
            async with session.get(base + "/metrics", headers=OPERATOR) as response:
                scraped = await response.text()
            pages = {}
            for width, height in SIZES:
                screenshot = tmp_path / f"monitor-{width}.png"
                dom, console = await chromium_console(f"--window-size={width},{height}", "--dump-dom",
                                                      f"{base}/monitor#token=op-secret")
                await chromium_console(f"--screenshot={screenshot}", f"--window-size={width},{height}",
                                       f"{base}/monitor#token=op-secret")
                pages[width] = dom, console, screenshot
            mailing_dom, mailing_console = await chromium_console(
                "--window-size=1280,800", "--dump-dom", f"{base}/monitor#token=op-secret&mailing={campaign['id']}")
            test_sms = {"account": "ACME", "number": "+33699999999", "text": "Test from the monitor"}
            async with session.post(base + "/monitor/send", json=test_sms,
                                    headers={"Authorization": f"Bearer {client.token}"}) as response:
                assert response.status == 401  # an account's token is not the operator's
            async with session.post(base + "/monitor/send", json=test_sms, headers=OPERATOR) as response:
                sent = response.status, await response.json()

            async def test_sms_arrived() -> bool:
                return any(line["destination"] == "33699999999" for line in peer.received())
            await until(test_sms_arrived, 30, "the test SMS at the SMSC")
        log_lines = [json.loads(line) for path in tmp_path.glob("daemon-*.log")
                     for line in path.read_text().splitlines() if line.startswith("{")]
    finally:
        peer.stop()

    assert sent[0] == 201 and sent[1]["messages"] == 1
    charts = data["charts"]
    # every message submitted once, in the per-link rates (10 s steps of messages per second)
    assert round(sum(sum(line) for line in charts["submitted"]["lines"].values()) * 10) == MESSAGES
    assert set(charts["submitted"]["lines"]) == {"main"}
    finals = {name: round(sum(line) * 10) for name, line in charts["finals"]["lines"].items()}
    assert finals["ok"] + finals.get("ko", 0) == MESSAGES and finals.get("ko", 0) == campaign["ko"] > 0
    assert charts["delivery_rate"]["lines"]["delivered %"][-1] == round(100 * campaign["ok"] / MESSAGES, 1)
    p50, p95 = (max(v for v in charts["latency"]["lines"][q] if v is not None) for q in ("p50", "p95"))
    assert 0.1 <= p50 <= p95 < 60  # the peer sends each receipt 300 ms after its answer
    assert {"queued", "held", "paused", "oldest_s"} <= set(charts["queue"]["lines"])
    assert [e["n"] for e in charts["top_errors"]] and charts["top_errors"][0]["n"] == campaign["ko"]
    links = {link["name"]: link for link in data["links"]}
    assert links["main"]["bound"] and links["main"]["daemon"] and links["main"]["throttled"] >= 1
    assert not links["backup"]["bound"] and links["backup"]["daemon"] is None
    assert [(m["id"], m["held"]) for m in data["paused"]] == [(later["id"], 2)] and data["queue"]["paused"] == 2
    assert data["accounts"] == ["ACME"]
    assert sum(detail["progress"]["lines"]["on"]) == MESSAGES and len(detail["messages"]) == 200

    for width, (dom, console, screenshot) in pages.items():
        assert console == [], (width, console)
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
        for name in CHARTS:  # drawn, with both axes spanning values
            box = re.search(rf'<div class="chart" id="chart-{name}"(.*?)</div><p class="caption" '
                            rf'id="caption-{name}">(.*?)</p>', dom, re.S)
            assert box and box[1].count("<canvas") == 1 and 'class="u-axis"' in box[1], (width, name)
            assert box[2].startswith("latest: "), (width, name, box[2])
            x_min, x_max, y_min, y_max = map(float, re.search(r'data-axes="([^"]+)"', box[1])[1].split(","))
            assert x_min < x_max and y_min < y_max, (width, name)
        assert "backup" in dom and ">down<" in dom and "held back" in dom and 'data-action="resume"' in dom
    assert mailing_console == [] and f"Mailing {campaign['id']} of ACME" in mailing_dom
    assert re.search(r'<div class="chart" id="chart-mailing".*?<canvas', mailing_dom, re.S)

    live = set(re.findall(r"^(ecosms_[a-z_]+)", scraped, re.M))
    missing = {name for name in named_metrics() if name not in live}
    assert not missing, missing

    accepted = [line for line in log_lines if line["event"] == "mailing_accepted" and line["channel"] == "smtp"]
    assert [(line["account"], line["mailing_id"], line["messages"]) for line in accepted] == [
        ("ACME", campaign["id"], MESSAGES)]
    ended = [line for line in log_lines if line["event"] == "mailing_ended" and line["mailing_id"] == campaign["id"]]
    assert len(ended) == 1 and ended[0]["statuses"] == {"ok": campaign["ok"], "ko": campaign["ko"]}
    assert ended[0]["account"] == "ACME" and ended[0]["duration_s"] > 0
    paused_line = next(line for line in log_lines if line["event"] == "mailing_paused")
    assert (paused_line["mailing_id"], paused_line["account"]) == (later["id"], "ACME")  # bound by contextvars
