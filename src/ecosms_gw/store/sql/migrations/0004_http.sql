-- The HTTP API: mailings have the name given at creation (read and filtered by it), and
-- the key that signs API tokens is shared by every daemon on this database.
ALTER TABLE mailings ADD COLUMN name text;
CREATE INDEX mailings_by_name ON mailings (account_id, name) WHERE name IS NOT NULL;
CREATE TABLE settings (
    name              text PRIMARY KEY,
    value             text NOT NULL
);
-- Events by time, for the monitor's throughput chart: a BRIN index costs next to nothing
-- to keep, as events are written in time order.
CREATE INDEX status_events_by_time ON status_events USING brin (created_at);
