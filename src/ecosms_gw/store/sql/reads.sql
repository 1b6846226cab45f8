-- Named queries of store/reads.py: each starts with a `-- name:` line.

-- name: queue_view
-- What waits, per mailing, like mailq: counts by status, its priority, messages paused or
-- held by quiet hours, next attempt, last error.
SELECT g.id AS mailing_id, a.code AS account, g.source, g.status AS mailing_status,
       g.created_at, g.send_at, g.messages,
       max(m.priority) FILTER (WHERE m.state IN ('queued', 'paused')) AS priority,
       count(*) FILTER (WHERE m.state = 'paused') AS paused,
       count(*) FILTER (WHERE m.state = 'queued' AND m.code = 'quiet_hours') AS held,
       count(*) FILTER (WHERE m.status = 'wait') AS wait,
       count(*) FILTER (WHERE m.status = 'on') AS "on",
       count(*) FILTER (WHERE m.status = 'ok') AS ok,
       count(*) FILTER (WHERE m.status = 'ko') AS ko,
       count(*) FILTER (WHERE m.status = 'rep') AS rep,
       count(*) FILTER (WHERE m.status = 'no') AS "no",
       min(m.due_at) FILTER (WHERE m.state = 'queued') AS next_attempt,
       (array_agg(m.description ORDER BY m.updated_at DESC)
            FILTER (WHERE m.state = 'queued' AND m.description IS NOT NULL))[1] AS last_error
FROM mailings g
JOIN accounts a ON a.id = g.account_id
JOIN messages m ON m.mailing_id = g.id
WHERE ($1::text IS NULL OR lower(a.code) = lower($1))
  AND g.status IN ('created', 'paused')
  AND EXISTS (SELECT 1 FROM messages w WHERE w.mailing_id = g.id
              AND w.state IN ('queued', 'paused', 'claimed', 'submitting'))
GROUP BY g.id, a.code
ORDER BY g.id;

-- HTTP API reads. Every one is scoped to the account ($1); a NULL filter is no filter
-- (the pool plans each call with its values, so only the filters given cost anything).
-- $sort is one of the listed keys, $desc its direction. Each returns one row: `size`,
-- `total` (the count before limit and offset) and `list`, the JSON array of the rows
-- with every property of the resource, in order, and dates in the account's time zone.
-- The properties are named in one place, the resource tables of reads.py:
-- `/*json:RESOURCE:$N*/` is replaced by the JSON object of a row `r` ($N: the zone).
-- PostgreSQL writes the JSON, so that a read of 2,000 statuses costs the daemon next to
-- nothing when all properties are asked (the default).

-- name: api_messages
-- Messages sent (MT), as the sms resource ($12 = 'sms', with the state of each part as
-- its receipt said) or as current statuses ($12 = 'status'). $13: zone.
WITH r AS (
    SELECT m.id, m.status, m.text, coalesce(g.send_at, g.created_at) AS date, m.recipient,
           m.mailing_id, g.name AS mailing_name, m.code, m.description, m.response,
           m.segments, m.encoding, m.sender_id, m.flash, m.priority, m.validity_min, g.ping_url, g.reply_email, g.reply_from, g.reply_subject,
           m.updated_at AS status_date, count(*) OVER () AS total
    FROM messages m JOIN mailings g ON g.id = m.mailing_id
    WHERE m.account_id = $1 AND g.account_id = $1
      AND ($2::bigint[] IS NULL OR m.id = ANY($2))
      AND ($3::text[] IS NULL OR m.recipient = ANY($3))
      AND ($4::text[] IS NULL OR g.name = ANY($4))
      AND ($5::bigint[] IS NULL OR m.mailing_id = ANY($5))
      AND ($6::timestamptz IS NULL OR coalesce(g.send_at, g.created_at) >= $6)
      AND ($7::timestamptz IS NULL OR coalesce(g.send_at, g.created_at) < $7)
    ORDER BY CASE WHEN $8 = 'date' AND NOT $9 THEN coalesce(g.send_at, g.created_at) END,
             CASE WHEN $8 = 'date' AND $9 THEN coalesce(g.send_at, g.created_at) END DESC,
             CASE WHEN $8 = 'status' AND NOT $9 THEN m.status END,
             CASE WHEN $8 = 'status' AND $9 THEN m.status END DESC,
             CASE WHEN $8 = 'recipient' AND NOT $9 THEN m.recipient END,
             CASE WHEN $8 = 'recipient' AND $9 THEN m.recipient END DESC,
             CASE WHEN $9 THEN m.id END DESC, m.id
    LIMIT $10 OFFSET $11
)
SELECT count(*) AS size, coalesce(max(total), 0) AS total,
       coalesce(json_agg(CASE $12::text WHEN 'status' THEN /*json:status:$13*/
                                        ELSE /*json:sms:$13*/ END), '[]')::text AS list
