-- Named queries of store/optouts.py: each starts with a `-- name:` line.

-- name: set_source
-- Where the changes of this transaction come from, for their history (0011).
SELECT set_config('ecosms.source', $1, true);

-- name: opt_out
-- Numbers ($2) out of the account's sending; how many were not already.
WITH added AS (
    INSERT INTO opt_outs (account_id, recipient, reason)
    SELECT $1, number, $3 FROM unnest($2::text[]) AS number
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added;

-- name: opt_in
-- Numbers ($2) back in the account's sending; how many were out.
WITH removed AS (
    DELETE FROM opt_outs WHERE account_id = $1 AND recipient = ANY($2::text[])
    RETURNING 1
)
SELECT count(*) FROM removed;

-- name: list_opt_outs
-- The account's list: numbers ($2; NULL: all), opted out in [$3, $4), oldest first.
-- $7: zone.
WITH r AS (
    SELECT o.recipient AS number, o.created_at AS date, o.reason, count(*) OVER () AS total
    FROM opt_outs o
    WHERE o.account_id = $1 AND ($2::text[] IS NULL OR o.recipient = ANY($2))
      AND ($3::timestamptz IS NULL OR o.created_at >= $3) AND ($4::timestamptz IS NULL OR o.created_at < $4)
    ORDER BY o.created_at, o.recipient
    LIMIT $5 OFFSET $6
)
SELECT count(*) AS size, coalesce(max(total), 0) AS total, coalesce(json_agg(/*json:optout:$7*/), '[]')::text AS list
FROM r;

-- name: opt_out_history
-- Each change of the account's list for numbers $2, oldest first, its time shown in zone $3.
SELECT recipient, opted_out, source, to_char(created_at AT TIME ZONE $3, 'YYYY-MM-DD HH24:MI:SS') AS date
FROM opt_out_events
WHERE account_id = $1 AND recipient = ANY($2::text[])
ORDER BY recipient, id;
