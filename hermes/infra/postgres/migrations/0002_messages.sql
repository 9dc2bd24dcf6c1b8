-- Messages, their timelines and attempts; provider accounts; contacts; tenant webhooks.
-- PostgreSQL is the system of record: NATS only carries work, and anything it
-- loses is re-driven from here (the outbox columns and the open-message index).

CREATE TABLE provider_accounts (
    id              uuid PRIMARY KEY,
    -- NULL tenant: a platform-wide default account.
    tenant_id       uuid REFERENCES tenants (id),
    name            text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('sms', 'email', 'push', 'whatsapp')),
    adapter         text NOT NULL,
    -- NULL: whichever version of the adapter is active.
    adapter_version text,
    mode            text NOT NULL DEFAULT 'live' CHECK (mode IN ('test', 'live')),
    -- Encrypted at rest; never returned by the API.
    credentials     bytea NOT NULL,
    credentials_hint text,
    config          jsonb NOT NULL DEFAULT '{}',
    base_url        text,
    priority        integer NOT NULL DEFAULT 100,
    weight          integer NOT NULL DEFAULT 1 CHECK (weight > 0),
    cost            jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_accounts_tenant ON provider_accounts (tenant_id, channel);

CREATE TABLE contacts (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    external_id  text NOT NULL,
    phone        text,
    email        text,
    push_tokens  text[] NOT NULL DEFAULT '{}',
    whatsapp     text,
    locale       text,
    timezone     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, external_id)
);
CREATE INDEX contacts_phone ON contacts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX contacts_email ON contacts (tenant_id, email) WHERE email IS NOT NULL;

CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    mode             text NOT NULL CHECK (mode IN ('test', 'live')),
    status           text NOT NULL,
    shard            smallint NOT NULL,
    -- The validated, normalised request: addresses, content, plan.
    spec             jsonb NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    idempotency_key  text,
    send_at          timestamptz,
    expires_at       timestamptz,
    -- The next moment the engine must act on this message (guarantee: every
    -- timer survives a restart). NULL once final.
    next_deadline    timestamptz,
    -- The core's serialised cascade state, written by the engine.
    engine_state     bytea,
    outcome          text,
    -- SHA-256 of the request body, to tell a replay from a conflicting reuse of the key.
    idempotency_hash bytea,
    -- Outbox: NULL until the engine has taken the start command off JetStream;
    -- the recovery sweep re-publishes messages that stay NULL too long.
    started_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX messages_tenant_status ON messages (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX messages_unstarted ON messages (created_at) WHERE started_at IS NULL;
CREATE UNIQUE INDEX messages_idempotency ON messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_open ON messages (shard, next_deadline) WHERE finished_at IS NULL;

-- The timeline: every transition of a message, in order of `id`.
CREATE TABLE message_events (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id),
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX message_events_message ON message_events (message_id, id);

CREATE TABLE attempts (
    id                   uuid PRIMARY KEY,
    message_id           uuid NOT NULL REFERENCES messages (id),
    tenant_id            uuid NOT NULL,
    step                 smallint NOT NULL,
    attempt              smallint NOT NULL,
    channel              text NOT NULL,
    provider_account_id  uuid REFERENCES provider_accounts (id),
    adapter              text,
    adapter_version      text,
    adapter_sha256       text,
    -- pending -> sending -> accepted | rejected | failed; receipts move it on.
    status               text NOT NULL DEFAULT 'pending',
    provider_message_id  text,
    error_code           text,
    provider_error_code  text,
    segments             integer,
    cost                 numeric,
    created_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    answered_at          timestamptz,
    receipt_at           timestamptz,
    UNIQUE (message_id, step, attempt)
);
CREATE UNIQUE INDEX attempts_provider_message
    ON attempts (provider_account_id, provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE webhook_endpoints (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    url             text NOT NULL,
    -- Standard Webhooks signing secret ("whsec_" + base64), shown once.
    secret          text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id),
    tenant_id       uuid NOT NULL,
    message_id      uuid,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'abandoned')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, created_at DESC);
