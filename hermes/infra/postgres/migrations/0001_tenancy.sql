-- Tenants, their API keys, and the platform's admin tokens.
-- Secrets are never stored: keys and tokens are kept as SHA-256 digests.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    -- The first characters of the key (for example `hk_test_3fA9`), shown in listings.
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    mode        text NOT NULL CHECK (mode IN ('test', 'live')),
    scopes      text[] NOT NULL DEFAULT ARRAY['send', 'read', 'manage'],
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE admin_tokens (
    id          uuid PRIMARY KEY,
    prefix      text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
