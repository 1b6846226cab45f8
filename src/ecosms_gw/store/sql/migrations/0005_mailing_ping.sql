-- A ping URL for one mailing (`pingUrl` of the HTTP API), called instead of the account's.
ALTER TABLE mailings ADD COLUMN ping_url text;
CREATE INDEX mailings_with_ping ON mailings (id) WHERE ping_url IS NOT NULL;

-- A ping carries the URL in force when its event was written.
ALTER TABLE pings ADD COLUMN url text;
UPDATE pings p SET url = a.ping_url FROM accounts a WHERE a.id = p.account_id;
DELETE FROM pings WHERE url IS NULL;
ALTER TABLE pings ALTER COLUMN url SET NOT NULL;

-- While no mailing has a URL of its own, events are matched to accounts only: looking up
-- each event's mailing would cost every receipt a little for nobody.
CREATE OR REPLACE FUNCTION queue_pings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM mailings WHERE ping_url IS NOT NULL) THEN
        INSERT INTO pings (account_id, message_id, url)
        SELECT e.account_id, e.message_id, coalesce(g.ping_url, a.ping_url)
        FROM new_events e
        JOIN accounts a ON a.id = e.account_id
        JOIN messages m ON m.id = e.message_id
        JOIN mailings g ON g.id = m.mailing_id
        WHERE coalesce(g.ping_url, a.ping_url) IS NOT NULL;
    ELSE
        INSERT INTO pings (account_id, message_id, url)
        SELECT e.account_id, e.message_id, a.ping_url
        FROM new_events e JOIN accounts a ON a.id = e.account_id
        WHERE a.ping_url IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;

-- A status as the HTTP API shows it (the seed's status resource), written by PostgreSQL
-- for the three reads that return statuses. A plain SQL function: the planner inlines it.
CREATE FUNCTION api_status(sms_id bigint, status text, recipient text, mailing_id bigint, at timestamptz,
                           code text, description text, response text, zone text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('smsId', sms_id, 'status', status, 'recipient', recipient,
                             'mailingId', mailing_id, 'date', to_char(at AT TIME ZONE zone, 'YYYY-MM-DD HH24:MI:SS'),
                             'code', code, 'description', description, 'response', response)
$$;
