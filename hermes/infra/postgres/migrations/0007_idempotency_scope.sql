-- Idempotency keys are scoped by tenant and mode (a test key and a live key never
-- replay each other's requests) and kept for 24 hours: after that a key is free
-- again. The partial index on created_at lets the sweep find expired keys cheaply.

DROP INDEX messages_idempotency;
CREATE UNIQUE INDEX messages_idempotency ON messages (tenant_id, mode, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_idempotency_expiry ON messages (created_at)
    WHERE idempotency_key IS NOT NULL;
