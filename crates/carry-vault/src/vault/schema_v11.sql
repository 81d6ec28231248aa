-- Carry vault schema, version 11: removing a device replaces the profile's identity.
--
-- The identity's keys as they were before each replacement, on the device that made
-- it: the old key signs the retirement at the endpoint (and the word that vouches for
-- the new keys), and the old X25519 key still opens envelopes sealed to it before the
-- people it knows heard of the change. `finished_at` is set once the endpoint has
-- retired the old key and its mailbox was read to the end. Never in a backup.
CREATE TABLE identity_retired (
    id             INTEGER PRIMARY KEY,
    sign_pkcs8     BLOB NOT NULL,
    enc_secret     BLOB NOT NULL,
    -- The old identity's signature that the current keys replace it.
    vouch          BLOB NOT NULL,
    successor_sign BLOB NOT NULL,
    retired_at     INTEGER NOT NULL,
    finished_at    INTEGER
);

-- When the identity was last replaced (0: never), so devices agree on the newest.
ALTER TABLE identity ADD COLUMN rotated_at INTEGER NOT NULL DEFAULT 0;

-- When a person's keys last changed (0: as first exchanged), so a person's devices
-- agree on the newest.
ALTER TABLE people ADD COLUMN keys_at INTEGER NOT NULL DEFAULT 0;

-- What the person keeps from providers. An outbox row held (`held`: until released) or
-- dropped for good (`dropped`) is not sent.
ALTER TABLE outbox ADD COLUMN hold TEXT CHECK (hold IN ('held', 'dropped'));

-- Which readings go to which provider: per source (0: every source) and reading kind
-- (weight, bp, pulse, glucose, mood) or `sensitive` (anything labelled), allowed or
-- not. Without a rule a reading goes, unless it is labelled sensitive.
CREATE TABLE push_policy (
    source_id INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    allow     INTEGER NOT NULL CHECK (allow IN (0, 1)),
    PRIMARY KEY (source_id, kind)
) WITHOUT ROWID;

-- Readings the person deleted or amended after they reached a provider: the version
-- marked entered-in-error that replaces the provider's copy (an update of the id the
-- provider gave it), sent like a reading, once. A provider's copy with one of these
-- identifiers is not stored again.
CREATE TABLE retractions (
    id              INTEGER PRIMARY KEY,
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    remote_id       TEXT NOT NULL,
    identifier      TEXT NOT NULL,
    json            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'stuck')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (source_id, identifier)
);
CREATE INDEX retractions_identifier ON retractions (identifier);

-- Carers' entries waiting for the person's approval (when they asked to approve them):
-- the grant, the carer's short id, and the entries as sent (a JSON array of resource
-- texts). Applied, or refused, when the person decides.
CREATE TABLE pending_contributions (
    id          INTEGER PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    person      TEXT NOT NULL,
    resources   TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

-- In a record shared with this profile: the other sources the sender holds each item's
-- fact from (one copy travels, the others are named), as a JSON array.
ALTER TABLE shared_items ADD COLUMN also TEXT;
CREATE INDEX shared_items_resource ON shared_items (resource_id);
