-- Row-level security for workspace-owned tables.
-- The application role (named by the migrator in prodops.app_role) sees only the rows of the
-- workspace in prodops.workspace; the schema owner (relay, consumers, migrations) sees all.
-- FORCE makes the policies apply to the owner too, so the owner needs its own policy.
CREATE OR REPLACE FUNCTION prodops_enable_rls(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    app_role text := current_setting('prodops.app_role');
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format(
        'CREATE POLICY workspace_isolation ON %s TO %I '
        'USING (workspace = current_setting(''prodops.workspace'', true)) '
        'WITH CHECK (workspace = current_setting(''prodops.workspace'', true))',
        target, app_role);
    EXECUTE format(
        'CREATE POLICY service_owner ON %s TO CURRENT_USER USING (true) WITH CHECK (true)',
        target);
END
$$;
