-- Validation layer 7: the tenant's suppression list and quiet hours.
--
-- A suppressed address is never sent to: its steps are dropped from a message's
-- plan at ingest. Entries come from STOP replies, hard bounces, complaints and
-- the API. Addresses are stored normalised exactly as a message's are (E.164,
-- email with a punycode lowercase domain, the push token as given), so a lookup
-- is an equality on the primary key.

CREATE TABLE suppressions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL CHECK (kind IN ('phone', 'email', 'push', 'whatsapp')),
    address     text NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('stop', 'hard_bounce', 'complaint', 'manual')),
    -- The message whose bounce or complaint put the address here, when there was one.
    message_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, address)
);
CREATE INDEX suppressions_tenant_created
    ON suppressions (tenant_id, created_at DESC, kind DESC, address DESC);

-- {"start": "21:00", "end": "08:00", "timezone": "Europe/Copenhagen"}, or NULL for none.
ALTER TABLE tenants ADD COLUMN quiet_hours jsonb;
-- A contact's own window, in place of the tenant's (the contact's timezone still applies).
ALTER TABLE contacts ADD COLUMN quiet_hours jsonb;
