-- The change log of migrations/sqlite/0002_change_log.sql, in PostgreSQL's
-- dialect; see that file for what it is for.
--
-- Why sequence numbers come out in commit order here too, with concurrent
-- writers: the trigger's UPDATE of the single change_marker row takes that
-- row's lock and holds it until the transaction ends. A second writer's
-- UPDATE waits for the lock and then (READ COMMITTED re-reads the row)
-- increments the committed value; a writer that rolls back releases its
-- number to the next. So when a reader sees version M committed, every
-- entry numbered up to M is committed and visible to its next statement,
-- and numbers are contiguous: a reader missing one knows it was pruned.
-- The price is that writers to clients and keys serialize on that row,
-- which admin changes can afford.
--
-- The triggers now fire per row (they were per statement) so that each
-- changed row is logged.
CREATE TABLE changes (
    seq  BIGINT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'key')),
    id   TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);

DROP TRIGGER clients_marks ON clients;
DROP TRIGGER signing_keys_marks ON signing_keys;
DROP FUNCTION warrant_mark_change();

-- TG_ARGV: the kind logged and the name of the table's id column.
CREATE FUNCTION warrant_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_seq BIGINT;
    old_id TEXT;
    new_id TEXT;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_id := to_jsonb(OLD) ->> TG_ARGV[1];
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_id := to_jsonb(NEW) ->> TG_ARGV[1];
    END IF;
    IF new_id IS NOT NULL THEN
        UPDATE change_marker SET version = version + 1 WHERE id = 1 RETURNING version INTO next_seq;
        INSERT INTO changes (seq, kind, id, at)
            VALUES (next_seq, TG_ARGV[0], new_id, EXTRACT(EPOCH FROM now())::BIGINT);
    END IF;
    -- A delete, or a hand-made rename: the old id leaves memory too.
    IF old_id IS NOT NULL AND old_id IS DISTINCT FROM new_id THEN
        UPDATE change_marker SET version = version + 1 WHERE id = 1 RETURNING version INTO next_seq;
        INSERT INTO changes (seq, kind, id, at)
            VALUES (next_seq, TG_ARGV[0], old_id, EXTRACT(EPOCH FROM now())::BIGINT);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_marks AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION warrant_log_change('client', 'client_id');
CREATE TRIGGER signing_keys_marks AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION warrant_log_change('key', 'kid');
