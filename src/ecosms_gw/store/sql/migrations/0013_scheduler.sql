-- The scheduler (issue 15): who goes next. The most urgent priority first; within one
-- priority, accounts share a link by weight (the least served first: a weighted fair
-- queue, `served` grows by messages taken / weight); within an account, by due time then
-- id. An account's cap (`--tps`) is kept here, when messages are taken, so that a capped
-- account never holds a place of a link's window while it waits for its own rate.
ALTER TABLE accounts ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);
-- Spreading by default of the account's mails' and files' mailings: packets of
-- `batch_volume` messages, `batch_delay_min` minutes apart.
ALTER TABLE accounts ADD COLUMN batch_volume integer CHECK (batch_volume BETWEEN 1 AND 100000);
ALTER TABLE accounts ADD COLUMN batch_delay_min integer CHECK (batch_delay_min BETWEEN 1 AND 1440);
-- Quiet hours, 'HH:MM-HH:MM' in the recipient's local time (e.g. 21:00-08:00): nothing is
-- sent to a number while they are under way in one of the time zones it may be in
-- (`messages.zones`, from phonenumbers, stored for the accounts that have quiet hours).
ALTER TABLE accounts ADD COLUMN quiet_hours text CHECK (quiet_hours ~ '^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$');
ALTER TABLE messages ADD COLUMN zones text;  -- comma-separated IANA zones

-- One row per account and priority with messages queued: the claim reads these (a few
-- hundred rows for a million messages), then each chosen account's own queue by index.
CREATE TABLE queues (
    account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    priority          smallint NOT NULL,
    next_due          timestamptz NOT NULL,    -- nothing of it is due before (it may be earlier: looked at again)
    served            double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, priority)
);
CREATE INDEX queues_next ON queues (priority DESC, served, account_id);

-- Capped accounts: no message of theirs is taken before `not_before`.
CREATE TABLE caps (
    account_id        bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    not_before        timestamptz NOT NULL
);

