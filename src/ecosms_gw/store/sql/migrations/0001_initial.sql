-- The whole durable state of the gateway. Statuses keep the seed's codes on the wire
-- (wait, on, ok, ko, rep, no); `state` is the dispatcher's own progress.

CREATE TABLE accounts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code              text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name              text NOT NULL DEFAULT '',
    senders           text[] NOT NULL DEFAULT '{}',      -- allowed mail senders: addresses or @domains
    smtp_password     text,                              -- scrypt hashes, never the secret
    ftp_password      text,
    api_secret        text,
    country           text,                              -- NULL: the configured default
    timezone          text,
    international     boolean NOT NULL DEFAULT false,
    mode              text NOT NULL DEFAULT 'text' CHECK (mode IN ('text', 'ucs2')),
    sender_id         text,
    reply_email       text,
    ping_url          text,
    max_messages      integer CHECK (max_messages > 0),
    tps               integer CHECK (tps > 0),
    -- who gets the report of an accepted e-mail: nobody, the envelope sender, reply_email
    submission_report text NOT NULL DEFAULT 'off' CHECK (submission_report IN ('off', 'sender', 'reply-email')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Codes are typed by people in mail bodies: one account per spelling, whatever the case.
CREATE UNIQUE INDEX accounts_code ON accounts (lower(code));

CREATE TABLE mailings (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id        bigint NOT NULL REFERENCES accounts (id),
    source            text NOT NULL CHECK (source IN ('smtp', 'ftp', 'http')),
    source_ref        text,                              -- Message-ID, file SHA-256, ...
    status            text NOT NULL DEFAULT 'created'
                      CHECK (status IN ('created', 'canceled', 'interrupted', 'ended')),
    send_at           timestamptz,                       -- NULL: at once
    messages          integer NOT NULL,
    parts             integer NOT NULL,
    report            jsonb NOT NULL DEFAULT '{}',       -- dropped recipients, warnings
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailings_by_account ON mailings (account_id, created_at DESC);
CREATE INDEX mailings_by_source_ref ON mailings (account_id, source_ref, created_at DESC)
    WHERE source_ref IS NOT NULL;

-- No foreign key to mailings: its per-row check was a third of the cost of enqueueing.
-- Messages are only written by `enqueue`, in the transaction that creates their mailing,
-- and mailings are never deleted.
CREATE TABLE messages (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mailing_id        bigint NOT NULL,
    account_id        bigint NOT NULL,
    recipient         text NOT NULL,                     -- E.164
    text              text NOT NULL,
    encoding          text NOT NULL CHECK (encoding IN ('gsm7', 'ucs2')),
    segments          smallint NOT NULL,
    line              integer,                           -- of the recipient in its body
    due_at            timestamptz NOT NULL DEFAULT now(),-- send time, then next attempt
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'claimed', 'submitting', 'submitted', 'done', 'canceled')),
    status            text NOT NULL DEFAULT 'wait' CHECK (status IN ('wait', 'on', 'ok', 'ko', 'rep', 'no')),
    code              text,
    description       text,
    response          text,
    attempts          smallint NOT NULL DEFAULT 0,
    claimed_by        bigint,                            -- worker key, see workers
    smsc              text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- The claim reads only waiting rows: the index stays small however many are done.
CREATE INDEX messages_due ON messages (due_at, id) WHERE state = 'queued';
CREATE INDEX messages_claimed ON messages (claimed_by) WHERE state IN ('claimed', 'submitting');
-- Reads by account and by date go through mailings (indexed by account and date).
CREATE INDEX messages_by_mailing ON messages (mailing_id);
CREATE INDEX messages_by_recipient ON messages (recipient);

CREATE TABLE parts (
    message_id        bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq               smallint NOT NULL,
    smsc              text NOT NULL,
    smsc_message_id   text,
    state             text NOT NULL DEFAULT 'submitting'
                      CHECK (state IN ('submitting', 'submitted', 'delivered', 'failed', 'unknown')),
    code              text,
    submitted_at      timestamptz,
    done_at           timestamptz,
    PRIMARY KEY (message_id, seq)
);
-- Receipts name the SMSC's id: without this index each one is a scan.
CREATE INDEX parts_by_smsc_id ON parts (smsc, smsc_message_id) WHERE smsc_message_id IS NOT NULL;

CREATE TABLE status_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id        bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    account_id        bigint NOT NULL,
    status            text NOT NULL,
    code              text,
    description       text,
    response          text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_events_by_message ON status_events (message_id, id);

-- The seed's read-once status FIFO, per account.
CREATE TABLE status_queue (
    event_id          bigint PRIMARY KEY REFERENCES status_events (id) ON DELETE CASCADE,
    account_id        bigint NOT NULL
);
CREATE INDEX status_queue_by_account ON status_queue (account_id, event_id);

CREATE TABLE mo_messages (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    smsc              text NOT NULL,
    source            text NOT NULL,                     -- the recipient who answered
    destination       text NOT NULL,
    text              text NOT NULL,
    account_id        bigint REFERENCES accounts (id),
    message_id        bigint REFERENCES messages (id) ON DELETE SET NULL,
    received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mo_messages_by_account ON mo_messages (account_id, received_at DESC);

CREATE TABLE opt_outs (
    account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    recipient         text NOT NULL,
    reason            text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, recipient)
);

-- Running daemons: each holds the advisory lock of its key for as long as it lives, so a
-- claim whose worker holds no lock is an orphan of a crash.
CREATE TABLE workers (
    key               bigint PRIMARY KEY,
    host              text NOT NULL,
    pid               integer NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now()
);
