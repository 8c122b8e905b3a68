-- Clients of the client-credentials grant. Secrets are stored only as
-- argon2id PHC strings; `version` changes on every update so that cached
-- credential checks die with the row they were made against.
CREATE TABLE clients (
    client_id      TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    grant_types    TEXT NOT NULL,
    signing_alg    TEXT NOT NULL DEFAULT 'RS256',
    token_ttl_secs INTEGER NOT NULL CHECK (token_ttl_secs > 0),
    -- tokens per minute this client may obtain (per server); NULL: no quota
    quota_per_minute INTEGER CHECK (quota_per_minute > 0),
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- Signing keys, in key sets: one per asymmetric algorithm ("RS256") and one
-- per HS256 audience ("HS256 <audience>"). Each set has at most one `next`
-- (published, not signing) and one `current` (signing) key. The private key
-- is sealed (AES-256-GCM) under the master key whose fingerprint is
-- `master_key_id`; it is NULL once the key is retired.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    key_set       TEXT NOT NULL,
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    private_key   BLOB,
    master_key_id TEXT NOT NULL,
    public_jwk    TEXT,  -- NULL for HS256 secrets, which are never published
    created_at    INTEGER NOT NULL,
    published_at  INTEGER NOT NULL,
    activated_at  INTEGER,
    retire_after  INTEGER,
    -- a promotion of this `next` key scheduled by `warrant keys rotate --schedule`
    promote_at    INTEGER,
    -- when an HS256 secret was last handed out with `keys export-secret`
    exported_at   INTEGER
) STRICT;

CREATE UNIQUE INDEX signing_keys_one_current_per_set ON signing_keys (key_set) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next_per_set ON signing_keys (key_set) WHERE state = 'next';

-- One row whose version every change to clients or keys bumps: servers poll
-- it (a single-row read) to learn that their in-memory copy is stale.
CREATE TABLE change_marker (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO change_marker (id, version) VALUES (1, 0);

CREATE TRIGGER clients_insert_marks AFTER INSERT ON clients
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER clients_update_marks AFTER UPDATE ON clients
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER clients_delete_marks AFTER DELETE ON clients
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_insert_marks AFTER INSERT ON signing_keys
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_update_marks AFTER UPDATE ON signing_keys
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_delete_marks AFTER DELETE ON signing_keys
BEGIN UPDATE change_marker SET version = version + 1 WHERE id = 1; END;
