-- Provider accounts through the API: the names of an account's credential fields, so
-- listings can show them without decrypting anything (the values are never shown).
ALTER TABLE provider_accounts ADD COLUMN credential_keys text[] NOT NULL DEFAULT '{}';
CREATE INDEX provider_accounts_platform ON provider_accounts (channel) WHERE tenant_id IS NULL;
