-- Named queries of store/mailings.py: each starts with a `-- name:` line.

-- name: lock_submission
-- Serialises submissions of one source reference, so that a duplicate is always seen.
SELECT pg_advisory_xact_lock(hashtextextended($1, 0));

-- name: recent_mailing
SELECT id, messages, parts, request_hash FROM mailings
WHERE account_id = $1 AND source_ref = $2 AND created_at > now() - $3::interval
ORDER BY created_at DESC LIMIT 1;

-- name: mailing_insert
-- The dispatchers' wake-up rides along; it is delivered at commit.
INSERT INTO mailings (account_id, source, source_ref, send_at, messages, parts, report, name, ping_url,
                      reply_email, reply_from, reply_subject, request_hash, text)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM (SELECT pg_notify('ecosms_work', '')) AS wake
RETURNING id;

-- name: mailings_insert_many
-- A group commit: several mailings and all their messages in one statement, with one
-- wake-up for the dispatchers (delivered at commit). Mailings are given by arrays
-- ($1-$13, one element each) and numbered by their position; messages by arrays ($14-$27)
-- whose first ($14) is the position of their mailing, each due as in messages_insert.
-- Their ids are taken first, so that each message finds its mailing's. Returns per
-- mailing its position, id and, where a time zone is given ($28, one per mailing), its
-- messages as an sms create answers them.
WITH k AS (
    SELECT k, nextval(pg_get_serial_sequence('mailings', 'id')) AS id
    FROM generate_series(1, cardinality($1::bigint[])) AS k
), g AS (
    INSERT INTO mailings (id, account_id, source, source_ref, send_at, messages, parts, report, name, ping_url,
                          reply_email, reply_from, reply_subject, text)
    OVERRIDING SYSTEM VALUE
    SELECT k.id, x.account_id, x.source, x.source_ref, x.send_at, x.messages, x.parts, x.report, x.name, x.ping_url,
           x.reply_email, x.reply_from, x.reply_subject, x.text
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::integer[], $6::integer[],
                $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
         WITH ORDINALITY AS x(account_id, source, source_ref, send_at, messages, parts, report, name, ping_url,
                              reply_email, reply_from, reply_subject, text, k)
    JOIN k USING (k) CROSS JOIN (SELECT pg_notify('ecosms_work', '')) AS wake
    RETURNING id, name, send_at, created_at, ping_url, reply_email, reply_from, reply_subject
), m AS (
    INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, line, due_at, sender_id, flash,
                          priority, validity_min, zones)
    SELECT k.id, y.account_id, y.recipient, y.text, y.encoding, y.segments, y.line,
           greatest(coalesce(y.send_at, now()), now()) + make_interval(secs => y.after_s), y.sender_id, y.flash,
           y.priority, y.validity_min, y.zones
    FROM unnest($14::integer[], $15::bigint[], $16::text[], $17::text[], $18::text[], $19::smallint[],
                $20::integer[], $21::timestamptz[], $22::integer[], $23::text[], $24::boolean[], $25::smallint[],
                $26::integer[], $27::text[])
         AS y(k, account_id, recipient, text, encoding, segments, line, send_at, after_s, sender_id, flash, priority,
              validity_min, zones)
    JOIN k USING (k)
    RETURNING id, mailing_id, status, text, recipient, code, description, response, segments, encoding,
              sender_id, flash
)
SELECT k.k, k.id, CASE WHEN ($28::text[])[k.k] IS NOT NULL THEN (
    SELECT json_agg(/*json:sms_created:r.zone*/ ORDER BY r.id)::text
    FROM (SELECT m.*, coalesce(g.send_at, g.created_at) AS date, g.name AS mailing_name, g.ping_url,
                 g.reply_email, g.reply_from, g.reply_subject, ($28::text[])[k.k] AS zone
          FROM m JOIN g ON g.id = m.mailing_id WHERE m.mailing_id = k.id) r,
         (SELECT NULL::json AS parts) part) END AS items
FROM k ORDER BY k.k;

-- name: messages_insert
-- A small mailing in one statement; large ones go by COPY. A message is due `after_s`
-- ($9, its packet's spread) after the later of its date ($8, NULL: none) and now: the
-- database's clock, so that a daemon whose clock jumped neither holds nor hurries it.
INSERT INTO messages (mailing_id, account_id, recipient, text, encoding, segments, line, due_at, sender_id, flash,
                      priority, validity_min, zones)
SELECT $1, $2, recipient, text, encoding, segments, line,
       greatest(coalesce(send_at, now()), now()) + make_interval(secs => after_s), sender_id, flash, priority,
       validity_min, zones
FROM unnest($3::text[], $4::text[], $5::text[], $6::smallint[], $7::integer[], $8::timestamptz[], $9::integer[],
            $10::text[], $11::boolean[], $12::smallint[], $13::integer[], $14::text[])
     AS y(recipient, text, encoding, segments, line, send_at, after_s, sender_id, flash, priority, validity_min,
          zones);

-- name: database_now
-- The database's clock (the transaction's start), for the messages COPY writes.
SELECT now();