FROM r LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object('seq', p.seq, 'state', p.state, 'code', p.code) ORDER BY p.seq) AS parts
    FROM parts p WHERE p.message_id = r.id AND $12::text = 'sms'
) part ON true;

-- name: api_replies
-- Messages from phones (MO) to this account, with the message they answer. $12: zone.
WITH r AS (
    SELECT o.id, o.text, o.received_at AS date, o.source AS recipient, o.message_id AS sms_id,
           m.mailing_id, g.name AS mailing_name, count(*) OVER () AS total
    FROM mo_messages o LEFT JOIN messages m ON m.id = o.message_id
    LEFT JOIN mailings g ON g.id = m.mailing_id
    WHERE o.account_id = $1
      AND ($2::bigint[] IS NULL OR o.id = ANY($2))
      AND ($3::text[] IS NULL OR o.source = ANY($3))
      AND ($4::text[] IS NULL OR g.name = ANY($4))
      AND ($5::bigint[] IS NULL OR m.mailing_id = ANY($5))
      AND ($6::timestamptz IS NULL OR o.received_at >= $6)
      AND ($7::timestamptz IS NULL OR o.received_at < $7)
    ORDER BY CASE WHEN $8 = 'date' AND NOT $9 THEN o.received_at END,
             CASE WHEN $8 = 'date' AND $9 THEN o.received_at END DESC,
             CASE WHEN $8 = 'recipient' AND NOT $9 THEN o.source END,
             CASE WHEN $8 = 'recipient' AND $9 THEN o.source END DESC,
             CASE WHEN $9 THEN o.id END DESC, o.id
    LIMIT $10 OFFSET $11
)
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(/*json:reply:$12*/), '[]')::text AS list
FROM r;

-- name: api_history
-- Every status a message had, oldest first: `wait` from its creation, then its events.
-- $5: zone.
WITH r AS (
    SELECT * FROM (
        SELECT m.id, 'wait' AS status, NULL AS code, 'scheduled' AS description,
               NULL AS response, m.created_at AS status_date, m.recipient, m.mailing_id, 0::bigint AS seq
        FROM messages m WHERE m.account_id = $1 AND m.id = ANY($2::bigint[])
        UNION ALL
        SELECT e.message_id, e.status, e.code, e.description, e.response, e.created_at, m.recipient,
               m.mailing_id, e.id
        FROM status_events e JOIN messages m ON m.id = e.message_id
        WHERE e.account_id = $1 AND e.message_id = ANY($2::bigint[])
    ) every
    ORDER BY id, seq
    LIMIT $3 OFFSET $4
)
SELECT count(*) AS size, count(*) AS total, coalesce(json_agg(/*json:status:$5*/), '[]')::text AS list
FROM r;

-- name: api_status_queue
-- The account's status FIFO: the oldest unread events, read once. $3: zone.
WITH taken AS (
    SELECT id FROM status_events WHERE account_id = $1 AND queued
    ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
), read AS (
    UPDATE status_events e SET queued = false FROM taken WHERE e.id = taken.id
    RETURNING e.id AS event_id, e.message_id AS id, e.status, e.code, e.description, e.response,
              e.created_at AS status_date
), r AS (
    SELECT read.*, m.recipient, m.mailing_id FROM read JOIN messages m ON m.id = read.id ORDER BY read.event_id
)
SELECT count(*) AS size, count(*) AS total, coalesce(json_agg(/*json:status:$3*/), '[]')::text AS list
FROM r;

