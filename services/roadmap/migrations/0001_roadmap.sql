-- Per-workspace settings: the item key prefix and the last number handed out under it.
CREATE TABLE workspace_settings (
    workspace text PRIMARY KEY,
    item_key_prefix text NOT NULL DEFAULT 'ITEM',
    last_item_number integer NOT NULL DEFAULT 0,
    checklist_template jsonb NOT NULL DEFAULT '[]'
);
SELECT prodops_enable_rls('workspace_settings');

CREATE TABLE objective (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    weight double precision NOT NULL CHECK (weight > 0),
    status text NOT NULL CHECK (status IN ('active', 'achieved', 'dropped')),
    period_start date,
    period_end date,
    parent_id uuid REFERENCES objective (id) ON DELETE SET NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objective_listing ON objective (workspace, created_at DESC, id DESC);
SELECT prodops_enable_rls('objective');

-- Launch keys are given by the caller, unique case-insensitively, and never change: item events
-- carry them.
CREATE TABLE launch (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    target_date date,
    status text NOT NULL CHECK (status IN ('planned', 'in_progress', 'launched', 'cancelled')),
    checklist jsonb NOT NULL DEFAULT '[]',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX launch_key ON launch (workspace, upper(key));
CREATE INDEX launch_listing ON launch (workspace, created_at DESC, id DESC);
SELECT prodops_enable_rls('launch');

-- Item keys (`<PREFIX>-<n>`, upper case) are handed out by workspace_settings and never change.
CREATE TABLE item (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    key text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    status text NOT NULL
        CHECK (status IN ('idea', 'planned', 'in_progress', 'shipped', 'dropped')),
    horizon text CHECK (horizon IN ('now', 'next', 'later')),
    effort double precision NOT NULL DEFAULT 1 CHECK (effort > 0),
    area text,
    objective_ids uuid[] NOT NULL DEFAULT '{}',
    launch_id uuid REFERENCES launch (id) ON DELETE SET NULL,
    parent_id uuid REFERENCES item (id) ON DELETE SET NULL,
    shipped_at timestamptz,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace, key)
);
CREATE INDEX item_listing ON item (workspace, created_at DESC, id DESC);
CREATE INDEX item_objectives ON item USING gin (objective_ids);
CREATE INDEX item_launch ON item (launch_id);
SELECT prodops_enable_rls('item');

-- Appended on every status change of an item (its creation included), kept after edits.
CREATE TABLE item_status_change (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    item_id uuid NOT NULL REFERENCES item (id) ON DELETE CASCADE,
    from_status text,
    to_status text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_status_change_item ON item_status_change (item_id, changed_at, id);
SELECT prodops_enable_rls('item_status_change');
