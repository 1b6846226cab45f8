-- The SMPP server (issue 20): an account binds with its code and this password (a scrypt
-- hash, never the secret); its submissions are mailings of source 'smpp', one per bind
-- session and day (source_ref: the session's id and the day).
ALTER TABLE accounts ADD COLUMN smpp_password text;

ALTER TABLE mailings DROP CONSTRAINT mailings_source_check;
ALTER TABLE mailings ADD CONSTRAINT mailings_source_check CHECK (source IN ('smtp', 'ftp', 'http', 'smpp'));
