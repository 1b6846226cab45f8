-- Named queries of the store: each starts with a `-- name:` line.

-- name: account_insert
INSERT INTO accounts (code, name, senders, smtp_password, ftp_password, api_secret, country,
                      timezone, international, mode, sender_id, reply_email, ping_url,
                      max_messages, tps, submission_report)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING *;

-- name: account_by_code
SELECT * FROM accounts WHERE lower(code) = lower($1);

-- name: account_list
SELECT a.*, (SELECT count(*) FROM mailings m WHERE m.account_id = a.id) AS mailings
FROM accounts a ORDER BY lower(a.code);

-- name: account_update
UPDATE accounts SET name = $2, senders = $3, smtp_password = $4, ftp_password = $5,
       api_secret = $6, country = $7, timezone = $8, international = $9, mode = $10,
       sender_id = $11, reply_email = $12, ping_url = $13, max_messages = $14, tps = $15,
       submission_report = $16, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: account_mailing_count
SELECT count(*) FROM mailings WHERE account_id = $1;

-- name: account_delete
DELETE FROM accounts WHERE id = $1;

-- name: lock_submission
-- Serialises submissions of one source reference, so that a duplicate is always seen.
SELECT pg_advisory_xact_lock(hashtextextended($1, 0));

-- name: recent_mailing
SELECT id, messages, parts FROM mailings
WHERE account_id = $1 AND source_ref = $2 AND created_at > now() - $3::interval
ORDER BY created_at DESC LIMIT 1;

-- name: opt_outs
SELECT recipient FROM opt_outs WHERE account_id = $1;

-- name: mailing_insert
-- The dispatchers' wake-up rides along; it is delivered at commit.
INSERT INTO mailings (account_id, source, source_ref, send_at, messages, parts, report, name, ping_url)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM (SELECT pg_notify('ecosms_work', '')) AS wake
RETURNING id;

-- name: messages_insert
-- A small mailing in one statement; large ones go by COPY.
INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, line, due_at)
SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::smallint[], $7::integer[],
                             $8::timestamptz[]);

-- name: claim_due
-- See the function in 0006: oldest due work first, shared by SKIP LOCKED.
SELECT * FROM claim_due($1, $2, $3, $4);

-- name: own_resource
SELECT pg_try_advisory_lock(hashtextextended('ecosms:' || $1, 0));

-- name: worker_register
INSERT INTO workers (key, host, pid) VALUES ($1, $2, $3);

-- name: worker_beat
UPDATE workers SET heartbeat_at = now() WHERE key = $1;

-- name: link_report
-- A link as its daemon sees it now ($6: bound or not; bound_since is kept while bound).
INSERT INTO links (name, owner, routes, tps, window_size, bound_since, tps_now, in_flight, updated_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7, $8, now())
ON CONFLICT (name) DO UPDATE
SET owner = $2, routes = $3, tps = $4, window_size = $5,
    bound_since = CASE WHEN NOT $6 THEN NULL
                       WHEN links.owner = $2 AND links.bound_since IS NOT NULL THEN links.bound_since
                       ELSE now() END,
    tps_now = $7, in_flight = $8, updated_at = now()
WHERE links.owner = $2 OR links.owner IS NULL OR $6
   OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.key = links.owner);

-- name: bound_links
-- Links bound now by a daemon that is alive (its heartbeat is recent).
SELECT l.name, l.routes FROM links l JOIN workers w ON w.key = l.owner
WHERE l.bound_since IS NOT NULL AND w.heartbeat_at > now() - $1::interval;

-- name: cluster_daemons
SELECT key, host, pid, started_at, heartbeat_at FROM workers ORDER BY started_at;

-- name: cluster_links
-- Every link with its daemon (if alive) and the messages a crash left in doubt on it.
SELECT l.name, l.owner, w.host AS owner_host, w.pid AS owner_pid,
       CASE WHEN w.heartbeat_at > now() - $1::interval THEN l.bound_since END AS bound_since,
       l.tps, l.tps_now, l.window_size, l.in_flight, l.routes,
       (SELECT count(*) FROM messages m WHERE m.code = 'in_doubt' AND m.smsc = l.name) AS in_doubt
FROM links l LEFT JOIN workers w ON w.key = l.owner
ORDER BY l.name;

-- name: worker_lock
SELECT pg_try_advisory_lock($1);

