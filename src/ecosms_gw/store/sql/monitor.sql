-- The monitor's charts: what the cluster did lately, read from the rollups of the status
-- events (monitor_roll_up in 0015) and the queue samples; $1 is an account, or NULL for
-- every account. Each read answers rows (at, line, value), pivoted into chart series.

-- name: submitted
-- Messages submitted per second, per link, in 10 s steps over the last 15 minutes.
SELECT extract(epoch FROM at)::float8 AS at, key AS line, value / 10.0 AS value
FROM monitor_rollups
WHERE kind = 'submitted' AND account_id = coalesce($1::bigint, 0) AND at > now() - interval '15 minutes'
ORDER BY 1;

-- name: finals
-- Final statuses per second by outcome (ok delivered, ko failed, no unknown; receipts
-- mostly), in 10 s steps over the last 15 minutes.
SELECT extract(epoch FROM at)::float8 AS at, key AS line, value / 10.0 AS value
FROM monitor_rollups
WHERE kind = 'final' AND account_id = coalesce($1::bigint, 0) AND at > now() - interval '15 minutes'
ORDER BY 1;

-- name: queue
-- The queue's depth and how late its oldest due message was, over the last hour (every
-- account: the queue is shared).
SELECT extract(epoch FROM at)::float8 AS at, line, value
FROM queue_samples, LATERAL (VALUES ('queued', queued::float8), ('held', held::float8), ('paused', paused::float8),
                                    ('oldest_s', oldest_s::float8)) v(line, value)
WHERE at > now() - interval '1 hour' ORDER BY 1;

-- name: delivery_rate
-- Per hour over the last day: the share of final statuses that are ok, in percent.
SELECT extract(epoch FROM date_trunc('hour', at))::float8 AS at, 'delivered %' AS line,
       round((100.0 * sum(value) FILTER (WHERE key = 'ok') / sum(value))::numeric, 1)::float8 AS value
FROM monitor_rollups
WHERE kind = 'final' AND account_id = coalesce($1::bigint, 0) AND at > now() - interval '24 hours'
GROUP BY 1 ORDER BY 1;

-- name: latency
-- From submitted (`on`) to final, per 10 s step over the last hour: p50 and p95, seconds.
SELECT extract(epoch FROM at)::float8 AS at, key AS line, value
FROM monitor_rollups
WHERE kind = 'latency' AND account_id = coalesce($1::bigint, 0) AND at > now() - interval '1 hour'
ORDER BY 1;

-- name: top_errors
-- The most frequent failure codes of the last hour, with their latest description.
SELECT r.key AS code, c.description, sum(r.value)::bigint AS n
FROM monitor_rollups r LEFT JOIN error_codes c ON c.code = r.key
WHERE r.kind = 'error' AND r.account_id = coalesce($1::bigint, 0) AND r.at > now() - interval '1 hour'
GROUP BY r.key, c.description ORDER BY n DESC, code LIMIT 10;

-- name: mailing_progress
-- One mailing ($2) over time, per minute: its messages reaching each status.
SELECT extract(epoch FROM date_trunc('minute', e.created_at))::float8 AS at, e.status AS line,
       count(*)::float8 AS value
FROM messages m JOIN status_events e ON e.message_id = m.id
WHERE m.mailing_id = $2 AND ($1::bigint IS NULL OR m.account_id = $1) AND e.status <> 'wait'
GROUP BY 1, 2 ORDER BY 1;

-- name: roll_up
SELECT monitor_roll_up_due();

-- name: sample_queue
-- The queue's sample of these 10 s, if no daemon wrote it yet; samples older than a day go.
WITH due AS (
    SELECT date_bin('10 seconds', now(), 'epoch') AS at
    WHERE NOT EXISTS (SELECT 1 FROM queue_samples WHERE at = date_bin('10 seconds', now(), 'epoch'))
), dropped AS (
    DELETE FROM queue_samples WHERE at < now() - interval '24 hours'
)
INSERT INTO queue_samples (at, queued, oldest_s, held, paused)
SELECT due.at, s.queued, s.oldest_s, s.held, s.paused FROM due, LATERAL queue_state_now() s
ON CONFLICT (at) DO NOTHING;

-- name: paused
-- Paused mailings (the partial index), with the messages their pause holds.
SELECT g.id, g.name, a.code AS account, g.created_at,
       (SELECT count(*) FROM messages m WHERE m.mailing_id = g.id AND m.state = 'paused') AS held
FROM mailings g JOIN accounts a ON a.id = g.account_id
WHERE g.status = 'paused' AND ($1::bigint IS NULL OR g.account_id = $1)
ORDER BY g.id DESC LIMIT 50;

-- name: account_codes
SELECT code FROM accounts ORDER BY code;
