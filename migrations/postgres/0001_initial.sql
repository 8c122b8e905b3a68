-- The same schema as migrations/sqlite/0001_initial.sql, in PostgreSQL's
-- dialect; see that file for what each table and column is for.
CREATE TABLE clients (
    client_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    grant_types    TEXT NOT NULL,
    signing_alg    TEXT NOT NULL DEFAULT 'RS256',
    token_ttl_secs BIGINT NOT NULL CHECK (token_ttl_secs > 0),
    -- tokens per minute this client may obtain (per server); NULL: no quota
    quota_per_minute BIGINT CHECK (quota_per_minute > 0),
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    version        BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    key_set       TEXT NOT NULL,
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    private_key   BYTEA,
    master_key_id TEXT NOT NULL,
    public_jwk    TEXT,
    created_at    BIGINT NOT NULL,
    published_at  BIGINT NOT NULL,
    activated_at  BIGINT,
    retire_after  BIGINT,
    promote_at    BIGINT,
    exported_at   BIGINT
);

CREATE UNIQUE INDEX signing_keys_one_current_per_set ON signing_keys (key_set) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next_per_set ON signing_keys (key_set) WHERE state = 'next';

CREATE TABLE change_marker (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO change_marker (id, version) VALUES (1, 0);

CREATE FUNCTION warrant_mark_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_marks AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION warrant_mark_change();
CREATE TRIGGER signing_keys_marks AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION warrant_mark_change();