-- name: workers_reap
-- Workers whose advisory lock nobody holds are dead: their links are no longer bound,
-- their claims go back to the queue, and what they had started writing is settled by the
-- in-doubt policy ($1: 'unknown' makes it `no`, never a duplicate SMS; 'resend' sends it
-- again, never a loss).
WITH dead AS (
    DELETE FROM workers w
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((l.classid::bigint << 32) | l.objid::bigint) = w.key
    )
    RETURNING key
), unbound AS (
    UPDATE links SET owner = NULL, bound_since = NULL, in_flight = 0, tps_now = 0, updated_at = now()
    FROM dead WHERE links.owner = dead.key
), returned AS (
    UPDATE messages m
    SET state = 'queued', claimed_by = NULL, attempts = greatest(m.attempts - 1, 0), updated_at = now()
    FROM dead
    WHERE m.claimed_by = dead.key
      AND (m.state = 'claimed' OR (m.state = 'submitting' AND $1 = 'resend'))
    RETURNING m.id, m.state
), forgotten AS (
    DELETE FROM parts p USING returned r WHERE p.message_id = r.id
), doubtful AS (
    UPDATE messages m
    SET state = 'done', status = 'no', code = 'in_doubt',
        description = 'written to the SMSC before a crash, no answer: not resent', updated_at = now()
    FROM dead
    WHERE m.claimed_by = dead.key AND m.state = 'submitting' AND $1 = 'unknown'
    RETURNING m.id
)
SELECT (SELECT count(*) FROM returned) AS returned, (SELECT count(*) FROM doubtful) AS in_doubt;

-- name: queue_view
-- What waits, per mailing, like mailq: counts by status, next attempt, last error.
SELECT g.id AS mailing_id, a.code AS account, g.source, g.status AS mailing_status,
       g.created_at, g.send_at, g.messages,
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
  AND g.status = 'created'
  AND EXISTS (SELECT 1 FROM messages w WHERE w.mailing_id = g.id
              AND w.state IN ('queued', 'claimed', 'submitting'))
GROUP BY g.id, a.code
ORDER BY g.id;

-- name: ping
SELECT 1;

-- name: lock_smsc_parts
-- Receipts and answers of one SMSC, one transaction at a time (the function in 0006).
SELECT lock_smsc_parts($1);

-- name: cancel_mailing
-- What is not yet being submitted is canceled, atomically against the dispatcher (which
-- only writes messages it moved from 'claimed' to 'submitting').
WITH c AS (
    UPDATE messages SET state = 'canceled', status = 'ko', code = 'canceled',
           description = 'canceled by request', updated_at = now()
    WHERE mailing_id = $1 AND state IN ('queued', 'claimed')
    RETURNING id
)
UPDATE mailings
SET status = CASE WHEN (SELECT count(*) FROM c) = mailings.messages THEN 'canceled' ELSE 'interrupted' END
WHERE id = $1 AND status = 'created' AND (SELECT count(*) FROM c) > 0
RETURNING status, (SELECT count(*) FROM c) AS canceled;

-- name: mailing_by_id
SELECT g.*, a.code AS account FROM mailings g JOIN accounts a ON a.id = g.account_id WHERE g.id = $1;

-- name: return_unsent
-- Claimed (and perhaps marked), but not one PDU written: back to the queue as if never
-- claimed.
WITH gone AS (DELETE FROM parts WHERE message_id = ANY($1::bigint[]))
UPDATE messages SET state = 'queued', claimed_by = NULL, smsc = NULL,
       attempts = greatest(attempts - 1, 0), updated_at = now()
WHERE id = ANY($1::bigint[]) AND state IN ('claimed', 'submitting');

-- name: record_submissions
-- What the SMSC answered, and the next messages marked: see the function in 0006.
SELECT record_submissions($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: settle_messages
SELECT settle_messages($1);

-- name: apply_receipts
-- Final part states by SMSC message id; a part already final is left alone (duplicate
-- receipts change nothing). Returns what matched: the rest waits in receipts_pending.
WITH r AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS r(smsc_id, state, code)
)
UPDATE parts p SET state = r.state, code = r.code, done_at = now()
FROM r
WHERE p.smsc = $1 AND p.smsc_message_id = r.smsc_id AND p.state = 'submitted'
RETURNING p.message_id, p.smsc_message_id;

