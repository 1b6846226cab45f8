-- Sending options per message (issue 16): an account has several sender ids (the first is
-- its default), picks GSM or UCS-2 itself in `auto` mode, and a message may name its
-- sender id and be sent as a flash SMS (message class 0).
ALTER TABLE accounts ADD COLUMN sender_ids text[] NOT NULL DEFAULT '{}';
UPDATE accounts SET sender_ids = ARRAY[sender_id] WHERE sender_id IS NOT NULL;
ALTER TABLE accounts DROP COLUMN sender_id;
ALTER TABLE accounts DROP CONSTRAINT accounts_mode_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_mode_check CHECK (mode IN ('text', 'ucs2', 'auto'));

-- Where the replies to a mailing's messages are mailed, instead of the account's
-- `--reply-email`: the address, the From of that mail and its subject.
ALTER TABLE mailings ADD COLUMN reply_email text;
ALTER TABLE mailings ADD COLUMN reply_from text;
ALTER TABLE mailings ADD COLUMN reply_subject text;
ALTER TABLE mail_out ADD COLUMN sender text;  -- the From header; NULL: mail_out.from
-- An API create with an Idempotency-Key: its `source_ref` is the key, this the digest of
-- its parameters (the same key with other parameters is refused).
ALTER TABLE mailings ADD COLUMN request_hash text;
-- An API mailing's text as written, placeholders and all (mails and files: NULL, their
-- first message's text is shown).
ALTER TABLE mailings ADD COLUMN text text;

-- The country calling code of an E.164 number (`+33...` -> `33`). Calling codes are a
-- prefix code: 1 and 7 are the one-digit codes, these the two-digit ones, the rest has
-- three (tests/store checks every code phonenumbers knows).
CREATE FUNCTION dialing_code(_number text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN substr(_number, 2, 1) IN ('1', '7') THEN substr(_number, 2, 1)
                WHEN substr(_number, 2, 2) IN ('20', '27', '30', '31', '32', '33', '34', '36', '39', '40', '41',
                                               '43', '44', '45', '46', '47', '48', '49', '51', '52', '53', '54',
                                               '55', '56', '57', '58', '60', '61', '62', '63', '64', '65', '66',
                                               '81', '82', '84', '86', '90', '91', '92', '93', '94', '95', '98')
                     THEN substr(_number, 2, 2)
                ELSE substr(_number, 2, 3) END
$$;

-- Parts of a message from a phone, kept until the last one comes (or the wait is over):
-- then they are put together and stored as one reply.
CREATE TABLE mo_parts (
    smsc              text NOT NULL,
    source            text NOT NULL,
    destination       text NOT NULL,
    reference         integer NOT NULL,
    total             smallint NOT NULL,
    seq               smallint NOT NULL,
    data_coding       smallint NOT NULL,
    payload           bytea NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (smsc, source, destination, reference, seq)
);

-- NULL: the account's default sender id when the message is sent.
ALTER TABLE messages ADD COLUMN sender_id text;
ALTER TABLE messages ADD COLUMN flash boolean NOT NULL DEFAULT false;
-- Priority 0-3 (3 the most urgent; the SMPP priority_flag) and validity (minutes the SMSC
-- may keep trying; NULL: its default), per message, with the account's defaults.
ALTER TABLE messages ADD COLUMN priority smallint NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN validity_min integer;
ALTER TABLE accounts ADD COLUMN priority smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 3);
ALTER TABLE accounts ADD COLUMN validity_hours integer CHECK (validity_hours BETWEEN 1 AND 72);

-- The claims return what the PDU needs of each message: its sender id (or the account's
-- default) and whether it is a flash SMS.
DROP FUNCTION record_and_take(text, bigint[], smallint[], text[], bigint[], bigint[], text[], text[], text[],
                              integer, bigint, text[], text[]);
DROP FUNCTION take_due(text, integer, bigint, text[], text[]);
DROP FUNCTION claim_due(integer, bigint, text[], text[]);

CREATE FUNCTION claim_due(_limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer,
               flash boolean, priority smallint, validity_min integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    WITH m AS (
        UPDATE messages m
        SET state = 'claimed', claimed_by = _worker, attempts = m.attempts + 1, updated_at = now()
        FROM due_ids(_limit, _routes, _excluded) AS due(id)
        WHERE m.id = due.id
        RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
                  m.sender_id, m.flash, m.priority, m.validity_min
    )
    SELECT m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
           coalesce(m.sender_id, a.sender_ids[1]), a.tps, m.flash, m.priority, m.validity_min
    FROM m JOIN accounts a ON a.id = m.account_id
$$;

CREATE FUNCTION take_due(_smsc text, _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer,
               flash boolean, priority smallint, validity_min integer)
LANGUAGE sql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    WITH m AS (
        UPDATE messages m
        SET state = 'submitting', claimed_by = _worker, smsc = _smsc, attempts = m.attempts + 1, updated_at = now()
        FROM due_ids(_limit, _routes, _excluded) AS due(id)
        WHERE m.id = due.id
        RETURNING m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
                  m.sender_id, m.flash, m.priority, m.validity_min
    ), created AS (
        INSERT INTO parts (message_id, seq, smsc)
        SELECT m.id, s, _smsc FROM m, generate_series(1, m.segments) AS s
    )
    SELECT m.id, m.mailing_id, m.account_id, m.recipient, m.text, m.encoding, m.segments, m.attempts,
           coalesce(m.sender_id, a.sender_ids[1]), a.tps, m.flash, m.priority, m.validity_min
    FROM m JOIN accounts a ON a.id = m.account_id ORDER BY m.id
$$;

CREATE FUNCTION record_and_take(_smsc text, _part_message bigint[], _part_seq smallint[],
                                _part_smsc_id text[], _done bigint[], _failed bigint[],
                                _failed_status text[], _failed_code text[], _failed_description text[],
                                _limit integer, _worker bigint, _routes text[], _excluded text[])
RETURNS TABLE (id bigint, mailing_id bigint, account_id bigint, recipient text, text text,
               encoding text, segments smallint, attempts smallint, sender_id text, account_tps integer,
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
