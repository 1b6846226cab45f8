-- Named queries of store/submits.py: each starts with a `-- name:` line.

-- name: session_mailing
-- The mailing of an SMPP bind session's day ($2: its source_ref) for the account ($1):
-- the one still open, else a new one (empty: its submits are added as they come).
WITH open AS (
    SELECT id FROM mailings
    WHERE account_id = $1 AND source_ref = $2 AND source = 'smpp' AND status = 'created'
    ORDER BY id DESC LIMIT 1
), made AS (
    INSERT INTO mailings (account_id, source, source_ref, messages, parts, name)
    SELECT $1, 'smpp', $2, 0, 0, $3 WHERE NOT EXISTS (SELECT 1 FROM open)
    RETURNING id
)
SELECT id FROM open UNION ALL SELECT id FROM made;

-- name: submits_insert
-- SMPP submits of several sessions in one statement, each a message of its session's
-- mailing, due now (the database's clock), with one wake-up for the dispatchers; the
-- mailings count them. Their ids are taken first, to be returned in the given order.
WITH k AS (
    SELECT k, nextval(pg_get_serial_sequence('messages', 'id')) AS id
    FROM generate_series(1, cardinality($1::bigint[])) AS k
), m AS (
    INSERT INTO messages (id, mailing_id, account_id, recipient, text, encoding, segments, due_at, sender_id,
                          flash, priority, validity_min, zones)
    OVERRIDING SYSTEM VALUE
    SELECT k.id, y.mailing_id, y.account_id, y.recipient, y.text, y.encoding, y.segments, now(), y.sender_id,
           y.flash, y.priority, y.validity_min, y.zones
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::text[],
                $8::boolean[], $9::smallint[], $10::integer[], $11::text[])
         WITH ORDINALITY AS y(mailing_id, account_id, recipient, text, encoding, segments, sender_id, flash,
                              priority, validity_min, zones, k)
    JOIN k USING (k) CROSS JOIN (SELECT pg_notify('ecosms_work', '')) AS wake
    RETURNING mailing_id, segments
), counted AS (
    UPDATE mailings g SET messages = g.messages + c.messages, parts = g.parts + c.parts
    FROM (SELECT mailing_id, count(*) AS messages, sum(segments) AS parts FROM m GROUP BY mailing_id) c
    WHERE g.id = c.mailing_id
)
SELECT id FROM k ORDER BY k;

-- name: submit_state
-- A message of account $1 as query_sm tells it: its SMPP message_state, and when it
-- became final (NULL while it is not).
SELECT CASE WHEN state IN ('done', 'canceled') AND status IN ('ok', 'ko', 'no', 'rep')
            THEN smpp_state(smpp_stat(CASE WHEN status = 'rep' THEN 'ok' ELSE status END, code))
            ELSE 1 END AS state,
       CASE WHEN state IN ('done', 'canceled') THEN updated_at END AS final_at
FROM messages WHERE account_id = $1 AND id = $2;