-- name: known_parts
SELECT smsc_message_id FROM parts WHERE smsc = $1 AND smsc_message_id = ANY($2::text[]);

-- name: keep_pending_receipts
INSERT INTO receipts_pending (smsc, smsc_message_id, state, code)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
ON CONFLICT (smsc, smsc_message_id) DO NOTHING;

-- name: expire
-- Messages that could not leave within the maximum age ($1, counted from when they became
-- due) end `ko` (expired); those submitted without a final receipt within the wait ($2)
-- end `no`.
WITH unsent AS (
    UPDATE messages SET state = 'done', status = 'ko', code = 'expired',
           description = 'not sent within the maximum age', updated_at = now()
    WHERE state = 'queued' AND due_at < now() - $1::interval
    RETURNING 1
), silent AS (
    UPDATE messages SET state = 'done', status = 'no', code = 'no_receipt',
           description = 'no delivery receipt within the wait', updated_at = now()
    WHERE state = 'submitted' AND updated_at < now() - $2::interval
    RETURNING 1
)
SELECT (SELECT count(*) FROM unsent) AS expired, (SELECT count(*) FROM silent) AS silent;

-- name: record_reply
-- A message from a phone: matched to the latest message sent to that number, preferring
-- the account whose sender id it answers; stored; that message becomes `rep`.
WITH target AS (
    SELECT m.id, m.account_id, m.text FROM messages m
    WHERE m.recipient = $2 AND m.state IN ('submitted', 'done') AND m.status IN ('on', 'ok', 'no', 'rep')
    ORDER BY EXISTS (SELECT 1 FROM accounts a WHERE a.id = m.account_id AND a.sender_id = $3) DESC,
             m.id DESC
    LIMIT 1
), stored AS (
    INSERT INTO mo_messages (smsc, source, destination, text, account_id, message_id)
    SELECT $1, $2, $3, $4, target.account_id, target.id
    FROM (SELECT 1) AS one LEFT JOIN target ON true
    RETURNING account_id, message_id
), replied AS (
    UPDATE messages SET status = 'rep', response = $4, code = NULL, description = 'the recipient replied',
           updated_at = now()
    FROM target WHERE messages.id = target.id
), opted AS (
    INSERT INTO opt_outs (account_id, recipient, reason)
    SELECT target.account_id, $2, 'reply: ' || left($4, 40) FROM target WHERE $5
    ON CONFLICT DO NOTHING
)
SELECT target.id AS message_id, target.text, a.code AS account, a.reply_email
FROM target JOIN accounts a ON a.id = target.account_id;

