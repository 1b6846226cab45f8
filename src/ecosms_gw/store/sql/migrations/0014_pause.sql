-- Pause and resume (issue 15): a paused mailing's waiting messages are `paused`, out of
-- the queue; resumed, they are queued again (their queues come back by the trigger of
-- 0013). The constraints are not checked against existing rows, which hold by
-- construction (no scan of a large table while migrating).
ALTER TABLE mailings DROP CONSTRAINT mailings_status_check;
ALTER TABLE mailings ADD CONSTRAINT mailings_status_check
    CHECK (status IN ('created', 'canceled', 'interrupted', 'paused', 'ended')) NOT VALID;
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('queued', 'paused', 'claimed', 'submitting', 'submitted', 'done', 'canceled')) NOT VALID;

-- A message going back to the queue (a link lost before writing it, a dead daemon's
-- claim) while its mailing is paused waits with the others instead.
CREATE FUNCTION messages_held_if_paused() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM mailings WHERE id = NEW.mailing_id AND status = 'paused') THEN
        NEW.state := 'paused';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_held BEFORE UPDATE ON messages FOR EACH ROW
    WHEN (NEW.state = 'queued' AND OLD.state <> 'queued')
    EXECUTE FUNCTION messages_held_if_paused();

-- Paused messages, counted for the monitor and `ecosms-gw queue`.
CREATE INDEX messages_paused ON messages (mailing_id) WHERE state = 'paused';
