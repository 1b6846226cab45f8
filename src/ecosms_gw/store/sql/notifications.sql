-- Named queries of store/notifications.py: each starts with a `-- name:` line.

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
INSERT INTO mail_out (recipient, subject, body, sender) VALUES ($1, $2, $3, $4);

-- name: claim_mail
-- Due mail, leased like pings: a daemon that dies while sending leaves it to another.
WITH due AS (
    SELECT id FROM mail_out WHERE due_at <= now() AND given_up_at IS NULL
    ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE mail_out o SET due_at = now() + $2::interval
FROM due
WHERE o.id = due.id
RETURNING o.id, o.recipient, o.subject, o.body, o.attempts, o.sender;

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
