-- Carry vault schema, version 10: sync that holds against servers we did not write.
--
-- A synced resource is known by its type and logical id within its source, not by the
-- fullUrl the server built for it: a server that builds its base from the Host header,
-- or a provider that moves, must not make the record hold everything twice. Where a
-- vault already holds a resource twice under two spellings of the base, the newest
-- row takes the new identity and the others are marked gone at the source (and kept).
UPDATE resources SET gone_at = coalesce(gone_at, CAST(strftime('%s', 'now') AS INTEGER))
WHERE rid IS NOT NULL
  AND source_id IN (SELECT source_id FROM provider_sources)
  AND id NOT IN (SELECT max(id) FROM resources
                 WHERE rid IS NOT NULL AND source_id IN (SELECT source_id FROM provider_sources)
                 GROUP BY source_id, rtype, rid);
UPDATE resources SET identity = rtype || '/' || rid
WHERE rid IS NOT NULL
  AND source_id IN (SELECT source_id FROM provider_sources)
  AND id IN (SELECT max(id) FROM resources
             WHERE rid IS NOT NULL AND source_id IN (SELECT source_id FROM provider_sources)
             GROUP BY source_id, rtype, rid);

-- Checkpoints per resource type (type-by-type mode), as JSON {type: instant}. They
-- only move forward.
ALTER TABLE provider_sources ADD COLUMN type_since TEXT;
-- When the source's deletions were last listed (Unix seconds).
ALTER TABLE provider_sources ADD COLUMN deletions_at INTEGER;

-- A run in flight: the types it lists (JSON array, fixed when the run starts), what the
-- current search's first page promised and what its pages delivered so far, the
-- shortfalls found (JSON array of reasons), the resources refused because they
-- belong to another patient, and the shared resources its resources refer to (JSON
-- array of Type/id, fetched when the run is through).
ALTER TABLE sync_checkpoints ADD COLUMN types TEXT;
ALTER TABLE sync_checkpoints ADD COLUMN step_total INTEGER;
ALTER TABLE sync_checkpoints ADD COLUMN step_got INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_checkpoints ADD COLUMN short TEXT;
ALTER TABLE sync_checkpoints ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_checkpoints ADD COLUMN refs TEXT;

-- References a source's resources make to shared resources (Practitioner,
-- Organization, Location, Medication…) that the source was asked for and did not
-- have; asked again after a week, not on every sync.
CREATE TABLE sync_unresolved (
    source_id INTEGER NOT NULL REFERENCES sources (id),
    ref       TEXT NOT NULL,
    tried_at  INTEGER NOT NULL,
    PRIMARY KEY (source_id, ref)
) WITHOUT ROWID;
