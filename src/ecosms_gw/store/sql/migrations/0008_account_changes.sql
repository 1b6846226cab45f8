-- Daemons keep accounts and opt-out lists in memory (read on every API call and
-- submission): any change, by any daemon, command or hand-written SQL, tells them at commit.
CREATE FUNCTION notify_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ecosms_accounts', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_account_change();
CREATE TRIGGER opt_outs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON opt_outs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_account_change();
