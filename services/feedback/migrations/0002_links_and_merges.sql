-- Links from feedback items to roadmap items, by item key. A tag `roadmap-<key>` naming an item
-- feedback does not know yet is kept `pending` and resolved when `item.upserted` brings the key;
-- explicit API links are `linked` at once (the key need not be known) and tags never remove them.
CREATE TABLE feedback_link (
    workspace text NOT NULL,
    feedback_id uuid NOT NULL REFERENCES feedback_item (id) ON DELETE CASCADE,
    item_key text NOT NULL,              -- canonical: the projection's key, else upper case
    linked_by text NOT NULL CHECK (linked_by IN ('tag', 'api')),
    status text NOT NULL CHECK (status IN ('linked', 'pending')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feedback_id, item_key),
    CHECK (status = 'linked' OR linked_by = 'tag')
);
CREATE INDEX feedback_link_by_key ON feedback_link (workspace, upper(item_key), status);
SELECT prodops_enable_rls('feedback_link');

-- Feedback's projection of roadmap items (from item.upserted / item.deleted), gated by version.
CREATE TABLE item_key (
    workspace text NOT NULL,
    item_id uuid NOT NULL,
    key text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workspace, item_id)
);
CREATE INDEX item_key_live ON item_key (workspace, upper(key)) WHERE NOT deleted;
SELECT prodops_enable_rls('item_key');

-- Merged duplicates are found from their survivor; tag filters use containment.
CREATE INDEX feedback_item_merged_into ON feedback_item (merged_into)
    WHERE merged_into IS NOT NULL;
CREATE INDEX feedback_item_tags ON feedback_item USING gin (tags);
CREATE INDEX feedback_item_account ON feedback_item (workspace, account_external_id);

-- The duplicates merged into a feedback item, oldest first, with their provenance. A SQL
-- function rather than a view: it runs as the caller, so row-level security still applies.
CREATE FUNCTION merged_duplicates(survivor uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', d.id, 'provider', d.provider, 'source_id', d.source_id,
        'external_id', d.external_id, 'url', d.url
    ) ORDER BY d.created_at, d.id), '[]'::jsonb)
    FROM feedback_item d
    WHERE d.merged_into = survivor
$$;
