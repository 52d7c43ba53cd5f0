-- Vendor credentials with a lifecycle (an OAuth grant whose access token expires and whose
-- refresh token rotates): one row per account, shared by every process that calls it, so the
-- newest refresh token survives restarts and two instances never spend the same one (the row
-- is locked while one of them refreshes). Tokens are encrypted by the application (AES-GCM
-- under CREDENTIALS_KEY, the account name bound in as associated data): the database never
-- sees one in clear. `key_id` names the key a row was sealed with, so a wrong key is a clear
-- error instead of a decryption failure.
CREATE TABLE IF NOT EXISTS vendor_credentials (
    account           TEXT PRIMARY KEY,
    vendor            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    access_token      BYTEA NOT NULL,
    refresh_token     BYTEA,
    expires_at        TIMESTAMPTZ,
    -- A digest of the credential the row was seeded with from the settings: a seller who
    -- authorises again and configures the new grant replaces the row; the same seed again
    -- (every restart) leaves the rotated tokens alone.
    seed_fingerprint  TEXT,
    revoked_at        TIMESTAMPTZ,
    revoked_reason    TEXT,
    refreshed_at      TIMESTAMPTZ,
    refreshes         BIGINT NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
