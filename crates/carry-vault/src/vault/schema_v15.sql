-- Schema 15: a provider can be signed in to with NHS login (OpenID Connect, RS512 ID
-- tokens, private_key_jwt), whose issuer is not the FHIR server, and read through GP
-- Connect's structured record (FHIR STU3) instead of R4 searches. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with its rows; nothing
-- else refers to it by a foreign key or a trigger.
CREATE TABLE provider_sources_v15 (
    source_id      INTEGER PRIMARY KEY REFERENCES sources (id),
    kind           TEXT NOT NULL CHECK (kind IN ('gp', 'hospital', 'social-care', 'other')),
    base_url       TEXT NOT NULL,
    auth           TEXT NOT NULL CHECK (auth IN ('smart', 'bearer', 'none', 'nhs-login')),
    client_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    push           INTEGER NOT NULL,
    capabilities   TEXT,
    discovered_at  INTEGER,
    patient_id     TEXT,
    state          TEXT NOT NULL DEFAULT 'idle',
    last_error     TEXT,
    since          TEXT,
    last_synced_at INTEGER,
    full_synced_at INTEGER,
    type_since     TEXT,
    deletions_at   INTEGER,
    -- For NHS login: the issuer (its discovery document is under it).
    issuer         TEXT,
    -- How the record is read: 'fhir' (R4 searches) or 'gp-connect' (the structured
    -- record operation, STU3, converted at arrival).
    api            TEXT NOT NULL DEFAULT 'fhir' CHECK (api IN ('fhir', 'gp-connect')),
    CHECK ((auth = 'nhs-login') = (issuer IS NOT NULL))
);
INSERT INTO provider_sources_v15 (source_id, kind, base_url, auth, client_id, scope, push,
    capabilities, discovered_at, patient_id, state, last_error, since, last_synced_at,
    full_synced_at, type_since, deletions_at)
SELECT source_id, kind, base_url, auth, client_id, scope, push, capabilities,
    discovered_at, patient_id, state, last_error, since, last_synced_at, full_synced_at,
    type_since, deletions_at
FROM provider_sources;
DROP TABLE provider_sources;
ALTER TABLE provider_sources_v15 RENAME TO provider_sources;
