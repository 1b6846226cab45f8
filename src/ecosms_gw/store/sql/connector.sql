-- Named queries of store/connector.py: each starts with a `-- name:` line.

-- name: ping
SELECT 1;

-- name: setting
-- A value shared by every daemon, created by the first that needs it.
WITH created AS (
    INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value
)
SELECT value FROM created UNION ALL SELECT value FROM settings WHERE name = $1 LIMIT 1;