-- name: cancel_mailing
-- What is not yet being submitted is canceled, atomically against the dispatcher (which
-- only writes messages it moved from 'claimed' to 'submitting').
WITH c AS (
    UPDATE messages SET state = 'canceled', status = 'ko', code = 'canceled',
           description = 'canceled by request', updated_at = now()
    WHERE mailing_id = $1 AND state IN ('queued', 'paused', 'claimed')
    RETURNING id
)
UPDATE mailings
SET status = CASE WHEN (SELECT count(*) FROM c) = mailings.messages THEN 'canceled' ELSE 'interrupted' END
WHERE id = $1 AND status IN ('created', 'paused') AND (SELECT count(*) FROM c) > 0
RETURNING status, (SELECT count(*) FROM c) AS canceled;

-- name: mailing_owner
SELECT g.id, g.account_id, a.code AS account FROM mailings g JOIN accounts a ON a.id = g.account_id WHERE g.id = $1;

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
-- `interrupted`). An SMPP session's mailing may grow until its day (UTC) is over.
-- Each is returned once, with its messages by status, for its canonical log line.
UPDATE mailings g SET status = 'ended'
WHERE g.status = 'created'
  AND (g.source <> 'smpp' OR (g.created_at AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date)
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.state NOT IN ('done', 'canceled'))
RETURNING g.id, (SELECT a.code FROM accounts a WHERE a.id = g.account_id) AS account, g.source,
          extract(epoch FROM now() - g.created_at)::float8 AS duration_s,
          (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}')::text
           FROM (SELECT m.status, count(*) AS n FROM messages m WHERE m.mailing_id = g.id GROUP BY m.status) s)
              AS statuses;

-- name: api_mailing_of
SELECT id FROM mailings WHERE account_id = $1 AND id = $2;

-- name: cancel_messages
-- Messages of the account ($1) not yet being submitted, by id ($2): canceled, as a
-- mailing's are; how many.
WITH c AS (
    UPDATE messages SET state = 'canceled', status = 'ko', code = 'canceled',
           description = 'canceled by request', updated_at = now()
    WHERE account_id = $1 AND id = ANY($2::bigint[]) AND state IN ('queued', 'paused', 'claimed')
    RETURNING 1
)
SELECT count(*) FROM c;

-- name: lock_mailings_to_update
-- The account's mailings an update names (ids $2, names $3; NULL: any), locked until it
-- commits.
SELECT id, status FROM mailings
WHERE account_id = $1 AND ($2::bigint[] IS NULL OR id = ANY($2)) AND ($3::text[] IS NULL OR name = ANY($3))
ORDER BY id
FOR UPDATE;

-- name: written_messages
-- Per mailing, its messages no longer waiting: locked first, so that a dispatcher taking
-- some now is waited for (and skips them from then on).
WITH locked AS (SELECT id FROM messages WHERE mailing_id = ANY($1) FOR UPDATE)
SELECT m.mailing_id, count(*) AS written
FROM messages m JOIN locked USING (id)
WHERE m.state <> 'queued'
GROUP BY m.mailing_id ORDER BY m.mailing_id;

-- name: update_mailings
-- A new name ($2, NULL: kept) and, with $3, a new date ($4) for mailings whose messages all
-- wait: they are due at the later of it and now, and dispatchers are woken for them.
WITH g AS (
    UPDATE mailings SET name = coalesce($2, name), send_at = CASE WHEN $3 THEN $4 ELSE send_at END
    WHERE id = ANY($1)
    RETURNING id
), m AS (
    UPDATE messages SET due_at = greatest($4, now()), updated_at = now()
    WHERE $3 AND mailing_id = ANY($1) AND state = 'queued'
)
SELECT count(*) FROM g CROSS JOIN (SELECT CASE WHEN $3 THEN pg_notify('ecosms_work', '') END) AS wake;

-- name: pause_mailing
-- A mailing that is sending ($1) paused: its waiting messages are held (a dispatcher
-- taking some now is waited for, and keeps those). Returns how many were held, or nothing
-- when it was not sending.
WITH g AS (
    UPDATE mailings SET status = 'paused' WHERE id = $1 AND status = 'created' RETURNING id
), m AS (
    UPDATE messages SET state = 'paused', updated_at = now()
    WHERE mailing_id IN (SELECT id FROM g) AND state IN ('queued', 'claimed')
    RETURNING 1
)
SELECT (SELECT count(*) FROM m) AS held FROM g;

-- name: mailing_in_hand
-- Messages of a mailing ($1) a dispatcher has taken and not yet seen answered.
SELECT count(*) FROM messages WHERE mailing_id = $1 AND state IN ('claimed', 'submitting');

-- name: resume_mailing
-- A paused mailing ($1) sending again (the messages follow, in the next statement, once
-- the mailing no longer holds them back).
UPDATE mailings SET status = 'created' WHERE id = $1 AND status = 'paused' RETURNING id;

-- name: resume_messages
WITH m AS (
    UPDATE messages SET state = 'queued', updated_at = now() WHERE mailing_id = $1 AND state = 'paused'
    RETURNING 1
)
SELECT count(*) FROM m CROSS JOIN (SELECT pg_notify('ecosms_work', '')) AS wake;
