-- Carry vault schema, version 4: SMART Health Links the person made.

CREATE TABLE shares (
    -- The link's id at the endpoint (the manifest path's random part).
    id            TEXT PRIMARY KEY,
    endpoint      TEXT NOT NULL,
    -- The link as given out: the viewer address with the shlink:/ payload.
    link          TEXT NOT NULL,
    preset        TEXT NOT NULL,
    -- The scope, as JSON, for a custom preset.
    scope         TEXT,
    flags         TEXT NOT NULL,
    -- The file key. It never leaves the device except inside the link.
    key           BLOB NOT NULL,
    label         TEXT,
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    -- SHA-256 of the summary last uploaded, so a long-lived link is re-uploaded only
    -- when the record changed.
    content_hash  BLOB NOT NULL,
    resources     INTEGER NOT NULL,
    -- The last access-log entry copied into the audit log.
    last_access   INTEGER NOT NULL DEFAULT 0,
    accesses      INTEGER NOT NULL DEFAULT 0,
    -- Whether this is the emergency card's link.
    emergency_card INTEGER NOT NULL DEFAULT 0
);
