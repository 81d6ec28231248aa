-- Carry vault schema, version 6: the person's preferences.

CREATE TABLE prefs (
    -- One row per preference (see docs/formats.md, "Preferences").
    key        TEXT PRIMARY KEY,
    -- The value, as JSON.
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    -- One more than the table's highest at each change, so a person's devices can
    -- merge preferences by (lamport, then value).
    lamport    INTEGER NOT NULL DEFAULT 0
);
