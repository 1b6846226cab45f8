-- The message lifecycle in one place (docs/lifecycle.md is its map).

-- Status events are written by this trigger alone: whatever statement changes a message's
-- status, code or reply, its event is written in the same statement, so no query can
-- forget one. A statement trigger with transition tables costs one join per statement,
-- not a function call per row.
CREATE FUNCTION message_status_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_events (message_id, account_id, status, code, description, response)
    SELECT n.id, n.account_id, n.status, n.code, n.description, n.response
    FROM changed_new n JOIN changed_old o ON o.id = n.id
    WHERE n.status IS DISTINCT FROM o.status OR n.code IS DISTINCT FROM o.code
       OR n.response IS DISTINCT FROM o.response
    ORDER BY n.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_status_events AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION message_status_events();
