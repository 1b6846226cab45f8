-- The monitor's charts: what the cluster did lately, read from the status events (a BRIN
-- index by time) and the queue samples. $1 is an account, or NULL for every account.
-- Each read answers rows (at, line, value), pivoted into chart series by the module.

-- name: submitted
-- Messages submitted per second, per link, in 10 s steps over the last 15 minutes.
SELECT extract(epoch FROM date_bin('10 seconds', e.created_at, 'epoch'))::float8 AS at,
       coalesce(m.smsc, '?') AS line, count(*) / 10.0 AS value
FROM status_events e JOIN messages m ON m.id = e.message_id
WHERE e.status = 'on' AND e.created_at > now() - interval '15 minutes' AND ($1::bigint IS NULL OR e.account_id = $1)
GROUP BY 1, 2 ORDER BY 1;

-- name: finals
-- Final statuses per second by outcome (ok delivered, ko failed, no unknown; receipts
-- mostly), in 10 s steps over the last 15 minutes.
SELECT extract(epoch FROM date_bin('10 seconds', created_at, 'epoch'))::float8 AS at, status AS line,
       count(*) / 10.0 AS value
FROM status_events
WHERE status IN ('ok', 'ko', 'no') AND created_at > now() - interval '15 minutes'
  AND ($1::bigint IS NULL OR account_id = $1)
GROUP BY 1, 2 ORDER BY 1;

-- name: queue
-- The queue's depth and how late its oldest due message was, over the last hour (every
-- account: the queue is shared).
SELECT extract(epoch FROM at)::float8 AS at, line, value
FROM queue_samples, LATERAL (VALUES ('queued', queued::float8), ('held', held::float8), ('paused', paused::float8),
                                    ('oldest_s', oldest_s::float8)) v(line, value)
WHERE at > now() - interval '1 hour' ORDER BY 1;

-- name: delivery_rate
-- Per hour over the last day: the share of final statuses that are ok, in percent.
SELECT extract(epoch FROM date_trunc('hour', created_at))::float8 AS at, 'delivered %' AS line,
       round(100.0 * count(*) FILTER (WHERE status = 'ok') / count(*), 1)::float8 AS value
FROM status_events
WHERE status IN ('ok', 'ko', 'no') AND created_at > now() - interval '24 hours'
  AND ($1::bigint IS NULL OR account_id = $1)
GROUP BY 1 ORDER BY 1;

-- name: latency
-- From submitted (`on`) to final, per minute over the last hour: p50 and p95, seconds.
WITH final AS (
    SELECT date_trunc('minute', e.created_at) AS minute,
           extract(epoch FROM e.created_at - s.created_at) AS seconds
    FROM status_events e
    JOIN LATERAL (SELECT o.created_at FROM status_events o
                  WHERE o.message_id = e.message_id AND o.status = 'on' ORDER BY o.id LIMIT 1) s ON true
    WHERE e.status IN ('ok', 'ko', 'no') AND e.created_at > now() - interval '1 hour'
      AND ($1::bigint IS NULL OR e.account_id = $1)
)
SELECT extract(epoch FROM minute)::float8 AS at, q.line, q.value
FROM (SELECT minute, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95
      FROM final GROUP BY minute) f,
     LATERAL (VALUES ('p50', f.p50::float8), ('p95', f.p95::float8)) q(line, value)
ORDER BY 1;

-- name: top_errors
-- The most frequent failure codes of the last hour, with one description of each.
SELECT code, min(description) AS description, count(*) AS n
FROM status_events
WHERE status IN ('ko', 'no') AND code IS NOT NULL AND created_at > now() - interval '1 hour'
  AND ($1::bigint IS NULL OR account_id = $1)
GROUP BY code ORDER BY n DESC, code LIMIT 10;

-- name: mailing_progress
-- One mailing ($2) over time, per minute: its messages reaching each status.
SELECT extract(epoch FROM date_trunc('minute', e.created_at))::float8 AS at, e.status AS line,
       count(*)::float8 AS value
FROM messages m JOIN status_events e ON e.message_id = m.id
WHERE m.mailing_id = $2 AND ($1::bigint IS NULL OR m.account_id = $1) AND e.status <> 'wait'
GROUP BY 1, 2 ORDER BY 1;

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
