-- The HTTP API: mailings have the name given at creation (read and filtered by it), and
-- the key that signs API tokens is shared by every daemon on this database.
ALTER TABLE mailings ADD COLUMN name text;
CREATE INDEX mailings_by_name ON mailings (account_id, name) WHERE name IS NOT NULL;
CREATE TABLE settings (
    name              text PRIMARY KEY,
    value             text NOT NULL
);
