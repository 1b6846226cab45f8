"""Prometheus metrics of this daemon (`GET /metrics`). Counters are counted where things
happen; what lives in PostgreSQL (queue depth, messages by status) is read at scrape time,
so that every daemon on one database reports the same truth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

INGESTED = Counter("ecosms_ingested_total", "Submissions by channel and outcome",
                   ["channel", "outcome"], registry=REGISTRY)
PARTS_SUBMITTED = Counter("ecosms_parts_submitted_total", "Parts the SMSC accepted", ["smsc"],
                          registry=REGISTRY)
RECEIPTS = Counter("ecosms_receipts_total", "Delivery receipts stored", ["smsc"], registry=REGISTRY)
RECEIPT_LAG = Histogram("ecosms_receipt_lag_seconds", "From a receipt's arrival to its status committed",
                        buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10), registry=REGISTRY)
SMSC_BOUND = Gauge("ecosms_smsc_bound", "1 when this daemon's connection to the SMSC is bound", ["smsc"],
                   registry=REGISTRY)
MESSAGES = Gauge("ecosms_messages", "Messages by status (all daemons)", ["status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("ecosms_queue_depth", "Messages waiting to be sent (all daemons)", registry=REGISTRY)
QUEUE_OLDEST = Gauge("ecosms_queue_oldest_seconds", "Age of the oldest message due and not sent",
                     registry=REGISTRY)
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
