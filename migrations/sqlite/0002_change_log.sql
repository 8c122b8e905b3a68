-- What changed, not only that something did: every bump of
-- change_marker.version now also logs the row it was for, under that very
-- version as its sequence number. A server holding the state as of version S
-- re-reads only the rows logged after S instead of every client.
--
-- Sequence numbers are contiguous from here on: every bump logs exactly one
-- entry, and SQLite has one writer at a time, so a server that finds fewer
-- entries in (S, marker] than marker - S knows some were pruned (or predate
-- this migration) and reloads everything.
--
-- `at` is the database's clock, so pruning compares like with like. Servers
-- prune the log while polling (see src/registry.rs): entries older than
-- `change_log_retention_secs`, always keeping the last
-- `change_log_min_entries`.
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('client', 'key')),
    id   TEXT NOT NULL,
    at   INTEGER NOT NULL
) STRICT;
CREATE INDEX changes_at ON changes (at);

DROP TRIGGER clients_insert_marks;
DROP TRIGGER clients_update_marks;
DROP TRIGGER clients_delete_marks;
DROP TRIGGER signing_keys_insert_marks;
DROP TRIGGER signing_keys_update_marks;
DROP TRIGGER signing_keys_delete_marks;

CREATE TRIGGER clients_insert_marks AFTER INSERT ON clients
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
CREATE TRIGGER clients_update_marks AFTER UPDATE ON clients
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
-- Warrant never renames a client, but a hand-made UPDATE could: the old id
-- must then leave the servers' memory too.
CREATE TRIGGER clients_rename_marks AFTER UPDATE OF client_id ON clients
WHEN OLD.client_id <> NEW.client_id
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'client', OLD.client_id, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
CREATE TRIGGER clients_delete_marks AFTER DELETE ON clients
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'client', OLD.client_id, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
-- Keys are few and a change to one reloads them all, so one entry per
-- changed row names it for the log's readers and nothing more.
CREATE TRIGGER signing_keys_insert_marks AFTER INSERT ON signing_keys
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'key', NEW.kid, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
CREATE TRIGGER signing_keys_update_marks AFTER UPDATE ON signing_keys
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'key', NEW.kid, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
CREATE TRIGGER signing_keys_delete_marks AFTER DELETE ON signing_keys
BEGIN
    UPDATE change_marker SET version = version + 1 WHERE id = 1;
    INSERT INTO changes (seq, kind, id, at)
        SELECT version, 'key', OLD.kid, CAST(strftime('%s', 'now') AS INTEGER)
        FROM change_marker WHERE id = 1;
END;
