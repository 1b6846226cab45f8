-- The message lifecycle in one place (docs/lifecycle.md is its map).

-- Status events are written by this trigger alone: whatever statement changes a message's
-- status, code or reply, its event is written in the same statement, so no query can
-- forget one. A statement trigger with transition tables costs one join per statement,
-- not a function call per row.
CREATE FUNCTION message_status_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_events (message_id, account_id, status, code, description, response)
    SELECT n.id, n.account_id, n.status, n.code, n.description, n.response
    FROM changed_new n JOIN changed_old o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status OR n.code IS DISTINCT FROM o.code
       OR n.response IS DISTINCT FROM o.response
    ORDER BY n.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_status_events AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION message_status_events();

-- A message whose parts are decided gets its seed status: ko as soon as a part failed,
-- ok when all are delivered, no when all are final and some unknown. A message already
-- replied to keeps `rep` (the receipt changes no status, so no event).
CREATE FUNCTION settle_messages(_ids bigint[]) RETURNS bigint LANGUAGE sql AS $$
    WITH s AS (
        SELECT message_id,
               CASE WHEN bool_or(state = 'failed') THEN 'ko'
                    WHEN bool_and(state = 'delivered') THEN 'ok'
                    WHEN bool_and(state IN ('delivered', 'unknown')) THEN 'no' END AS status,
               min(code) FILTER (WHERE state <> 'delivered') AS code
        FROM parts WHERE message_id = ANY(_ids)
        GROUP BY message_id
    ), m AS (
        UPDATE messages
        SET state = 'done', status = CASE WHEN messages.status = 'rep' THEN 'rep' ELSE s.status END,
            code = CASE WHEN messages.status = 'rep' THEN messages.code ELSE s.code END,
            description = CASE WHEN messages.status = 'rep' THEN messages.description
                               WHEN s.status = 'ok' THEN 'delivered'
                               WHEN s.status = 'ko' THEN 'not delivered (receipt error ' || coalesce(s.code, '?') || ')'
                               ELSE 'final state unknown' END,
            updated_at = now()
        FROM s
        WHERE messages.id = s.message_id AND s.status IS NOT NULL AND messages.state = 'submitted'
        RETURNING 1
    )
    SELECT count(*) FROM m
$$;

-- Receipts and submission answers of one SMSC are written one transaction at a time:
-- concurrent ones would each see the other's parts as undecided (a multipart message never
-- settled) or miss a receipt kept for a part being recorded (never matched). One key for
-- both writers, here.
CREATE FUNCTION lock_smsc_parts(_smsc text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('ecosms-parts:' || _smsc, 0))
$$;

-- The dispatcher's one call per step: what the SMSC answered, and the next messages marked
-- "being submitted" (their parts created), in one transaction and one round trip. A
-- window's place is freed only once its message's outcome is stored, so this call is on
-- the critical path; storing answers and marking in the same commit lets the places those
-- answers free be taken at once, and the number of messages marked without a stored
-- outcome never exceeds the window at any commit.
-- Answers: parts accepted (message, seq, SMSC id) and receipts that came before them;
-- messages whose every part is accepted (`on`); messages that failed (status, code,
-- description). Returns the marked messages (one canceled since its claim is left out).
-- Answers are written under the SMSC's parts lock, like receipts. Its statements keep their plans (the pool plans every statement with its
-- values, for the API's optional filters; arrays of ids gain nothing from it, and planning
-- them anew was a quarter of this call).
CREATE FUNCTION record_submissions(_smsc text, _part_message bigint[], _part_seq smallint[],
                                   _part_smsc_id text[], _done bigint[], _failed bigint[],
                                   _failed_status text[], _failed_code text[], _failed_description text[],
                                   _mark bigint[])
RETURNS bigint[] LANGUAGE plpgsql SET plan_cache_mode = auto AS $$
DECLARE
    early bigint[];
    marked bigint[];
