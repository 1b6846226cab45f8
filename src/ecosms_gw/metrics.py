"""Prometheus metrics of this daemon (`GET /metrics`). Counters are counted where things
happen; what lives in PostgreSQL (queue depth, messages by status, links) is read at
scrape time, so that every daemon on one database reports the same truth. No label value
is ever a number, a mailing or a message id: links, channels, statuses and outcomes only."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

INGESTED = Counter("ecosms_ingested_total", "Submissions by channel and outcome",
                   ["channel", "outcome"], registry=REGISTRY)
INGESTED_MESSAGES = Counter("ecosms_ingested_messages_total", "Messages accepted, by channel", ["channel"],
                            registry=REGISTRY)
OPTED_OUT = Counter("ecosms_opted_out_dropped_total", "Recipients dropped because they had opted out, by channel",
                    ["channel"], registry=REGISTRY)
PARTS_SUBMITTED = Counter("ecosms_parts_submitted_total", "Parts the SMSC accepted", ["smsc"],
                          registry=REGISTRY)
SUBMIT_RESPONSE = Histogram("ecosms_submit_response_seconds", "From a submit_sm written to its submit_sm_resp",
                            ["smsc"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                            registry=REGISTRY)
THROTTLED = Counter("ecosms_smsc_throttled_total", "Throttle answers from the SMSC (the link slows down)", ["smsc"],
                    registry=REGISTRY)
IN_DOUBT_TOTAL = Counter("ecosms_in_doubt_total", "Messages this daemon left in doubt (written, never answered)",
                         ["smsc"], registry=REGISTRY)
RECEIPTS = Counter("ecosms_receipts_total", "Delivery receipts stored, by outcome (delivered, failed)",
                   ["smsc", "outcome"], registry=REGISTRY)
RECEIPT_LATENCY = Histogram("ecosms_receipt_latency_seconds", "From a part's submit_sm_resp to its final receipt",
                            ["smsc"], buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400),
                            registry=REGISTRY)
RECEIPT_LAG = Histogram("ecosms_receipt_lag_seconds", "From a receipt's arrival to its status committed",
                        buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10), registry=REGISTRY)
SMSC_BOUND = Gauge("ecosms_smsc_bound", "1 when this daemon's connection to the SMSC is bound", ["smsc"],
                   registry=REGISTRY)
DATABASE_UP = Gauge("ecosms_database_up", "1 when the database answered this scrape", registry=REGISTRY)
LINK_BOUND = Gauge("ecosms_link_bound", "1 when some living daemon of the cluster has the link bound", ["smsc"],
                   registry=REGISTRY)
LINK_TPS = Gauge("ecosms_link_tps", "Parts per second written lately on the link (all daemons)", ["smsc"],
                 registry=REGISTRY)
LINK_TPS_CONFIGURED = Gauge("ecosms_link_tps_configured", "The link's configured rate", ["smsc"], registry=REGISTRY)
LINK_WINDOW_USED = Gauge("ecosms_link_window_used", "Messages written on the link without a stored outcome",
                         ["smsc"], registry=REGISTRY)
MESSAGES = Gauge("ecosms_messages", "Messages by status (all daemons)", ["status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("ecosms_queue_depth", "Messages waiting to be sent (all daemons)", registry=REGISTRY)
QUEUE_OLDEST = Gauge("ecosms_queue_oldest_seconds", "Age of the oldest message due and not sent",
                     registry=REGISTRY)
QUEUE_HELD = Gauge("ecosms_queue_held", "Queued messages held by quiet hours", registry=REGISTRY)
QUEUE_PAUSED = Gauge("ecosms_queue_paused", "Messages of paused mailings", registry=REGISTRY)
IN_DOUBT = Gauge("ecosms_messages_in_doubt", "Messages a crash left in doubt (status no, code in_doubt), by SMSC link",
                 ["smsc"], registry=REGISTRY)
MAIL_BACKLOG = Gauge("ecosms_mail_out_backlog", "Outgoing mail (replies, reports) waiting to be sent",
                     registry=REGISTRY)
MAIL_FAILED = Gauge("ecosms_mail_out_failed", "Outgoing mail given up after mail_out.retry_hours", registry=REGISTRY)
PING_BACKLOG = Gauge("ecosms_ping_backlog", "Ping URL calls waiting to be made", registry=REGISTRY)
WEBHOOK_BACKLOG = Gauge("ecosms_webhook_backlog", "Webhook events waiting to be posted", registry=REGISTRY)
WEBHOOK_FAILING = Gauge("ecosms_webhook_failing_accounts", "Accounts whose webhook refused its last batch (retrying)",
                        registry=REGISTRY)
WEBHOOK_POSTS = Counter("ecosms_webhook_posts_total", "Webhook batches posted by this daemon, by outcome (ok, failed)",
                        ["outcome"], registry=REGISTRY)
WEBHOOK_ABANDONED = Counter("ecosms_webhook_events_abandoned_total",
                            "Webhook events given up after ping.retry_hours of failures", registry=REGISTRY)


class Tallies(Collector):
    """Counters kept by the database for the whole cluster (messages expired, whichever
    statement ended them), exposed as they were last read."""

    def __init__(self) -> None:
        self.expired = 0

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("ecosms_messages_expired", "Messages ended unsent: validity or maximum age "
                                  "(all daemons)", value=self.expired)


TALLIES = Tallies()
REGISTRY.register(TALLIES)


CHANNELS = ("smtp", "ftp", "http", "smpp", "monitor")
PART_OUTCOMES = ("delivered", "failed", "unknown")


def prepare(links: list[str]) -> None:
    """Every series of the known links and channels from the start, at zero: rates and
    alerts see a first event as an increase, and a dashboard finds every name."""
    for link in links:
        for per_link in (PARTS_SUBMITTED, SUBMIT_RESPONSE, THROTTLED, IN_DOUBT_TOTAL, RECEIPT_LATENCY, SMSC_BOUND):
            per_link.labels(link)
        for outcome in PART_OUTCOMES:
            RECEIPTS.labels(link, outcome)
    for channel in CHANNELS:
        INGESTED.labels(channel, "accepted")
        INGESTED_MESSAGES.labels(channel)
        OPTED_OUT.labels(channel)
    for outcome in ("ok", "failed"):
        WEBHOOK_POSTS.labels(outcome)
