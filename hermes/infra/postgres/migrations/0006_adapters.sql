-- Provider adapter versions (WASM modules stored by SHA-256) and their activations.
-- One version per adapter name is `active`; every process converges on it
-- (announced over NATS, reconciled against this table every few seconds).

CREATE TABLE adapter_versions (
    sha256            text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    name              text NOT NULL,
    version           text NOT NULL,
    wasm              bytea NOT NULL,
    manifest          jsonb NOT NULL,
    size              integer NOT NULL,
    -- Shipped inside Hermes (hermes/providers/builtin/) rather than uploaded.
    builtin           boolean NOT NULL DEFAULT false,
    -- What the validation gate found: {"status": "passed"|"skipped", ...}.
    golden            jsonb NOT NULL DEFAULT '{}',
    smoke             jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'uploaded'
                      CHECK (status IN ('uploaded', 'active', 'retired', 'quarantined')),
    uploaded_at       timestamptz NOT NULL DEFAULT now(),
    activated_at      timestamptz,
    quarantined_at    timestamptz,
    quarantine_reason text
);
-- An uploaded name and version names one module. Built-in modules may repeat a version
-- (a rebuilt release of Hermes ships other bytes under the same manifest version).
CREATE UNIQUE INDEX adapter_versions_name_version
    ON adapter_versions (name, version) WHERE NOT builtin;
CREATE UNIQUE INDEX adapter_versions_one_active
    ON adapter_versions (name) WHERE status = 'active';

-- Every change of an adapter's active version, in order. `previous_sha256` is the
-- version a rollback returns to: a rollback pops this stack, it does not toggle.
CREATE TABLE adapter_activations (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    sha256          text NOT NULL REFERENCES adapter_versions (sha256),
    previous_sha256 text REFERENCES adapter_versions (sha256),
    action          text NOT NULL CHECK (action IN ('seed', 'activate', 'rollback', 'quarantine')),
    reason          text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX adapter_activations_name ON adapter_activations (name, id);
