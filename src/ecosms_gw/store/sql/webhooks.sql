-- Named queries of store/webhooks.py: each starts with a `-- name:` line.

-- name: claim_webhooks
-- Accounts whose next batch is due, leased for $2 (a daemon that dies while sending leaves
-- them to another), with their URL, key and oldest events (at most $3 each, in order).
WITH due AS (
    SELECT account_id FROM webhook_accounts WHERE due_at <= now()
    ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_accounts w SET due_at = now() + $2::interval
    FROM due WHERE w.account_id = due.account_id
    RETURNING w.account_id, w.attempts
)
SELECT l.account_id, l.attempts, a.webhook_url AS url, a.webhook_secret AS secret,
       coalesce(array_agg(e.id ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS ids,
       coalesce(array_agg(e.payload::text ORDER BY e.id) FILTER (WHERE e.id IS NOT NULL), '{}') AS payloads,
       min(e.created_at) AS oldest
FROM leased l JOIN accounts a ON a.id = l.account_id
LEFT JOIN LATERAL (SELECT id, payload, created_at FROM webhook_events
                   WHERE account_id = l.account_id ORDER BY id LIMIT $3) e ON true
GROUP BY l.account_id, l.attempts, a.webhook_url, a.webhook_secret;

-- name: webhook_delivered
-- A batch the receiver took: gone; the account is due again at once if more wait.
WITH sent AS (DELETE FROM webhook_events WHERE id = ANY($2::bigint[]))
UPDATE webhook_accounts SET attempts = 0, last_error = NULL,
       due_at = CASE WHEN EXISTS (SELECT 1 FROM webhook_events WHERE account_id = $1 AND NOT id = ANY($2::bigint[]))
                     THEN now() ELSE 'infinity' END
WHERE account_id = $1;

-- name: webhook_failed
-- A batch that failed: tried again after $2; events older than $3 are given up (how many).
WITH dropped AS (
    DELETE FROM webhook_events WHERE account_id = $1 AND created_at < now() - $3::interval RETURNING 1
), state AS (
    UPDATE webhook_accounts SET attempts = attempts + 1, last_error = $4, due_at = now() + $2::interval
    WHERE account_id = $1
)
SELECT count(*) FROM dropped;

-- name: webhook_wake
-- Accounts left idle while events came (an event committed as its account's last batch
-- was being settled): due now.
UPDATE webhook_accounts w SET due_at = now()
WHERE due_at = 'infinity' AND EXISTS (SELECT 1 FROM webhook_events e WHERE e.account_id = w.account_id);

-- name: webhook_backlog
-- Events waiting to be posted, of account $1 (NULL: every account).
SELECT count(*) FROM webhook_events WHERE $1::bigint IS NULL OR account_id = $1;

-- name: webhook_failing
-- Accounts whose last batch failed (of account $1; NULL: all): what the receiver said,
-- how often, when it is tried again, and what waits for it.
SELECT a.code AS account, w.attempts, w.last_error, w.due_at AS next_attempt,
       e.waiting, e.oldest
FROM webhook_accounts w
JOIN accounts a ON a.id = w.account_id
CROSS JOIN LATERAL (SELECT count(*) AS waiting, min(created_at) AS oldest
                    FROM webhook_events WHERE account_id = w.account_id) e
WHERE w.attempts > 0 AND ($1::bigint IS NULL OR w.account_id = $1)
ORDER BY w.account_id
LIMIT 100;
