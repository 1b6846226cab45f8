-- Named queries of store/outbox.py: each starts with a `-- name:` line.

-- name: outbox_take
-- Due receipts and replies of the accounts bound here ($1), at most $2, leased for $3 (a
-- daemon that dies while sending leaves them to another); those older than $4 are given up.
WITH old AS (
    DELETE FROM smpp_outbox WHERE account_id = ANY($1::bigint[]) AND created_at < now() - $4::interval
), due AS (
    SELECT id FROM smpp_outbox
    WHERE account_id = ANY($1::bigint[]) AND due_at <= now() AND created_at >= now() - $4::interval
    ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE smpp_outbox o SET due_at = now() + $3::interval, attempts = o.attempts + 1
FROM due WHERE o.id = due.id
RETURNING o.id, o.account_id, o.kind, o.message_id, o.source, o.destination, o.body, o.state, o.attempts;

-- name: outbox_acknowledged
DELETE FROM smpp_outbox WHERE id = ANY($1::bigint[]);

-- name: outbox_retry
-- Not acknowledged: due again after $2 seconds each.
UPDATE smpp_outbox o SET due_at = now() + make_interval(secs => r.after_s)
FROM unnest($1::bigint[], $2::float8[]) AS r(id, after_s) WHERE o.id = r.id;

-- name: outbox_waiting
-- Receipts and replies waiting for account $1 (NULL: every account).
SELECT count(*) FROM smpp_outbox WHERE $1::bigint IS NULL OR account_id = $1;
