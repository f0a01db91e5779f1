-- The stored issues of a batch's keys, each locked, one unique-index lookup per key in the order
-- given (callers sort them, so two transactions never wait on each other). Planned for each
-- call's values: a plan cached while the table was young and nearly empty read every issue of
-- the workspace once per key. The normaliser had prepared the statement afresh for each round,
-- a round trip of its own; a call is one.
CREATE FUNCTION tracker_issues_locked(ws text, providers text[], external_ids text[])
RETURNS SETOF tracker_issue
LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    SELECT t.* FROM unnest(providers, external_ids) AS k (provider, external_id)
    CROSS JOIN LATERAL (
        SELECT * FROM tracker_issue AS i
        WHERE i.workspace = ws AND i.provider = k.provider AND i.external_id = k.external_id
        LIMIT 1
        FOR UPDATE
    ) AS t;
END
$$;