-- name: claim_pings
-- Due pings, leased: a daemon that dies mid-call leaves them to be taken again when the
-- lease ends; several daemons take different ones.
WITH due AS (
    SELECT id FROM pings WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE pings p SET due_at = now() + $2::interval
FROM due
WHERE p.id = due.id
RETURNING p.id, p.message_id, p.attempts, p.created_at, p.url;

-- name: pings_done
DELETE FROM pings WHERE id = ANY($1::bigint[]);

-- name: pings_failed
-- Tried again after the backoff, unless the first call is older than the retry period.
WITH abandoned AS (
    DELETE FROM pings WHERE id = ANY($1::bigint[]) AND created_at < now() - $3::interval
    RETURNING id
), retried AS (
    UPDATE pings SET attempts = attempts + 1, due_at = now() + $2::interval
    WHERE id = ANY($1::bigint[]) AND created_at >= now() - $3::interval
)
SELECT count(*) FROM abandoned;

-- name: notification_backlog
-- Outgoing mail waiting or given up, and ping calls waiting.
SELECT count(*) FILTER (WHERE given_up_at IS NULL) AS mail,
       count(*) FILTER (WHERE given_up_at IS NOT NULL) AS mail_failed,
       (SELECT count(*) FROM pings) AS pings
FROM mail_out;

-- name: queue_mail
INSERT INTO mail_out (recipient, subject, body) VALUES ($1, $2, $3);

-- name: claim_mail
-- Due mail, leased like pings: a daemon that dies while sending leaves it to another.
WITH due AS (
    SELECT id FROM mail_out WHERE due_at <= now() AND given_up_at IS NULL
    ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE mail_out o SET due_at = now() + $2::interval
FROM due
WHERE o.id = due.id
RETURNING o.id, o.recipient, o.subject, o.body, o.attempts;

-- name: mail_sent
DELETE FROM mail_out WHERE id = $1;

-- name: mail_failed
-- Tried again after the backoff ($2), unless it has been tried for the retry period ($3):
-- then given up. Returns whether it was given up.
UPDATE mail_out SET attempts = attempts + 1, last_error = $4,
       due_at = now() + $2::interval,
       given_up_at = CASE WHEN created_at < now() - $3::interval THEN now() END
WHERE id = $1
RETURNING given_up_at IS NOT NULL AS given_up;

-- name: purge
-- The retention horizon ($1: an interval), a batch at a time ($2 mailings; NULL: all, for a
-- dry run in a transaction rolled back): mailings created before it with nothing under way
-- leave their totals and go with their messages (their parts go by cascade) and events;
-- replies, ping calls and outgoing mail older than the horizon go too (a batch of each).
WITH old AS (
    SELECT g.id FROM mailings g
    WHERE g.created_at < now() - $1::interval
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id
                      AND m.state NOT IN ('done', 'canceled', 'submitted'))
    ORDER BY g.id LIMIT $2
    FOR UPDATE SKIP LOCKED
), totals AS (
    INSERT INTO mailing_totals (mailing_id, account_id, name, created_at, wait, "on", ok, ko, rep, "no", optout)
    SELECT g.id, g.account_id, g.name, g.created_at,
           count(m.id) FILTER (WHERE m.status = 'wait'), count(m.id) FILTER (WHERE m.status = 'on'),
           count(m.id) FILTER (WHERE m.status = 'ok'), count(m.id) FILTER (WHERE m.status = 'ko'),
           count(m.id) FILTER (WHERE m.status = 'rep'), count(m.id) FILTER (WHERE m.status = 'no'),
           (SELECT count(*) FROM jsonb_array_elements(g.report -> 'dropped') d WHERE d ->> 'reason' = 'opted_out')
    FROM old JOIN mailings g ON g.id = old.id LEFT JOIN messages m ON m.mailing_id = g.id
    GROUP BY g.id
), events AS (
    DELETE FROM status_events e USING messages m, old
    WHERE m.mailing_id = old.id AND e.message_id = m.id
    RETURNING 1
), messages_gone AS (
    DELETE FROM messages m USING old WHERE m.mailing_id = old.id RETURNING m.id
), pings_gone AS (
    DELETE FROM pings WHERE id IN (SELECT id FROM pings WHERE created_at < now() - $1::interval
                                   OR message_id IN (SELECT id FROM messages_gone) LIMIT 10000)
    RETURNING 1
), mailings_gone AS (
    DELETE FROM mailings g USING old WHERE g.id = old.id RETURNING 1
), replies_gone AS (
    DELETE FROM mo_messages WHERE id IN (SELECT id FROM mo_messages WHERE received_at < now() - $1::interval
                                         ORDER BY received_at LIMIT coalesce($2 * 1000, 2147483647))
    RETURNING 1
), mail_gone AS (
    DELETE FROM mail_out WHERE id IN (SELECT id FROM mail_out WHERE created_at < now() - $1::interval
                                      LIMIT coalesce($2 * 1000, 2147483647))
    RETURNING 1
), early_gone AS (
    DELETE FROM receipts_pending WHERE received_at < now() - $1::interval RETURNING 1
)
SELECT (SELECT count(*) FROM mailings_gone) AS mailings, (SELECT count(*) FROM messages_gone) AS messages,
       (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM replies_gone) AS replies,
       (SELECT count(*) FROM pings_gone) AS pings, (SELECT count(*) FROM mail_gone) AS mails,
       (SELECT count(*) FROM early_gone) AS early_receipts;

-- name: end_mailings
-- A mailing whose every message is final has ended (one canceled while sending stays
-- `interrupted`).
UPDATE mailings g SET status = 'ended'
WHERE g.status = 'created'
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.state NOT IN ('done', 'canceled'));

-- HTTP API reads. Every one is scoped to the account ($1); a NULL filter is no filter
-- (the pool plans each call with its values, so only the filters given cost anything).
-- $sort is one of the listed keys, $desc its direction. Each returns one row: `size`,
-- `total` (the count before limit and offset) and `list`, the JSON array of the rows
-- with every property of the resource under the seed's names, in that order, and dates in
-- the account's time zone ($zone). PostgreSQL writes the JSON, so that a read of 2,000
-- statuses costs the daemon next to nothing when all properties are asked (the default).