-- Each queue in its order. It replaces the index of all queued messages by due time (the
-- sweeps and the queue's state read through the queues), so inserts keep as many indexes
-- as before.
CREATE INDEX messages_queued ON messages (account_id, priority, due_at, id) WHERE state = 'queued';
DROP INDEX messages_due;
-- Messages with a validity, for the sweep that ends those whose validity ran out unsent.
CREATE INDEX messages_validity ON messages (due_at) WHERE state = 'queued' AND validity_min IS NOT NULL;

-- The served count a queue starts with: the least of its priority's, so that an account
-- that was idle gets its share from now on and no credit for the past.
CREATE FUNCTION queue_start(_priority smallint) RETURNS double precision LANGUAGE sql STABLE SET jit = off AS $$
    SELECT coalesce((SELECT served FROM queues WHERE priority = _priority ORDER BY priority DESC, served LIMIT 1), 0)
$$;

-- New messages: their queues are due at their first due time. Rows are taken in one
-- order, (account, priority), as the claim takes them, so that neither waits in a cycle.
CREATE FUNCTION queues_added() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    INSERT INTO queues (account_id, priority, next_due, served)
    SELECT n.account_id, n.priority, min(n.due_at), queue_start(n.priority)
    FROM added n WHERE n.state = 'queued'
    GROUP BY n.account_id, n.priority ORDER BY n.account_id, n.priority
    ON CONFLICT (account_id, priority) DO UPDATE
    SET next_due = least(queues.next_due, excluded.next_due), served = greatest(queues.served, excluded.served);
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_queued_added AFTER INSERT ON messages REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION queues_added();

-- A message back in the queue (returned unsent, resumed, moved to an earlier date): its
-- queue exists and is due by then. It locks a queue only to bring its due time forward,
-- which a claim never holds (it holds queues that are due).
CREATE FUNCTION queue_requeued() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    INSERT INTO queues (account_id, priority, next_due, served)
    VALUES (NEW.account_id, NEW.priority, NEW.due_at, queue_start(NEW.priority))
    ON CONFLICT (account_id, priority) DO NOTHING;
    UPDATE queues SET next_due = NEW.due_at
    WHERE account_id = NEW.account_id AND priority = NEW.priority AND next_due > NEW.due_at;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_requeued AFTER UPDATE ON messages FOR EACH ROW
    WHEN (NEW.state = 'queued' AND (OLD.state <> 'queued' OR NEW.due_at < OLD.due_at))
    EXECUTE FUNCTION queue_requeued();

-- Due messages for one connection: the one choice of what goes next, for `claim_due`
-- and `take_due`. Queues due now (of accounts their cap lets send), the most urgent
-- first, then the least served, are locked (those locked by another claim or by an insert
-- under way are skipped: a claim waits for no one, so it is in no cycle); each offers its
-- share of `_limit` (by weight; a capped account at most a tenth of its rate), oldest
-- first, locked and skipped by the other connections. A queue with nothing due gets its
-- next due time (at most 5 s ahead: a message requeued while this ran is seen then), and
-- goes when nothing of it is queued.
DROP FUNCTION due_ids(integer, text[], text[]);
CREATE FUNCTION due_ids(_limit integer, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, special boolean)  -- special: it has a validity or time zones
LANGUAGE plpgsql SET enable_bitmapscan = off SET jit = off AS $$
DECLARE
    ids bigint[];
    specials boolean[];
    accounts_ bigint[];
    priorities smallint[];
    shares integer[];
    gave integer[];
    weights integer[];
    caps_ integer[];
BEGIN
    -- One statement, however many accounts: each chosen queue offers its share by index,
    -- the most urgent and least served first, and the first `_limit` are taken.
    WITH chosen AS (
        SELECT u.account_id, u.priority FROM queues u
        WHERE u.next_due <= now()
          AND NOT EXISTS (SELECT 1 FROM caps c WHERE c.account_id = u.account_id AND c.not_before > now())
        ORDER BY u.priority DESC, u.served, u.account_id
        LIMIT _limit + 8  -- a few more, for those that turn out to have nothing to give
    ), locked AS (
        SELECT u.account_id, u.priority, u.served FROM queues u JOIN chosen USING (account_id, priority)
        ORDER BY u.account_id, u.priority
        FOR UPDATE OF u SKIP LOCKED  -- never waits: a queue being claimed or filled now is left for the next
    ), shared AS (
        SELECT l.account_id, l.priority, a.weight, a.tps,
               row_number() OVER (ORDER BY l.priority DESC, l.served, l.account_id) AS rank,
               least(ceil(_limit::numeric * a.weight / sum(a.weight) OVER ())::integer,
                     CASE WHEN a.tps IS NULL THEN _limit ELSE greatest(1, a.tps / 10) END) AS share
        FROM locked l JOIN accounts a ON a.id = l.account_id
    ), offered AS (
        SELECT s.account_id, s.priority, s.rank, o.id, o.special, o.n
        FROM shared s CROSS JOIN LATERAL (
            SELECT w.id, w.special, row_number() OVER () AS n FROM (
                SELECT m.id, m.validity_min IS NOT NULL OR m.zones IS NOT NULL AS special FROM messages m
                WHERE m.state = 'queued' AND m.account_id = s.account_id AND m.priority = s.priority
                  AND m.due_at <= now() AND m.recipient LIKE ANY(_routes) AND NOT m.recipient LIKE ANY(_excluded)
                ORDER BY m.due_at, m.id
                LIMIT s.share
                FOR UPDATE SKIP LOCKED
            ) w
        ) o
    ), taken AS (
        SELECT * FROM offered ORDER BY rank, n LIMIT _limit
    )
    SELECT (SELECT array_agg(t.id ORDER BY t.rank, t.n) FROM taken t),
           (SELECT array_agg(t.special ORDER BY t.rank, t.n) FROM taken t),
           array_agg(s.account_id), array_agg(s.priority), array_agg(s.share), array_agg(s.weight), array_agg(s.tps),
           array_agg((SELECT count(*) FROM taken t WHERE t.account_id = s.account_id AND t.priority = s.priority))
    INTO ids, specials, accounts_, priorities, shares, weights, caps_, gave
    FROM shared s;
    IF accounts_ IS NULL THEN
        RETURN;
    END IF;
    -- fairness: served grows by what each gave / its weight (alone, no one to be fair to)
    IF cardinality(accounts_) > 1 THEN
        UPDATE queues u SET served = u.served + g.gave::double precision / g.weight
        FROM unnest(accounts_, priorities, gave, weights) AS g(account_id, priority, gave, weight)
        WHERE u.account_id = g.account_id AND u.priority = g.priority AND g.gave > 0;
    END IF;
    INSERT INTO caps (account_id, not_before)
    SELECT g.account_id, now() + make_interval(secs => sum(g.gave)::double precision / max(g.tps))
    FROM unnest(accounts_, gave, caps_) AS g(account_id, gave, tps)
    WHERE g.tps IS NOT NULL AND g.gave > 0
    GROUP BY g.account_id
    ON CONFLICT (account_id) DO UPDATE SET not_before = greatest(caps.not_before, now()) + (excluded.not_before - now());
    -- a queue that gave less than its share: gone when empty, else due at its first message
    DELETE FROM queues u USING unnest(accounts_, priorities, gave, shares) AS g(account_id, priority, gave, share)
    WHERE u.account_id = g.account_id AND u.priority = g.priority AND g.gave < g.share
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.state = 'queued' AND m.account_id = g.account_id
                                                 AND m.priority = g.priority);
    UPDATE queues u SET next_due = least(f.first, now() + interval '5 seconds')
    FROM (SELECT g.account_id, g.priority,
                 (SELECT min(m.due_at) FROM messages m
                  WHERE m.state = 'queued' AND m.account_id = g.account_id AND m.priority = g.priority) AS first
          FROM unnest(accounts_, priorities, gave, shares) AS g(account_id, priority, gave, share)
          WHERE g.gave < g.share) f
    WHERE u.account_id = f.account_id AND u.priority = f.priority AND f.first > now();
    RETURN QUERY SELECT * FROM unnest(coalesce(ids, '{}'), coalesce(specials, '{}'));
