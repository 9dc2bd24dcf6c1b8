-- Validation layer 8: a tenant's own rate limit and daily quota.
--
-- Only the values an operator set are stored ({"rate_per_s", "burst", "daily_quota"});
-- a missing key takes the platform default from the settings, so changing a default
-- reaches every tenant that was not given its own.

ALTER TABLE tenants ADD COLUMN limits jsonb NOT NULL DEFAULT '{}'::jsonb;