-- name: api_messages
-- Messages sent (MT), as the sms resource ($12 = 'sms', with the state of each part as
-- its receipt said) or as current statuses ($12 = 'status'). $13: zone.
WITH r AS (
    SELECT m.id, m.status, m.text, coalesce(g.send_at, g.created_at) AS date, m.recipient,
           m.mailing_id, g.name AS mailing_name, m.code, m.description, m.response,
           m.segments, m.encoding, m.updated_at AS status_date, count(*) OVER () AS total
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
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(CASE $12::text
    WHEN 'status' THEN api_status(id, status, recipient, mailing_id, status_date, code, description, response, $13)
    ELSE json_build_object(
        'id', id, 'status', status, 'text', text,
        'date', to_char(date AT TIME ZONE $13, 'YYYY-MM-DD HH24:MI:SS'), 'recipient', recipient,
        'mailingId', mailing_id, 'mailingName', mailing_name, 'code', code,
        'description', description, 'response', response, 'segments', segments, 'encoding', encoding,
        'parts', (SELECT json_agg(json_build_object('seq', p.seq, 'state', p.state, 'code', p.code) ORDER BY p.seq)
                  FROM parts p WHERE p.message_id = r.id))
    END), '[]')::text AS list
FROM r;

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
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(json_build_object(
    'id', id, 'text', text, 'date', to_char(date AT TIME ZONE $12, 'YYYY-MM-DD HH24:MI:SS'),
    'recipient', recipient, 'smsId', sms_id, 'mailingId', mailing_id, 'mailingName', mailing_name)), '[]')::text AS list
FROM r;

-- name: api_history
-- Every status a message had, oldest first: `wait` from its creation, then its events.
-- $5: zone.
WITH h AS (
    SELECT * FROM (
        SELECT m.id AS sms_id, 'wait' AS status, NULL AS code, 'scheduled' AS description,
               NULL AS response, m.created_at AS date, m.recipient, m.mailing_id, 0::bigint AS seq
        FROM messages m WHERE m.account_id = $1 AND m.id = ANY($2::bigint[])
        UNION ALL
        SELECT e.message_id, e.status, e.code, e.description, e.response, e.created_at, m.recipient,
               m.mailing_id, e.id
        FROM status_events e JOIN messages m ON m.id = e.message_id
        WHERE e.account_id = $1 AND e.message_id = ANY($2::bigint[])
    ) every
    ORDER BY sms_id, seq
    LIMIT $3 OFFSET $4
)
SELECT count(*) AS size, count(*) AS total,
       coalesce(json_agg(api_status(sms_id, status, recipient, mailing_id, date, code, description, response, $5)),
                '[]')::text AS list
FROM h;

-- name: api_status_queue
-- The account's status FIFO: the oldest unread events, read once. $3: zone.
WITH taken AS (
    SELECT id FROM status_events WHERE account_id = $1 AND queued
    ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
), read AS (
    UPDATE status_events e SET queued = false FROM taken WHERE e.id = taken.id
    RETURNING e.id, e.message_id, e.status, e.code, e.description, e.response, e.created_at
), q AS (
    SELECT r.*, m.recipient, m.mailing_id FROM read r JOIN messages m ON m.id = r.message_id ORDER BY r.id
)
SELECT count(*) AS size, count(*) AS total,
       coalesce(json_agg(api_status(message_id, status, recipient, mailing_id, created_at, code, description,
                                    response, $3)), '[]')::text AS list
FROM q;

-- name: api_mailings
-- $8: zone.
WITH r AS (
    SELECT g.id, g.name, g.status, coalesce(g.send_at, g.created_at) AS date, g.messages,
           g.parts, g.source, g.created_at,
           (SELECT m.text FROM messages m WHERE m.mailing_id = g.id ORDER BY m.id LIMIT 1) AS text,
           count(*) OVER () AS total
    FROM mailings g
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
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(json_build_object(
    'id', id, 'name', name, 'status', status, 'text', text,
    'date', to_char(date AT TIME ZONE $8, 'YYYY-MM-DD HH24:MI:SS'), 'messages', messages,
    'parts', parts, 'source', source,
    'createdAt', to_char(created_at AT TIME ZONE $8, 'YYYY-MM-DD HH24:MI:SS'))), '[]')::text AS list
