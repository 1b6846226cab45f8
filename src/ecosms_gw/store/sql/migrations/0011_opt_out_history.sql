-- Opt-out lists managed by people and programs (issue 17): every change, whoever made it
-- (a STOP or START reply, the API, the command line, an import), is an event of the
-- number's history. Events are written by this trigger alone, so that no statement that
-- changes a list can forget one; the source is the statement's `ecosms.source` setting
-- (set by the store for its transaction), else `sql` (a change made by hand).
CREATE TABLE opt_out_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id        bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    recipient         text NOT NULL,
    opted_out         boolean NOT NULL,                  -- true: out of the list's sending; false: back in
    source            text NOT NULL,                     -- reply, api, cli, import, sql
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX opt_out_events_by_number ON opt_out_events (account_id, recipient, id);

CREATE FUNCTION opt_out_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO opt_out_events (account_id, recipient, opted_out, source)
        SELECT n.account_id, n.recipient, true, coalesce(nullif(current_setting('ecosms.source', true), ''), 'sql')
        FROM added n;
    ELSE
        INSERT INTO opt_out_events (account_id, recipient, opted_out, source)
        SELECT o.account_id, o.recipient, false, coalesce(nullif(current_setting('ecosms.source', true), ''), 'sql')
        FROM removed o;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER opt_outs_added AFTER INSERT ON opt_outs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION opt_out_events();
CREATE TRIGGER opt_outs_removed AFTER DELETE ON opt_outs REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION opt_out_events();
CREATE INDEX opt_outs_by_date ON opt_outs (account_id, created_at);

-- With `replies.optout_scope = "global"`, a STOP reply opts the number out of every
-- account's sending: its row is kept under the account it answered, and counts for all.
ALTER TABLE opt_outs ADD COLUMN everywhere boolean NOT NULL DEFAULT false;
CREATE INDEX opt_outs_everywhere ON opt_outs (recipient) WHERE everywhere;
