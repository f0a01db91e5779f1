-- Each launch's linked issues, kept up to date as facts change, so that readiness reads a
-- launch's counts and the few issues it names without reading all its issues again.
--
-- launch_issue holds each (launch, issue) pair: an issue is linked to a launch it names, and to
-- each launch one of its items is in (by the launch's item keys or the item's own launch key).
-- launch_issue_label holds the labels of the open pairs, launch_issue_tally counts the pairs by
-- state, kind and severity. Statement triggers on the three fact tables keep all three exact,
-- set-wise: a statement that writes a batch of issues, or a rebuild's COPY of all of them, links
-- them in one call.

-- A priority's rank, most severe first (insights.readiness.PRIORITIES).
CREATE FUNCTION issue_severity(priority text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN array_position(ARRAY['urgent', 'high', 'medium', 'low', 'none'], priority);

CREATE TABLE launch_issue (
    workspace text NOT NULL,
    launch text NOT NULL,
    issue_id uuid NOT NULL,
    state text NOT NULL,
    kind text NOT NULL,
    severity smallint NOT NULL,
    closed_at timestamptz,
    PRIMARY KEY (workspace, issue_id, launch)  -- a launch's pairs: the two partial indexes
);
CREATE INDEX launch_issue_open ON launch_issue (workspace, launch, severity, issue_id)
    WHERE state = 'open';
CREATE INDEX launch_issue_closed ON launch_issue (workspace, launch, closed_at)
    WHERE state = 'closed';

-- The labels of each open pair as readiness compares them: plain printable ASCII folded (trimmed,
-- lower case); anything else as '', for Python to fold.
CREATE TABLE launch_issue_label (
    workspace text NOT NULL,
    launch text NOT NULL,
    label text NOT NULL,
    issue_id uuid NOT NULL,
    PRIMARY KEY (workspace, launch, label, issue_id)
);
CREATE INDEX launch_issue_label_of_issue ON launch_issue_label (workspace, issue_id);

CREATE TABLE launch_issue_tally (
    workspace text NOT NULL,
    launch text NOT NULL,
    state text NOT NULL,
    kind text NOT NULL,
    severity smallint NOT NULL,
    issues integer NOT NULL,
    PRIMARY KEY (workspace, launch, state, kind, severity)
);

SELECT prodops_enable_rls('launch_issue');
SELECT prodops_enable_rls('launch_issue_label');
SELECT prodops_enable_rls('launch_issue_tally');

-- Replace the pairs of the issues `ids` of workspace `ws` with what their facts say now.
-- Linear in the issues given, whatever the statistics say (a bulk load outgrows them at once):
-- every statement is planned for its values, and none joins one set to another, so no plan can
-- turn into a scan of one set per row of the other.
CREATE FUNCTION launch_issue_sync(ws text, ids uuid[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    keys text[];
    launches_of jsonb;  -- item key -> the launches it is in
BEGIN
    DELETE FROM launch_issue_label AS l WHERE l.workspace = ws AND l.issue_id = ANY(ids);
    -- Tallies change in launch order, so that two transactions never wait on each other.
    WITH gone AS (
        DELETE FROM launch_issue AS l WHERE l.workspace = ws AND l.issue_id = ANY(ids)
        RETURNING l.launch, l.state, l.kind, l.severity
    )
    INSERT INTO launch_issue_tally AS t (workspace, launch, state, kind, severity, issues)
    SELECT ws, g.launch, g.state, g.kind, g.severity, -count(*) FROM gone AS g
    GROUP BY g.launch, g.state, g.kind, g.severity
    ORDER BY g.launch, g.state, g.kind, g.severity
    ON CONFLICT (workspace, launch, state, kind, severity)
    DO UPDATE SET issues = t.issues + EXCLUDED.issues;

    SELECT coalesce(array_agg(DISTINCT k.key), '{}') INTO keys
    FROM issue_fact AS c, unnest(c.item_keys) AS k (key)
    WHERE c.workspace = ws AND c.id = ANY(ids);

    -- The launches of those item keys: looked up by key for a few, read whole for many.
    SELECT coalesce(jsonb_object_agg(m.key, m.launches), '{}') INTO launches_of
    FROM (
        SELECT l.key, jsonb_agg(DISTINCT l.launch) AS launches
        FROM (
            SELECT k.key, f.key AS launch
            FROM launch_fact AS f, unnest(f.item_keys) AS k (key)
            WHERE f.workspace = ws AND (cardinality(keys) > 1000 OR f.item_keys && keys)
            UNION ALL
            SELECT i.key, i.launch_key FROM item_fact AS i
            WHERE i.workspace = ws AND i.launch_key IS NOT NULL
              AND (cardinality(keys) > 1000 OR i.key = ANY(keys))
        ) AS l
        GROUP BY l.key
    ) AS m
    WHERE cardinality(keys) > 0;

    WITH pairs AS MATERIALIZED (
        SELECT DISTINCT c.id, m.launch, c.state, c.kind, issue_severity(c.priority) AS severity,
               c.closed_at, c.labels
        FROM issue_fact AS c,
             LATERAL (
                 SELECT k.launch FROM unnest(c.launch_keys) AS k (launch)
                 UNION ALL
                 SELECT l.launch
                 FROM unnest(c.item_keys) AS k (key),
                      jsonb_array_elements_text(launches_of -> k.key) AS l (launch)
             ) AS m
        WHERE c.workspace = ws AND c.id = ANY(ids)
    ), labelled AS (
        INSERT INTO launch_issue_label (workspace, launch, label, issue_id)
        SELECT DISTINCT ws, p.launch,
               CASE WHEN label ~ '^[ -~]*$' THEN lower(btrim(label) COLLATE "C") ELSE '' END,
               p.id
        FROM pairs AS p, unnest(p.labels) AS label
        WHERE p.state = 'open'
    ), put AS (
        INSERT INTO launch_issue AS l (workspace, launch, issue_id, state, kind, severity,
                                       closed_at)
        SELECT ws, p.launch, p.id, p.state, p.kind, p.severity, p.closed_at FROM pairs AS p
        RETURNING l.launch, l.state, l.kind, l.severity
    )
    INSERT INTO launch_issue_tally AS t (workspace, launch, state, kind, severity, issues)
    SELECT ws, p.launch, p.state, p.kind, p.severity, count(*) FROM put AS p
    GROUP BY p.launch, p.state, p.kind, p.severity
    ORDER BY p.launch, p.state, p.kind, p.severity
    ON CONFLICT (workspace, launch, state, kind, severity)
    DO UPDATE SET issues = t.issues + EXCLUDED.issues;
END
$$;

CREATE FUNCTION launch_issue_of_issues() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR changed IN SELECT n.workspace, array_agg(n.id) AS ids FROM new_rows AS n
                       GROUP BY n.workspace ORDER BY n.workspace LOOP
            PERFORM launch_issue_sync(changed.workspace, changed.ids);
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        FOR changed IN SELECT o.workspace, array_agg(o.id) AS ids FROM old_rows AS o
                       GROUP BY o.workspace ORDER BY o.workspace LOOP
            PERFORM launch_issue_sync(changed.workspace, changed.ids);
        END LOOP;
    ELSE
        -- Only what readiness reads of an issue: a new title moves nothing.
        FOR changed IN
            SELECT n.workspace, array_agg(n.id) AS ids
            FROM new_rows AS n JOIN old_rows AS o USING (workspace, id)
            WHERE (o.state, o.kind, o.priority, o.labels, o.item_keys, o.launch_keys, o.closed_at)
                  IS DISTINCT FROM
                  (n.state, n.kind, n.priority, n.labels, n.item_keys, n.launch_keys, n.closed_at)
            GROUP BY n.workspace ORDER BY n.workspace
        LOOP
            PERFORM launch_issue_sync(changed.workspace, changed.ids);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- Items or launches that moved ((workspace, item key) pairs): every issue of those item keys.
CREATE FUNCTION launch_issue_of_items(workspaces text[], keys text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed record;
BEGIN
    FOR changed IN
        SELECT m.workspace, array_agg(DISTINCT m.key) AS keys
        FROM unnest(workspaces, keys) AS m (workspace, key)
        GROUP BY m.workspace ORDER BY m.workspace
    LOOP
        PERFORM launch_issue_sync(changed.workspace, ARRAY(
            SELECT c.id FROM issue_fact AS c
            WHERE c.workspace = changed.workspace AND c.item_keys && changed.keys
        ));
    END LOOP;
END
$$;

-- An item's own launch key links its issues: one without it, before and after, moves nothing.
CREATE FUNCTION launch_issue_of_item() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM launch_issue_of_items(array_agg(n.workspace), array_agg(n.key))
        FROM new_rows AS n WHERE n.launch_key IS NOT NULL HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM launch_issue_of_items(array_agg(o.workspace), array_agg(o.key))
        FROM old_rows AS o WHERE o.launch_key IS NOT NULL HAVING count(*) > 0;
    ELSE
        PERFORM launch_issue_of_items(array_agg(m.workspace), array_agg(m.key))
        FROM new_rows AS n JOIN old_rows AS o USING (workspace, id),
             LATERAL (VALUES (o.workspace, o.key), (n.workspace, n.key)) AS m (workspace, key)
        WHERE (o.key, o.launch_key) IS DISTINCT FROM (n.key, n.launch_key)
          AND (o.launch_key IS NOT NULL OR n.launch_key IS NOT NULL)
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

-- A launch links the issues of its item keys (under its key).
CREATE FUNCTION launch_issue_of_launch() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM launch_issue_of_items(array_agg(n.workspace), array_agg(k.key))
        FROM new_rows AS n, unnest(n.item_keys) AS k (key) HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM launch_issue_of_items(array_agg(o.workspace), array_agg(k.key))
        FROM old_rows AS o, unnest(o.item_keys) AS k (key) HAVING count(*) > 0;
    ELSE
        PERFORM launch_issue_of_items(array_agg(n.workspace), array_agg(k.key))
        FROM new_rows AS n JOIN old_rows AS o USING (workspace, id),
             unnest(o.item_keys || n.item_keys) AS k (key)
        WHERE (o.key, o.item_keys) IS DISTINCT FROM (n.key, n.item_keys)
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

-- Transition tables name one event each: three triggers per table.
CREATE TRIGGER launch_issue_inserted AFTER INSERT ON issue_fact
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_issues();
CREATE TRIGGER launch_issue_updated AFTER UPDATE ON issue_fact
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_issues();
CREATE TRIGGER launch_issue_deleted AFTER DELETE ON issue_fact
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_issues();

CREATE TRIGGER launch_issue_inserted AFTER INSERT ON item_fact
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_item();
CREATE TRIGGER launch_issue_updated AFTER UPDATE ON item_fact
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_item();
CREATE TRIGGER launch_issue_deleted AFTER DELETE ON item_fact
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_item();

CREATE TRIGGER launch_issue_inserted AFTER INSERT ON launch_fact
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_launch();
CREATE TRIGGER launch_issue_updated AFTER UPDATE ON launch_fact
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_launch();
CREATE TRIGGER launch_issue_deleted AFTER DELETE ON launch_fact
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION launch_issue_of_launch();

-- What is held already.
SELECT launch_issue_sync(workspace, array_agg(id)) FROM issue_fact GROUP BY workspace;
