-- The dispatcher's one call per step, without a claim of its own: what the SMSC answered
-- is stored, then as many due messages as the window has free places are taken (claimed
-- and marked "being submitted" at once, their parts created), in one transaction and one
-- round trip. A message goes from `queued` straight to `submitting`: one update fewer,
-- and the claim no longer waits its turn between the writes. `claim_due` stays, for
-- claiming without marking.
CREATE FUNCTION take_due(_smsc text, _limit integer, _worker bigint, _routes text[], _excluded text[])
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
    ), m AS (
        UPDATE messages m
        SET state = 'submitting', claimed_by = _worker, smsc = _smsc, attempts = m.attempts + 1, updated_at = now()
        FROM due
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
