-- Named queries of store/receipts.py: each starts with a `-- name:` line.

-- name: lock_smsc_parts
-- Receipts and answers of one SMSC, one transaction at a time (the function in 0006).
SELECT lock_smsc_parts($1);

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
RETURNING p.message_id, p.smsc_message_id, r.state, extract(epoch FROM now() - p.submitted_at)::float8 AS latency_s;

-- name: known_parts
SELECT smsc_message_id FROM parts WHERE smsc = $1 AND smsc_message_id = ANY($2::text[]);

-- name: keep_pending_receipts
INSERT INTO receipts_pending (smsc, smsc_message_id, state, code)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
ON CONFLICT (smsc, smsc_message_id) DO NOTHING;

-- name: record_reply
-- A message from a phone: matched to the latest message sent to that number, preferring
-- those sent from the sender id it answers; stored; that message becomes `rep`. $5: a
-- STOP, $6: a START, $7: either for every account (global scope).
WITH target AS (
    SELECT m.id, m.account_id, m.mailing_id, m.text FROM messages m
    WHERE m.recipient = $2 AND m.state IN ('submitted', 'done') AND m.status IN ('on', 'ok', 'no', 'rep')
    ORDER BY coalesce(m.sender_id, (SELECT a.sender_ids[1] FROM accounts a WHERE a.id = m.account_id))
                 IS NOT DISTINCT FROM $3 DESC,
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
    INSERT INTO opt_outs (account_id, recipient, reason, everywhere)
    SELECT target.account_id, $2, 'reply: ' || left($4, 40), $7 FROM target WHERE $5
    ON CONFLICT (account_id, recipient) DO UPDATE SET everywhere = opt_outs.everywhere OR $7
), opted_in AS (
    -- a START takes the number back in for the account it answers (in global scope, everywhere)
    DELETE FROM opt_outs o USING target
    WHERE $6 AND o.recipient = $2 AND (o.account_id = target.account_id OR $7 AND o.everywhere)
)
SELECT target.id AS message_id, target.text, a.code AS account, coalesce(g.reply_email, a.reply_email) AS reply_email,
       g.reply_from, g.reply_subject
FROM target JOIN accounts a ON a.id = target.account_id JOIN mailings g ON g.id = target.mailing_id;

-- name: lock_reply_parts
-- Parts of one message come together, each in its own transaction: one at a time, or each
-- would miss the others (a set complete on arrival, never seen complete).
SELECT pg_advisory_xact_lock(hashtextextended('ecosms-mo:' || $1 || ':' || $2 || ':' || $3 || ':' || $4, 0));

-- name: keep_reply_part
-- A part of a message from a phone (a part sent again is kept once); then the parts of its
-- message so far, in order.
WITH kept AS (
    INSERT INTO mo_parts (smsc, source, destination, reference, total, seq, data_coding, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT DO NOTHING
)
SELECT seq, payload FROM mo_parts
WHERE smsc = $1 AND source = $2 AND destination = $3 AND reference = $4
UNION ALL SELECT $6, $8 WHERE NOT EXISTS (
    SELECT 1 FROM mo_parts WHERE smsc = $1 AND source = $2 AND destination = $3 AND reference = $4 AND seq = $6)
ORDER BY 1;

-- name: take_reply_parts
-- The parts of one message from a phone, removed as its reply is stored (none: another
-- call stored it already).
DELETE FROM mo_parts WHERE smsc = $1 AND source = $2 AND destination = $3 AND reference = $4;

-- name: stale_reply_parts
-- Messages from phones whose last part came more than $1 ago: stored with what came.
SELECT smsc, source, destination, reference, min(data_coding) AS data_coding,
       array_agg(payload ORDER BY seq) AS payloads
FROM mo_parts
GROUP BY smsc, source, destination, reference
HAVING max(received_at) < now() - $1::interval
LIMIT 100;