-- name: api_mailings
-- $8: zone; $9: count each mailing's messages by status (`stats`).
WITH r AS (
    SELECT g.id, g.name, g.status, coalesce(g.send_at, g.created_at) AS date, g.messages,
           g.parts, g.source, g.created_at, g.ping_url, g.reply_email, g.reply_from, g.reply_subject,
           coalesce(g.text, first.text) AS text, first.sender_id AS sender,
           CASE WHEN $9 THEN (
               SELECT json_build_object('wait', count(*) FILTER (WHERE m.status = 'wait'),
                                        'on', count(*) FILTER (WHERE m.status = 'on'),
                                        'ok', count(*) FILTER (WHERE m.status = 'ok'),
                                        'ko', count(*) FILTER (WHERE m.status = 'ko'),
                                        'rep', count(*) FILTER (WHERE m.status = 'rep'),
                                        'no', count(*) FILTER (WHERE m.status = 'no'))
               FROM messages m WHERE m.mailing_id = g.id) END AS stats,
           count(*) OVER () AS total
    FROM mailings g
    LEFT JOIN LATERAL (SELECT m.text, m.sender_id FROM messages m WHERE m.mailing_id = g.id
                       ORDER BY m.id LIMIT 1) first ON true
    WHERE g.account_id = $1
      AND ($2::bigint[] IS NULL OR g.id = ANY($2))
      AND ($3::text[] IS NULL OR g.name = ANY($3))
    ORDER BY CASE WHEN $4 = 'date' AND NOT $5 THEN coalesce(g.send_at, g.created_at) END,
             CASE WHEN $4 = 'date' AND $5 THEN coalesce(g.send_at, g.created_at) END DESC,
             CASE WHEN $4 = 'name' AND NOT $5 THEN g.name END,
             CASE WHEN $4 = 'name' AND $5 THEN g.name END DESC,
             CASE WHEN $5 THEN g.id END DESC, g.id
    LIMIT $6 OFFSET $7
)
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(/*json:mailing:$8*/), '[]')::text AS list
FROM r;

-- name: api_stats
-- Counts by status of the account's messages, of some mailings ($2 ids, $3 names) or of
-- those created in [$4, $5) (each NULL: no bound), in one row, or with $6 ('day' or
-- 'month') one row per period of creation in zone $7, oldest first. `optout` counts the
-- recipients left out because they had opted out, `stops` the account's STOP replies in
-- that time (when no mailing is named). Mailings removed by the retention purge count
-- through the totals they left.
WITH g AS (
    SELECT id, report, CASE $6::text WHEN 'day' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM-DD')
                                     WHEN 'month' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM') END AS period
    FROM mailings
    WHERE account_id = $1
      AND ($2::bigint[] IS NULL OR id = ANY($2))
      AND ($3::text[] IS NULL OR name = ANY($3))
      AND ($4::timestamptz IS NULL OR created_at >= $4)
      AND ($5::timestamptz IS NULL OR created_at < $5)
), live AS (
    SELECT g.period,
           count(*) FILTER (WHERE m.status = 'wait') AS wait,
           count(*) FILTER (WHERE m.status = 'ok') AS ok,
           count(*) FILTER (WHERE m.status = 'on') AS "on",
           count(*) FILTER (WHERE m.status = 'no') AS "no",
           count(*) FILTER (WHERE m.status = 'ko') AS ko,
           count(*) FILTER (WHERE m.status = 'rep') AS rep,
           count(m.id) AS total
    FROM g LEFT JOIN messages m ON m.mailing_id = g.id
    GROUP BY g.period
), dropped AS (
    SELECT g.period, count(*) AS optout
    FROM g, jsonb_array_elements(g.report -> 'dropped') d
    WHERE d ->> 'reason' = 'opted_out'
    GROUP BY g.period
), kept AS (
    SELECT CASE $6::text WHEN 'day' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM-DD')
                         WHEN 'month' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM') END AS period,
           sum(wait) AS wait, sum(ok) AS ok, sum("on") AS "on", sum("no") AS "no", sum(ko) AS ko, sum(rep) AS rep,
           sum(optout) AS optout
    FROM mailing_totals
    WHERE account_id = $1
      AND ($2::bigint[] IS NULL OR mailing_id = ANY($2))
      AND ($3::text[] IS NULL OR name = ANY($3))
      AND ($4::timestamptz IS NULL OR created_at >= $4)
      AND ($5::timestamptz IS NULL OR created_at < $5)
    GROUP BY 1
), stopped AS (
    SELECT CASE $6::text WHEN 'day' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM-DD')
                         WHEN 'month' THEN to_char(created_at AT TIME ZONE $7, 'YYYY-MM') END AS period,
           count(*) AS stops
    FROM opt_out_events
    WHERE account_id = $1 AND opted_out AND source = 'reply' AND $2::bigint[] IS NULL AND $3::text[] IS NULL
      AND ($4::timestamptz IS NULL OR created_at >= $4)
      AND ($5::timestamptz IS NULL OR created_at < $5)
    GROUP BY 1
), periods AS (
    SELECT period FROM live UNION SELECT period FROM kept UNION SELECT period FROM stopped
    UNION SELECT NULL WHERE $6::text IS NULL
)
SELECT (coalesce(live.wait, 0) + coalesce(kept.wait, 0))::bigint AS wait,
       (coalesce(live.ok, 0) + coalesce(kept.ok, 0))::bigint AS ok,
       (coalesce(live."on", 0) + coalesce(kept."on", 0))::bigint AS "on",
       (coalesce(live."no", 0) + coalesce(kept."no", 0))::bigint AS "no",
       (coalesce(live.ko, 0) + coalesce(kept.ko, 0))::bigint AS ko,
       (coalesce(live.rep, 0) + coalesce(kept.rep, 0))::bigint AS rep,
       (coalesce(dropped.optout, 0) + coalesce(kept.optout, 0))::bigint AS optout,
       (coalesce(live.total, 0) + coalesce(kept.wait + kept.ok + kept."on" + kept."no" + kept.ko + kept.rep, 0))::bigint
           AS total,
       coalesce(stopped.stops, 0)::bigint AS stops,
       p.period
