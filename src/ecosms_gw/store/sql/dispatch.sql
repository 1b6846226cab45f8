-- Named queries of store/dispatch.py: each starts with a `-- name:` line.

-- name: claim_due
-- See the function in 0006: oldest due work first, shared by SKIP LOCKED.
SELECT * FROM claim_due($1, $2, $3, $4);

-- name: own_resource
SELECT pg_try_advisory_lock(hashtextextended('ecosms:' || $1, 0));

-- name: worker_register
-- A daemon listed; listed again with its key after its lock connection was lost (it may
-- have been reaped meanwhile, or not).
INSERT INTO workers (key, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET heartbeat_at = now();

-- name: worker_beat
UPDATE workers SET heartbeat_at = now() WHERE key = $1;

-- name: link_report
-- A link as its daemon sees it now ($6: bound or not; bound_since is kept while bound).
INSERT INTO links (name, owner, routes, tps, window_size, bound_since, tps_now, in_flight, throttled, updated_at)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7, $8, $9, now())
ON CONFLICT (name) DO UPDATE
SET owner = $2, routes = $3, tps = $4, window_size = $5,
    bound_since = CASE WHEN NOT $6 THEN NULL
                       WHEN links.owner = $2 AND links.bound_since IS NOT NULL THEN links.bound_since
                       ELSE now() END,
    tps_now = $7, in_flight = $8, throttled = $9, updated_at = now()
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
       l.tps, l.tps_now, l.window_size, l.in_flight, l.throttled, l.routes,
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

-- name: return_unwritten
-- Every message this daemon ($1) marked on this link ($2) and did not write, back to the
-- queue as if never taken. Called with nothing in flight and every answer stored, so what
-- is still marked was never written: taken and not reached by the writer when the link
-- died, taken by a call whose answer the database's restart lost, or (in_doubt = 'resend')
-- written and never answered.
WITH unwritten AS (
    SELECT id FROM messages WHERE claimed_by = $1 AND smsc = $2 AND state IN ('claimed', 'submitting')
), gone AS (
    DELETE FROM parts p USING unwritten u WHERE p.message_id = u.id
)
UPDATE messages m SET state = 'queued', claimed_by = NULL, smsc = NULL,
       attempts = greatest(m.attempts - 1, 0), updated_at = now()
FROM unwritten u WHERE m.id = u.id;

-- name: record_submissions
-- What the SMSC answered, and the next messages marked: see the function in 0006.
SELECT record_submissions($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: expire
-- Messages that could not leave within the maximum age ($1) or their validity, both
-- counted from when they became due, end `ko` (expired); those submitted without a final
-- receipt within the wait ($2) end `no`.
WITH unsent AS (
    UPDATE messages m SET state = 'done', status = 'ko', code = 'expired',
           description = 'not sent within the maximum age', updated_at = now()
    FROM queues q, LATERAL (SELECT w.id FROM messages w
                            WHERE w.state = 'queued' AND w.account_id = q.account_id AND w.priority = q.priority
                              AND w.due_at < now() - $1::interval) old
    WHERE m.id = old.id
    RETURNING 1
), invalid AS (
    UPDATE messages SET state = 'done', status = 'ko', code = 'expired',
           description = 'not sent within its validity', updated_at = now()
    WHERE state = 'queued' AND validity_min IS NOT NULL AND due_at < now() - interval '5 minutes'
      AND due_at + validity_min * interval '1 minute' < now() AND due_at >= now() - $1::interval
    RETURNING 1
), silent AS (
    UPDATE messages SET state = 'done', status = 'no', code = 'no_receipt',
           description = 'no delivery receipt within the wait', updated_at = now()
    WHERE state = 'submitted' AND updated_at < now() - $2::interval
    RETURNING 1
)
SELECT n.expired, n.silent, tally_expired(n.expired)
FROM (SELECT (SELECT count(*) FROM unsent) + (SELECT count(*) FROM invalid) AS expired,
             (SELECT count(*) FROM silent) AS silent) n;

-- name: worker_remove
DELETE FROM workers WHERE key = $1;

-- name: record_and_take
-- What the SMSC answered, and the next due messages taken (claimed and marked at once):
-- see the functions in 0009.
SELECT * FROM record_and_take($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: queues_repair
-- A queue for every account and priority with messages queued (a skip scan of the queued
-- index: one probe per queue). A claim removes a queue it saw empty; a message queued
-- again in the same instant, unseen by it, would wait without one: this brings it back.
WITH RECURSIVE keys AS (
    (SELECT account_id, priority FROM messages WHERE state = 'queued' ORDER BY account_id, priority LIMIT 1)
    UNION ALL
    SELECT n.account_id, n.priority FROM keys k, LATERAL (
        SELECT m.account_id, m.priority FROM messages m
        WHERE m.state = 'queued' AND (m.account_id, m.priority) > (k.account_id, k.priority)
        ORDER BY m.account_id, m.priority LIMIT 1) n
), added AS (
    INSERT INTO queues (account_id, priority, next_due)
    SELECT account_id, priority, now() FROM keys
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added;
