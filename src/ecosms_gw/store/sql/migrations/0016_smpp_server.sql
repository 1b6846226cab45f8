-- The SMPP server (issue 20): an account binds with its code and this password (a scrypt
-- hash, never the secret); its submissions are mailings of source 'smpp', one per bind
-- session and day (source_ref: the session's id and the day).
ALTER TABLE accounts ADD COLUMN smpp_password text;

ALTER TABLE mailings DROP CONSTRAINT mailings_source_check;
ALTER TABLE mailings ADD CONSTRAINT mailings_source_check CHECK (source IN ('smtp', 'ftp', 'http', 'smpp'));

-- Receipts and replies for SMPP clients, as deliver_sm to the account's receiver or
-- transceiver binds: rows written by triggers in the transaction of the change (none is
-- lost), kept while no such bind exists, and retried until one acknowledges them, for 24 h.
CREATE TABLE smpp_outbox (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('receipt', 'reply')),
    message_id        bigint,                            -- the message receipted, or replied to
    source            text NOT NULL,                     -- deliver_sm source_addr: the phone
    destination       text NOT NULL,                     -- the sender id, or the number answered
    body              text NOT NULL,                     -- the receipt's text, or the reply
    state             smallint,                          -- a receipt's message_state (SMPP 3.4 5.2.28)
    created_at        timestamptz NOT NULL DEFAULT now(),
    due_at            timestamptz NOT NULL DEFAULT now(),
    attempts          integer NOT NULL DEFAULT 0
);
CREATE INDEX smpp_outbox_due ON smpp_outbox (account_id, due_at, id);

-- Whether any account may bind: the triggers' first question, one index lookup.
CREATE INDEX accounts_with_smpp ON accounts (id) WHERE smpp_password IS NOT NULL;
CREATE FUNCTION any_smpp_account() RETURNS boolean LANGUAGE sql STABLE SET jit = off AS $$
    SELECT EXISTS (SELECT 1 FROM accounts WHERE smpp_password IS NOT NULL)
$$;

-- A final status as a receipt's stat and message_state.
CREATE FUNCTION smpp_stat(_status text, _code text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN _status = 'ok' THEN 'DELIVRD' WHEN _status = 'no' THEN 'UNKNOWN'
                WHEN _code = 'expired' THEN 'EXPIRED' WHEN _code = 'canceled' THEN 'DELETED'
                WHEN _code IN ('opted_out', 'refused') THEN 'REJECTD' ELSE 'UNDELIV' END
$$;
CREATE FUNCTION smpp_state(_stat text) RETURNS smallint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE _stat WHEN 'DELIVRD' THEN 2 WHEN 'EXPIRED' THEN 3 WHEN 'DELETED' THEN 4 WHEN 'UNDELIV' THEN 5
                      WHEN 'REJECTD' THEN 8 ELSE 7 END::smallint
$$;

-- The final statuses of messages submitted by SMPP: a receipt each, in the format SMSCs
-- use (SMPP 3.4 appendix B), its id the gateway's message id.
CREATE FUNCTION smpp_receipts() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF NOT any_smpp_account() THEN
        RETURN NULL;
    END IF;
    INSERT INTO smpp_outbox (account_id, kind, message_id, source, destination, body, state)
    SELECT e.account_id, 'receipt', m.id, ltrim(m.recipient, '+'), coalesce(m.sender_id, ''),
           format('id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s',
                  m.id, CASE WHEN e.status = 'ok' THEN '001' ELSE '000' END,
                  to_char(m.created_at AT TIME ZONE 'UTC', 'YYMMDDHH24MI'),
                  to_char(e.created_at AT TIME ZONE 'UTC', 'YYMMDDHH24MI'), smpp_stat(e.status, e.code),
                  CASE WHEN e.code ~ '^[0-9]{1,3}$' THEN lpad(e.code, 3, '0') ELSE '000' END,
                  left(m.text, 20)),
           smpp_state(smpp_stat(e.status, e.code))
    FROM new_events e
    JOIN messages m ON m.id = e.message_id
    JOIN mailings g ON g.id = m.mailing_id AND g.source = 'smpp'
    WHERE e.status IN ('ok', 'ko', 'no')
    ORDER BY e.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER status_events_smpp AFTER INSERT ON status_events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION smpp_receipts();

-- Replies to the messages of accounts that bind: an MO deliver_sm each.
CREATE FUNCTION smpp_replies() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF NOT any_smpp_account() THEN
        RETURN NULL;
    END IF;
    INSERT INTO smpp_outbox (account_id, kind, message_id, source, destination, body)
    SELECT r.account_id, 'reply', r.message_id, ltrim(r.source, '+'), ltrim(r.destination, '+'), r.text
    FROM new_replies r JOIN accounts a ON a.id = r.account_id AND a.smpp_password IS NOT NULL
    ORDER BY r.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mo_messages_smpp AFTER INSERT ON mo_messages REFERENCING NEW TABLE AS new_replies
    FOR EACH STATEMENT EXECUTE FUNCTION smpp_replies();
