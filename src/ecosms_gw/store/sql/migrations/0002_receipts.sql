-- Receipts that arrive before the submit_sm_resp they refer to is recorded: kept here and
-- matched as soon as the part's SMSC message id is known, never lost.
CREATE TABLE receipts_pending (
    smsc              text NOT NULL,
    smsc_message_id   text NOT NULL,
    state             text NOT NULL,
    code              text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (smsc, smsc_message_id)
);
-- Messages waiting for their receipts, oldest first, for the expiry of silent ones.
CREATE INDEX messages_awaiting_receipt ON messages (updated_at) WHERE state = 'submitted';