FROM periods p
LEFT JOIN live ON live.period IS NOT DISTINCT FROM p.period
LEFT JOIN dropped ON dropped.period IS NOT DISTINCT FROM p.period
LEFT JOIN kept ON kept.period IS NOT DISTINCT FROM p.period
LEFT JOIN stopped ON stopped.period IS NOT DISTINCT FROM p.period
ORDER BY p.period;

-- name: queue_state
SELECT * FROM queue_state_now();

-- name: expired_tally
-- Messages ended unsent so far (the sequence every statement that expires some counts in).
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM messages_expired_tally;

-- name: message_counts
-- Messages by status, for /metrics: counted, not estimated, so a scrape every 15 s or more.
SELECT status, count(*) AS n FROM messages GROUP BY status;

-- name: monitor_mailings
-- The most recent mailings with their messages counted by status ($1: an account, or
-- NULL for every account).
SELECT g.id, g.name, a.code AS account, g.status, g.source, g.messages, g.created_at, g.send_at,
       count(*) FILTER (WHERE m.status = 'wait') AS wait,
       count(*) FILTER (WHERE m.status = 'on') AS "on",
       count(*) FILTER (WHERE m.status = 'ok') AS ok,
       count(*) FILTER (WHERE m.status = 'ko') AS ko,
       count(*) FILTER (WHERE m.status = 'rep') AS rep,
       count(*) FILTER (WHERE m.status = 'no') AS "no"
FROM (SELECT * FROM mailings WHERE $1::bigint IS NULL OR account_id = $1 ORDER BY id DESC LIMIT $2) g
JOIN accounts a ON a.id = g.account_id
LEFT JOIN messages m ON m.mailing_id = g.id
GROUP BY g.id, g.name, a.code, g.status, g.source, g.messages, g.created_at, g.send_at
ORDER BY g.id DESC;

-- name: status_version
-- What changes whenever one of these messages changes: every update writes a new row
-- version with a newer transaction id (xmin), so their sum grows. A status read of the
-- same messages with the same version would answer the same.
SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
FROM messages WHERE account_id = $1 AND mailing_id = ANY($2::bigint[]);
