-- The dispatcher's one call per step, without a claim of its own: what the SMSC answered
-- is stored, then as many due messages as the window has free places are taken (claimed
-- and marked "being submitted" at once, their parts created), in one transaction and one
-- round trip. A message goes from `queued` straight to `submitting`: one update fewer,
-- and the claim no longer waits its turn between the writes. `claim_due` stays, for
-- claiming without marking, and now shares the choice of what goes next (`due_ids`).
-- Their statements find rows by key (ids, message and part numbers) in tables that grow to
-- millions of rows. They keep their plans, and a plan made while a table was small (a
-- hash join over a sequential scan of parts, seen at 15 ms a call once parts held 26,000
-- rows) would be kept as the table grows: only key lookups are allowed to them.
ALTER FUNCTION record_submissions(text, bigint[], smallint[], text[], bigint[], bigint[], text[], text[], text[],
                                  bigint[]) SET enable_seqscan = off;
ALTER FUNCTION record_submissions(text, bigint[], smallint[], text[], bigint[], bigint[], text[], text[], text[],
                                  bigint[]) SET enable_hashjoin = off;
ALTER FUNCTION record_submissions(text, bigint[], smallint[], text[], bigint[], bigint[], text[], text[], text[],
                                  bigint[]) SET enable_mergejoin = off;

-- Due messages for one connection, oldest first, locked and skipped by the others: the
-- one choice of what goes next, for `claim_due` (claimed only) and `take_due` (marked).
CREATE FUNCTION due_ids(_limit integer, _routes text[], _excluded text[]) RETURNS SETOF bigint
LANGUAGE sql SET enable_bitmapscan = off AS $$
    SELECT id FROM messages
    WHERE state = 'queued' AND due_at <= now()
      AND recipient LIKE ANY(_routes) AND NOT recipient LIKE ANY(_excluded)
    ORDER BY due_at, id
    LIMIT _limit
    FOR UPDATE SKIP LOCKED
$$;

CREATE OR REPLACE FUNCTION claim_due(_limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    UPDATE messages m
    SET state = 'claimed', claimed_by = _worker, attempts = m.attempts + 1, updated_at = now()
    FROM due_ids(_limit, _routes, _excluded) AS due(id)
    WHERE m.id = due.id
    RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments,
              m.attempts, (SELECT a.sender_id FROM accounts a WHERE a.id = m.account_id),
              (SELECT a.tps FROM accounts a WHERE a.id = m.account_id)
$$;

CREATE FUNCTION take_due(_smsc text, _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    WITH m AS (
        UPDATE messages m
        SET state = 'submitting', claimed_by = _worker, smsc = _smsc, attempts = m.attempts + 1, updated_at = now()
        FROM due_ids(_limit, _routes, _excluded) AS due(id)
        WHERE m.id = due.id
        RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts
    ), created AS (
        INSERT INTO parts (message_id, seq, smsc)
        SELECT m.id, s, _smsc FROM m, generate_series(1, m.segments) AS s
    )
    SELECT m.*, a.sender_id, a.tps FROM m JOIN accounts a ON a.id = m.account_id ORDER BY m.id
$$;

CREATE FUNCTION record_and_take(_smsc text, _part_message bigint[], _part_seq smallint[],
                                _part_smsc_id text[], _done bigint[], _failed bigint[],
                                _failed_status text[], _failed_code text[], _failed_description text[],
                                _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_submissions(_smsc, _part_message, _part_seq, _part_smsc_id, _done, _failed, _failed_status,
                               _failed_code, _failed_description, '{}');
    IF _limit > 0 THEN
        RETURN QUERY SELECT * FROM take_due(_smsc, _limit, _worker, _routes, _excluded);
    END IF;
END
$$;