END
$$;

-- When quiet hours (`_quiet`) end for a recipient who may be in any of `_zones` (a
-- comma-separated list), if they
-- are under way in one of them now; NULL: the message may go now.
CREATE FUNCTION quiet_until(_zones text, _quiet text) RETURNS timestamptz LANGUAGE sql STABLE SET jit = off AS $$
    SELECT max(((l.local::date + q.ends)
                + CASE WHEN l.local::time >= q.ends THEN interval '1 day' ELSE interval '0' END) AT TIME ZONE z)
    FROM unnest(string_to_array(_zones, ',')) AS z,
         LATERAL (SELECT now() AT TIME ZONE z AS local) l,
         LATERAL (SELECT split_part(_quiet, '-', 1)::time AS starts, split_part(_quiet, '-', 2)::time AS ends) q
    WHERE CASE WHEN q.starts < q.ends THEN l.local::time >= q.starts AND l.local::time < q.ends
               ELSE l.local::time >= q.starts OR l.local::time < q.ends END
$$;

-- Messages ended unsent (validity, maximum age), counted for /metrics by whichever
-- statement ends them: a sequence, as it never waits for another transaction (a claim
-- rolled back after counting counts a little too much, never too little).
CREATE SEQUENCE messages_expired_tally;
CREATE FUNCTION tally_expired(_ended bigint) RETURNS void LANGUAGE sql AS $$
    SELECT count(nextval('messages_expired_tally')) FROM generate_series(1, _ended)
$$;

-- What the scheduler chose, less what may not go now: a message out of its validity ends
-- `ko` (expired); one whose recipient is in quiet hours waits until they end, which its
-- status history says (code `quiet_hours`). Shared by `claim_due` and `take_due`.
CREATE FUNCTION sendable(_limit integer, _routes text[], _excluded text[]) RETURNS SETOF bigint
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

