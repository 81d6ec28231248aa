-- Carry vault schema, version 2: provider sources and their sync, grouping of the same
-- fact from several sources, deletions at the source, and the outbox.

-- A provider's FHIR endpoint, one per `sources` row of kind 'provider'.
CREATE TABLE provider_sources (
    source_id      INTEGER PRIMARY KEY REFERENCES sources (id),
    kind           TEXT NOT NULL CHECK (kind IN ('gp', 'hospital', 'social-care', 'other')),
    base_url       TEXT NOT NULL,
    auth           TEXT NOT NULL CHECK (auth IN ('smart', 'bearer', 'none')),
    client_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    -- Whether the patient's own readings are sent here.
    push           INTEGER NOT NULL,
    -- What discovery found, as JSON (see sync/discover.rs), and when (Unix seconds).
    capabilities   TEXT,
    discovered_at  INTEGER,
    -- The Patient id this provider knows the person by.
    patient_id     TEXT,
    -- The state machine: discover, authorize, pull, push, idle, error, offline.
    state          TEXT NOT NULL DEFAULT 'idle',
    last_error     TEXT,
    -- Pull strictly after this server instant next time (null: everything).
    since          TEXT,
    last_synced_at INTEGER,
    full_synced_at INTEGER
);

-- Credentials for a provider. The vault is encrypted, and these rows never leave it:
-- not in exports, and (by design) not in backups.
CREATE TABLE source_tokens (
    source_id         INTEGER PRIMARY KEY REFERENCES sources (id),
    access_token      TEXT,
    -- When to refresh the access token (Unix seconds), a little before it expires.
    access_expires_at INTEGER,
    refresh_token     TEXT,
    -- A login in progress: PKCE verifier, state and redirect URI, as JSON.
    pending_login     TEXT
);

-- Where an interrupted pull resumes. Written in the same transaction as each page.
CREATE TABLE sync_checkpoints (
    source_id  INTEGER PRIMARY KEY REFERENCES sources (id),
    -- 'everything', 'by-type' or 'plain'.
    mode       TEXT NOT NULL,
    -- The run's number; resources seen in a full run carry it (deletion detection).
    run        INTEGER NOT NULL,
    -- Whether this run lists everything the source holds (no since).
    full       INTEGER NOT NULL,
    since      TEXT,
    -- The resource type being listed (by-type and plain modes), as an index.
    type_index INTEGER NOT NULL,
    -- The next page's URL exactly as the server gave it, or null to start the type.
    next_url   TEXT,
    -- The newest meta.lastUpdated seen so far in this run.
    newest     TEXT,
    fetched    INTEGER NOT NULL
);

-- Grouping: keys that say two resources are the same fact (identifier keys first,
-- then one clinical-equivalence key); see record/sameness.rs.
ALTER TABLE resources ADD COLUMN group_id INTEGER;
ALTER TABLE resources ADD COLUMN seen_run INTEGER;
-- When the source stopped holding it (Unix seconds); the resource is kept.
ALTER TABLE resources ADD COLUMN gone_at INTEGER;
CREATE TABLE resource_keys (
    key         TEXT NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES resources (id),
    PRIMARY KEY (key, resource_id)
) WITHOUT ROWID;
CREATE INDEX resource_keys_by_resource ON resource_keys (resource_id);
CREATE INDEX resources_group ON resources (group_id);
-- The timeline lists one line per fact (a group's first member); these partial
-- indexes let it page without stepping over the other members.
CREATE INDEX resources_timeline_heads ON resources (date_sort DESC, id DESC)
    WHERE group_id IS NULL OR group_id = id;
CREATE INDEX resources_category_heads ON resources (category, date_sort DESC, id DESC)
    WHERE group_id IS NULL OR group_id = id;

-- The patient's own readings on their way to providers.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    resource_id     INTEGER NOT NULL REFERENCES resources (id),
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    -- The conditional-create identifier, as system|value.
    identifier      TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'stuck')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    remote_id       TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (resource_id, source_id)
);