BEGIN
    IF cardinality(_part_message) > 0 THEN
        PERFORM lock_smsc_parts(_smsc);
        UPDATE parts p SET state = 'submitted', smsc_message_id = r.smsc_id, submitted_at = now()
        FROM unnest(_part_message, _part_seq, _part_smsc_id) AS r(message_id, seq, smsc_id)
        WHERE p.message_id = r.message_id AND p.seq = r.seq;
        WITH r AS (
            DELETE FROM receipts_pending q
            WHERE q.smsc = _smsc AND q.smsc_message_id = ANY(_part_smsc_id)
            RETURNING q.smsc_message_id, q.state, q.code
        ), applied AS (
            UPDATE parts p SET state = r.state, code = r.code, done_at = now()
            FROM r
            WHERE p.smsc = _smsc AND p.smsc_message_id = r.smsc_message_id AND p.state = 'submitted'
            RETURNING p.message_id
        )
        SELECT array_agg(message_id) INTO early FROM applied;
    END IF;
    IF cardinality(_done) > 0 THEN
        UPDATE messages SET state = 'submitted', status = 'on', updated_at = now()
        WHERE id = ANY(_done) AND state = 'submitting';
    END IF;
    IF cardinality(_failed) > 0 THEN
        UPDATE messages SET state = 'done', status = r.status, code = r.code,
               description = r.description, updated_at = now()
        FROM unnest(_failed, _failed_status, _failed_code, _failed_description) AS r(id, status, code, description)
        WHERE messages.id = r.id AND messages.state IN ('claimed', 'submitting');
    END IF;
    IF early IS NOT NULL THEN
        PERFORM settle_messages(early);
    END IF;
    IF cardinality(_mark) > 0 THEN
        WITH m AS (
            UPDATE messages SET state = 'submitting', smsc = _smsc, updated_at = now()
            WHERE id = ANY(_mark) AND state = 'claimed'
            RETURNING id, segments
        ), created AS (
            INSERT INTO parts (message_id, seq, smsc)
            SELECT m.id, s, _smsc FROM m, generate_series(1, m.segments) AS s
        )
        SELECT array_agg(id) INTO marked FROM m;
    END IF;
    RETURN coalesce(marked, '{}');
END
$$;

-- The cluster view: daemons beat every few seconds, and each SMSC link says who serves it.
-- Routes are decided from every daemon's bound links, and `ecosms-gw status` and /health
-- read these tables.
ALTER TABLE workers ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE TABLE links (
    name              text PRIMARY KEY,
    owner             bigint,                            -- worker key of the daemon serving it
    routes            text[] NOT NULL,
    tps               integer NOT NULL,                  -- configured
    window_size       integer NOT NULL,
    bound_since       timestamptz,                       -- NULL: not bound
    tps_now           real NOT NULL DEFAULT 0,           -- parts per second lately
    in_flight         integer NOT NULL DEFAULT 0,        -- messages marked without a stored outcome
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Messages a crash left in doubt, per link, for `ecosms-gw status` and /metrics.
CREATE INDEX messages_in_doubt ON messages (smsc) WHERE code = 'in_doubt';

-- Mail the gateway sends (reply e-mails, submission reports): stored, then sent by a task
-- that retries with backoff for mail_out.retry_hours; one given up stays to be seen
-- (`ecosms-gw status`, /metrics) until the retention purge.
CREATE TABLE mail_out (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient         text NOT NULL,
    subject           text NOT NULL,
    body              text NOT NULL,
    attempts          smallint NOT NULL DEFAULT 0,
    due_at            timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    given_up_at       timestamptz
);
CREATE INDEX mail_out_due ON mail_out (due_at) WHERE given_up_at IS NULL;

-- Retention: a mailing past the horizon, once nothing of it is under way, is removed with
-- its messages, parts and events; its counts by status stay here, so that statistics
-- (/rest/stats, by month, by mailing id or name) read the same after the purge.
CREATE TABLE mailing_totals (
    mailing_id        bigint PRIMARY KEY,
    account_id        bigint NOT NULL,
    name              text,
    created_at        timestamptz NOT NULL,
    wait              bigint NOT NULL,
    "on"              bigint NOT NULL,
    ok                bigint NOT NULL,
    ko                bigint NOT NULL,
    rep               bigint NOT NULL,
    "no"              bigint NOT NULL,
    optout            bigint NOT NULL,
    purged_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailing_totals_by_account ON mailing_totals (account_id, created_at);
CREATE INDEX mailings_by_age ON mailings (created_at);
CREATE INDEX mo_messages_by_age ON mo_messages (received_at);

-- The claim: oldest due work first; SKIP LOCKED lets several claimers share the queue.
-- _routes/_excluded: the recipient prefixes this link serves, and those it leaves to more
-- specific links. Bitmap scans are off for it: right after a large enqueue, before the
-- table's statistics know the new rows, the planner would otherwise read and sort every
-- due message for each claim (5 ms for 20,000, far more for a million), where the
-- ordered index scan reads only what it takes.
CREATE FUNCTION claim_due(_limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer)
LANGUAGE sql SET enable_bitmapscan = off AS $$
    WITH due AS (
        SELECT id FROM messages
        WHERE state = 'queued' AND due_at <= now()
          AND recipient LIKE ANY(_routes) AND NOT recipient LIKE ANY(_excluded)
        ORDER BY due_at, id
        LIMIT _limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m
    SET state = 'claimed', claimed_by = _worker, attempts = m.attempts + 1, updated_at = now()
    FROM due
    WHERE m.id = due.id
    RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments,
              m.attempts, (SELECT a.sender_id FROM accounts a WHERE a.id = m.account_id),
              (SELECT a.tps FROM accounts a WHERE a.id = m.account_id)
$$;
