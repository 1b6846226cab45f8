-- The API's properties are named in one place (the resource tables of store/reads.py),
-- which write the JSON of each read: the status object of 0005 is no longer used.
DROP FUNCTION api_status(bigint, text, text, bigint, timestamptz, text, text, text, text);