-- The claims take what is sendable (a message held by quiet hours loses its mark as it
-- goes); the account's cap is the scheduler's now, so it is no longer returned.
DROP FUNCTION record_and_take(text, bigint[], smallint[], text[], bigint[], bigint[], text[], text[], text[],
                              integer, bigint, text[], text[]);
DROP FUNCTION take_due(text, integer, bigint, text[], text[]);
DROP FUNCTION claim_due(integer, bigint, text[], text[]);

CREATE FUNCTION claim_due(_limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text,
               flash boolean, priority smallint, validity_min integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    WITH m AS (
        UPDATE messages m
        SET state = 'claimed', claimed_by = _worker, attempts = m.attempts + 1, updated_at = now(),
            code = nullif(m.code, 'quiet_hours'),
            description = CASE WHEN m.code = 'quiet_hours' THEN NULL ELSE m.description END
        FROM sendable(_limit, _routes, _excluded) AS due(id)
        WHERE m.id = due.id
        RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
                  m.sender_id, m.flash, m.priority, m.validity_min
    )
    SELECT m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
           coalesce(m.sender_id, a.sender_ids[1]), m.flash, m.priority, m.validity_min
    FROM m JOIN accounts a ON a.id = m.account_id ORDER BY m.priority DESC, m.id
$$;

CREATE FUNCTION take_due(_smsc text, _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text,
               flash boolean, priority smallint, validity_min integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    WITH m AS (
        UPDATE messages m
        SET state = 'submitting', claimed_by = _worker, smsc = _smsc, attempts = m.attempts + 1, updated_at = now(),
            code = nullif(m.code, 'quiet_hours'),
            description = CASE WHEN m.code = 'quiet_hours' THEN NULL ELSE m.description END
        FROM sendable(_limit, _routes, _excluded) AS due(id)
        WHERE m.id = due.id
        RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
                  m.sender_id, m.flash, m.priority, m.validity_min
    ), created AS (
        INSERT INTO parts (message_id, seq, smsc)
        SELECT m.id, s, _smsc FROM m, generate_series(1, m.segments) AS s
    )
    SELECT m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
           coalesce(m.sender_id, a.sender_ids[1]), m.flash, m.priority, m.validity_min
    FROM m JOIN accounts a ON a.id = m.account_id ORDER BY m.priority DESC, m.id
$$;

CREATE FUNCTION record_and_take(_smsc text, _part_message bigint[], _part_seq smallint[],
                                _part_smsc_id text[], _done bigint[], _failed bigint[],
                                _failed_status text[], _failed_code text[], _failed_description text[],
                                _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text,
               flash boolean, priority smallint, validity_min integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_submissions(_smsc, _part_message, _part_seq, _part_smsc_id, _done, _failed, _failed_status,
                               _failed_code, _failed_description, '{}');
    IF _limit > 0 THEN
        RETURN QUERY SELECT * FROM take_due(_smsc, _limit, _worker, _routes, _excluded);
    END IF;
END
$$;

-- The queues of the messages already waiting.
INSERT INTO queues (account_id, priority, next_due)
SELECT account_id, priority, min(due_at) FROM messages WHERE state = 'queued' GROUP BY account_id, priority;

-- A webhook account's events no longer lock its row when it is busy (0012 locked it in
-- every transaction that made an event, until commit: claims, receipts and inserts of that
-- account waited for each other, and with the queues' locks could wait in a cycle). Only
-- an idle account's row is updated, to make it due.
CREATE OR REPLACE FUNCTION queue_webhook_events(_events jsonb[], _accounts bigint[]) RETURNS void LANGUAGE sql AS $$
    WITH added AS (
        INSERT INTO webhook_events (account_id, payload)
        SELECT account, event FROM unnest(_accounts, _events) AS e(account, event)
        RETURNING account_id
    ), known AS (
        INSERT INTO webhook_accounts (account_id) SELECT DISTINCT account_id FROM added
        ON CONFLICT (account_id) DO NOTHING
    )
    UPDATE webhook_accounts w SET due_at = now()
    WHERE w.account_id IN (SELECT account_id FROM added) AND w.due_at = 'infinity' AND w.attempts = 0
$$;
