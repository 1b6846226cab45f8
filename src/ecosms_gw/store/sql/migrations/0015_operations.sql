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

-- Paused mailings, listed by the monitor.
CREATE INDEX mailings_paused ON mailings (id) WHERE status = 'paused';

-- The monitor's charts, rolled up every 10 s from the status events of that step (a BRIN
-- range of 10 s), so that a chart reads a few hundred rows whatever the traffic: per
-- account and for every account (account 0). Kinds: `submitted` (key: the link, value:
-- messages), `final` (key: ok, ko or no), `error` (key: the code), `latency` (key: p50
-- or p95, seconds from submitted to final). A day is kept.
CREATE TABLE monitor_rollups (
    at                timestamptz NOT NULL,              -- the start of a 10 s step
    account_id        bigint NOT NULL,                   -- 0: every account
    kind              text NOT NULL,
    key               text NOT NULL,
    value             real NOT NULL
);
CREATE INDEX monitor_rollups_by_kind ON monitor_rollups (kind, account_id, at);
CREATE INDEX monitor_rollups_by_time ON monitor_rollups USING brin (at);  -- what a day leaves
-- The steps rolled up: the first daemon to claim a step rolls it up, the others skip it.
CREATE TABLE monitor_steps (at timestamptz PRIMARY KEY);
-- An error code's description, as it was last seen, for the top error codes.
CREATE TABLE error_codes (code text PRIMARY KEY, description text);

CREATE FUNCTION monitor_roll_up(_step timestamptz) RETURNS void LANGUAGE sql AS $$
    WITH e AS (
        SELECT * FROM status_events
        WHERE created_at >= _step AND created_at < _step + interval '10 seconds' AND status IN ('on', 'ok', 'ko', 'no')
    ), submitted AS (
        INSERT INTO monitor_rollups
        SELECT _step, coalesce(e.account_id, 0), 'submitted', coalesce(m.smsc, '?'), count(*)
        FROM e JOIN messages m ON m.id = e.message_id WHERE e.status = 'on'
        GROUP BY GROUPING SETS ((e.account_id, m.smsc), (m.smsc))
    ), finals AS (
        INSERT INTO monitor_rollups
        SELECT _step, coalesce(e.account_id, 0), 'final', e.status, count(*)
        FROM e WHERE e.status <> 'on' GROUP BY GROUPING SETS ((e.account_id, e.status), (e.status))
    ), errors AS (
        INSERT INTO monitor_rollups
        SELECT _step, coalesce(e.account_id, 0), 'error', e.code, count(*)
        FROM e WHERE e.status IN ('ko', 'no') AND e.code IS NOT NULL
        GROUP BY GROUPING SETS ((e.account_id, e.code), (e.code))
    ), described AS (
        INSERT INTO error_codes
        SELECT DISTINCT ON (e.code) e.code, e.description FROM e
        WHERE e.status IN ('ko', 'no') AND e.code IS NOT NULL ORDER BY e.code
        ON CONFLICT (code) DO UPDATE SET description = excluded.description
    ), waited AS (
        SELECT e.account_id, extract(epoch FROM e.created_at - s.created_at) AS seconds
        FROM e JOIN LATERAL (SELECT o.created_at FROM status_events o
                             WHERE o.message_id = e.message_id AND o.status = 'on' ORDER BY o.id LIMIT 1) s ON true
        WHERE e.status <> 'on'
    )
    INSERT INTO monitor_rollups
    SELECT _step, coalesce(w.account_id, 0), 'latency', q.key, q.value
    FROM (SELECT account_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95
          FROM waited GROUP BY GROUPING SETS ((account_id), ())) w,
         LATERAL (VALUES ('p50', w.p50), ('p95', w.p95)) q(key, value)
    WHERE w.p50 IS NOT NULL  -- the total of a step without a final status
$$;

-- Every step complete for 10 s and not rolled up yet (at most the last hour; on a first
-- start, the last 2 minutes), each by the first daemon to claim it; then what is older
-- than a day goes. How many were rolled up.
CREATE FUNCTION monitor_roll_up_due() RETURNS integer LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    step timestamptz;
    done integer := 0;
BEGIN
    FOR step IN
        SELECT s FROM generate_series(
            greatest(date_bin('10 seconds', now() - interval '1 hour', 'epoch'),
                     coalesce((SELECT max(at) + interval '10 seconds' FROM monitor_steps),
                              date_bin('10 seconds', now() - interval '2 minutes', 'epoch'))),
            now() - interval '20 seconds', interval '10 seconds') AS s
    LOOP
        INSERT INTO monitor_steps VALUES (step) ON CONFLICT DO NOTHING;
        IF FOUND THEN
            PERFORM monitor_roll_up(step);
            done := done + 1;
        END IF;
    END LOOP;
    DELETE FROM monitor_rollups WHERE at < now() - interval '25 hours';
    DELETE FROM monitor_steps WHERE at < now() - interval '25 hours';
    RETURN done;
END
$$;
