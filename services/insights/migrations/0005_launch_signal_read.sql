-- One launch's readiness read in a single statement, under the same confinement as every request
-- (the application role, row-level security for one workspace): the settings are transaction-
-- local, and the statement is its own transaction. It saves a read three of its four round trips
-- (BEGIN, the settings, COMMIT), which were most of its time in the database.
CREATE FUNCTION launch_signal_of(ws text, app_role text, wanted text)
RETURNS SETOF launch_signal
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('prodops.workspace', ws, true), set_config('role', app_role, true);
    RETURN QUERY SELECT * FROM launch_signal WHERE launch_key = wanted;
END
$$;

-- Only the service's own connections call it.
REVOKE ALL ON FUNCTION launch_signal_of(text, text, text) FROM PUBLIC;
