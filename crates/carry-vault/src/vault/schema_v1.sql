-- Carry vault schema, version 1.

-- Profile facts: name, creation time, the Patient the profile is about.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Where resources came from: a file import, a provider, or the person.
CREATE TABLE sources (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('file', 'provider', 'self')),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, name)
);

-- One row per import run, with its outcome.
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    source_id   INTEGER NOT NULL REFERENCES sources (id),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    imported    INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    rejected    INTEGER NOT NULL
);

-- Every FHIR resource, kept exactly as received (insignificant whitespace removed),
-- next to the columns that lists, filters and grants need.
CREATE TABLE resources (
    id            INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL REFERENCES sources (id),
    -- fullUrl, else ResourceType/id, else sha256:<content>; plus /_history/<versionId>.
    identity      TEXT NOT NULL,
    rtype         TEXT NOT NULL,
    rid           TEXT,
    full_url      TEXT,
    category      TEXT NOT NULL,
    -- The clinically relevant date as written, and its start in Unix seconds (UTC)
    -- for sorting; undated resources sort last.
    date          TEXT,
    date_sort     INTEGER NOT NULL,
    display       TEXT NOT NULL,
    -- JSON array of {system, code, display}.
    codes         TEXT NOT NULL,
    -- Space-separated HL7 v3 sensitivity and confidentiality codes, and the JSON list
    -- of {label, rule} that put them there.
    sensitivity   TEXT NOT NULL,
    label_rules   TEXT NOT NULL,
    entered_by    TEXT NOT NULL CHECK (entered_by IN ('provider', 'self', 'carer')),
    content_hash  BLOB NOT NULL,
    json          TEXT NOT NULL,
    import_id     INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX resources_identity ON resources (source_id, identity);
CREATE INDEX resources_timeline ON resources (date_sort DESC, id DESC);
CREATE INDEX resources_category ON resources (category, date_sort DESC, id DESC);
CREATE INDEX resources_type ON resources (rtype, rid);

-- Full-text search over display lines and code displays. Contentless: the text
-- lives in `resources`; rowid = resources.id.
CREATE VIRTUAL TABLE resources_fts USING fts5 (
    display,
    codes,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