FROM r;

-- name: api_stats
-- Counts by status of the account's messages, of some mailings or of a month's; `optout`
-- counts the recipients left out because they had opted out. Mailings removed by the
-- retention purge count through the totals they left.
WITH g AS (
    SELECT id, report FROM mailings
    WHERE account_id = $1
      AND ($2::bigint[] IS NULL OR id = ANY($2))
      AND ($3::text[] IS NULL OR name = ANY($3))
      AND ($4::timestamptz IS NULL OR (created_at >= $4 AND created_at < $5))
), live AS (
    SELECT count(*) FILTER (WHERE m.status = 'wait') AS wait,
           count(*) FILTER (WHERE m.status = 'ok') AS ok,
           count(*) FILTER (WHERE m.status = 'on') AS "on",
           count(*) FILTER (WHERE m.status = 'no') AS "no",
           count(*) FILTER (WHERE m.status = 'ko') AS ko,
           count(*) FILTER (WHERE m.status = 'rep') AS rep,
           (SELECT count(*) FROM g, jsonb_array_elements(g.report -> 'dropped') d
            WHERE d ->> 'reason' = 'opted_out') AS optout,
           count(m.id) AS total
    FROM g JOIN messages m ON m.mailing_id = g.id
), kept AS (
    SELECT coalesce(sum(wait), 0) AS wait, coalesce(sum(ok), 0) AS ok, coalesce(sum("on"), 0) AS "on",
           coalesce(sum("no"), 0) AS "no", coalesce(sum(ko), 0) AS ko, coalesce(sum(rep), 0) AS rep,
           coalesce(sum(optout), 0) AS optout
    FROM mailing_totals
    WHERE account_id = $1
      AND ($2::bigint[] IS NULL OR mailing_id = ANY($2))
      AND ($3::text[] IS NULL OR name = ANY($3))
      AND ($4::timestamptz IS NULL OR (created_at >= $4 AND created_at < $5))
)
SELECT (live.wait + kept.wait)::bigint AS wait, (live.ok + kept.ok)::bigint AS ok,
       (live."on" + kept."on")::bigint AS "on", (live."no" + kept."no")::bigint AS "no",
       (live.ko + kept.ko)::bigint AS ko, (live.rep + kept.rep)::bigint AS rep,
       (live.optout + kept.optout)::bigint AS optout,
       (live.total + kept.wait + kept.ok + kept."on" + kept."no" + kept.ko + kept.rep)::bigint AS total
FROM live, kept;

-- name: api_mailing_of
SELECT id FROM mailings WHERE account_id = $1 AND id = $2;

-- name: setting
-- A value shared by every daemon, created by the first that needs it.
WITH created AS (
    INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value
)
SELECT value FROM created UNION ALL SELECT value FROM settings WHERE name = $1 LIMIT 1;

-- name: queue_state
-- The queue: its depth and how late its oldest due message is (the partial index only).
SELECT count(*) AS queued, coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0)
           AS oldest_s
FROM messages WHERE state = 'queued';

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

-- name: monitor_throughput
-- Messages submitted per minute over the last hour ($1: an account, or NULL).
SELECT date_trunc('minute', created_at) AS minute, count(*) AS sent
FROM status_events
WHERE status = 'on' AND created_at > now() - interval '1 hour' AND ($1::bigint IS NULL OR account_id = $1)
GROUP BY 1 ORDER BY 1;

-- name: cancel_messages
-- Messages of the account ($1) not yet being submitted, by id ($2): canceled, as a
-- mailing's are; how many.
WITH c AS (
    UPDATE messages SET state = 'canceled', status = 'ko', code = 'canceled',
           description = 'canceled by request', updated_at = now()
    WHERE account_id = $1 AND id = ANY($2::bigint[]) AND state IN ('queued', 'claimed')
    RETURNING 1
)
SELECT count(*) FROM c;

-- name: status_version
-- What changes whenever one of these messages changes: every update writes a new row
-- version with a newer transaction id (xmin), so their sum grows. A status read of the
-- same messages with the same version would answer the same.
SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
FROM messages WHERE account_id = $1 AND mailing_id = ANY($2::bigint[]);
