-- Carry vault schema, version 5: the recovery secret and the backup key.

CREATE TABLE backup_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    -- The secret the recovery code writes out, and the key backups are sealed
    -- under (wrapped, in each backup, by a key the code derives).
    recovery_secret   BLOB NOT NULL,
    backup_key        BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    -- When the person showed they had written the code down.
    confirmed_at      INTEGER,
    last_backup_at    INTEGER,
    last_backup_id    TEXT,
    last_backup_bytes INTEGER
);
