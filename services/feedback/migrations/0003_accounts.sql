-- Customer accounts, keyed by the CRM's external id; versioned, since every change is emitted.
CREATE TABLE account (
    workspace text NOT NULL,
    external_id text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
    name text,
    arr numeric(15, 2) NOT NULL DEFAULT 0 CHECK (arr >= 0),
    segment text,
    plan text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, external_id)
);
SELECT prodops_enable_rls('account');
