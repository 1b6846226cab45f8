-- Named queries of store/accounts.py: each starts with a `-- name:` line.

-- name: account_insert
INSERT INTO accounts (code, name, senders, smtp_password, ftp_password, api_secret, country,
                      timezone, international, mode, sender_ids, reply_email, ping_url,
                      max_messages, tps, submission_report, priority, validity_hours, webhook_url, webhook_secret,
                      weight, batch_volume, batch_delay_min, quiet_hours, smpp_password)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
        $24, $25)
RETURNING *;

-- name: account_by_code
SELECT * FROM accounts WHERE lower(code) = lower($1);

-- name: account_list
SELECT a.*, (SELECT count(*) FROM mailings m WHERE m.account_id = a.id) AS mailings
FROM accounts a ORDER BY lower(a.code);

-- name: account_update
UPDATE accounts SET name = $2, senders = $3, smtp_password = $4, ftp_password = $5,
       api_secret = $6, country = $7, timezone = $8, international = $9, mode = $10,
       sender_ids = $11, reply_email = $12, ping_url = $13, max_messages = $14, tps = $15,
       submission_report = $16, priority = $17, validity_hours = $18, webhook_url = $19, webhook_secret = $20,
       weight = $21, batch_volume = $22, batch_delay_min = $23, quiet_hours = $24, smpp_password = $25, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: account_mailing_count
SELECT count(*) FROM mailings WHERE account_id = $1;

-- name: account_delete
DELETE FROM accounts WHERE id = $1;

-- name: opt_outs
-- The account's list, and the numbers opted out of every account (a STOP in global scope).
SELECT recipient FROM opt_outs WHERE account_id = $1 UNION SELECT recipient FROM opt_outs WHERE everywhere;
