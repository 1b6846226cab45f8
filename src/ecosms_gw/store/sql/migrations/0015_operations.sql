-- Operations (issue 18). A link's throttle answers since it was bound, as its daemon
-- reports them with its rate and window (the monitor's links table).
ALTER TABLE links ADD COLUMN throttled integer NOT NULL DEFAULT 0;

-- The queue, sampled every 10 s for the monitor's chart of its depth over time: every
-- daemon's reaper offers a sample, the first one of each 10 s wins, a day is kept.
CREATE TABLE queue_samples (
    at                timestamptz PRIMARY KEY,
    queued            bigint NOT NULL,
    oldest_s          real NOT NULL,
    held              bigint NOT NULL,
    paused            bigint NOT NULL
);

-- The queue: its depth and how late its oldest due message is (read through the queues,
-- the partial index only), what quiet hours hold of it, and the messages paused. Read by
-- /metrics, `ecosms-gw status` and the samples.
CREATE FUNCTION queue_state_now() RETURNS TABLE (queued bigint, oldest_s float8, held bigint, paused bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(n.queued), 0)::bigint AS queued,
           coalesce(extract(epoch FROM now() - min(n.first) FILTER (WHERE n.first <= now())), 0)::float8 AS oldest_s,
           coalesce(sum(n.held), 0)::bigint AS held, (SELECT count(*) FROM messages WHERE state = 'paused') AS paused
    FROM queues q, LATERAL (SELECT count(*) AS queued, min(m.due_at) AS first,
                                   count(*) FILTER (WHERE m.code = 'quiet_hours') AS held
                            FROM messages m
                            WHERE m.state = 'queued' AND m.account_id = q.account_id AND m.priority = q.priority) n
$$;

-- Messages ended unsent (validity, maximum age), counted for /metrics by whichever
-- statement ends them: a sequence, as it never waits for another transaction (a claim
-- rolled back after counting counts a little too much, never too little).
CREATE SEQUENCE messages_expired_tally;
CREATE FUNCTION tally_expired(_ended bigint) RETURNS void LANGUAGE sql AS $$
    SELECT count(nextval('messages_expired_tally')) FROM generate_series(1, _ended)
$$;

-- What the scheduler chose, less what may not go now (as in 0013), counting the expired.
CREATE OR REPLACE FUNCTION sendable(_limit integer, _routes text[], _excluded text[]) RETURNS SETOF bigint
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    ids bigint[];
    special boolean;
    ended bigint;
BEGIN
    SELECT coalesce(array_agg(d.id), '{}'), coalesce(bool_or(d.special), false) INTO ids, special
    FROM due_ids(_limit, _routes, _excluded) AS d;
    IF NOT special THEN  -- the common case: nothing to look at
        RETURN QUERY SELECT unnest(ids);
        RETURN;
    END IF;
    UPDATE messages SET state = 'done', status = 'ko', code = 'expired',
           description = 'not sent within its validity', updated_at = now()
    WHERE id = ANY(ids) AND due_at + validity_min * interval '1 minute' < now();
    GET DIAGNOSTICS ended = ROW_COUNT;
    PERFORM tally_expired(ended);
    UPDATE messages m SET due_at = q.until, code = 'quiet_hours', updated_at = now(),
           description = 'quiet hours where the recipient is: held until '
                         || to_char(q.until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
    FROM (SELECT w.id, quiet_until(w.zones, a.quiet_hours) AS until
          FROM messages w JOIN accounts a ON a.id = w.account_id
          WHERE w.id = ANY(ids) AND w.zones IS NOT NULL AND a.quiet_hours IS NOT NULL) q
    WHERE m.id = q.id AND q.until IS NOT NULL;
    RETURN QUERY SELECT m.id FROM messages m WHERE m.id = ANY(ids) AND m.state = 'queued' AND m.due_at <= now();
END
$$;

-- Paused mailings, listed by the monitor.
CREATE INDEX mailings_paused ON mailings (id) WHERE status = 'paused';
