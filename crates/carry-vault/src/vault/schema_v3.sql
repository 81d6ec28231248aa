-- Carry vault schema, version 3: the profile's identity, the people it knows, grants
-- in both directions, sealed envelopes on their way to the relay, what each grantee
-- holds, and the hash-chained audit log.

-- The profile's own keys: Ed25519 (PKCS#8) for signing, X25519 for sealing, and the
-- key that wraps the vaults of records other people share with this profile.
CREATE TABLE identity (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    sign_pkcs8   BLOB NOT NULL,
    enc_secret   BLOB NOT NULL,
    received_key BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);

-- People whose keys this profile holds: from an invite it made, or one it accepted.
CREATE TABLE people (
    id          INTEGER PRIMARY KEY,
    -- The short id commands take: hex of the first 5 bytes of SHA-256(sign_key).
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    sign_key    BLOB NOT NULL UNIQUE,
    enc_key     BLOB NOT NULL,
    mailbox     TEXT NOT NULL,
    relay       TEXT NOT NULL,
    -- When the person was marked verified (fingerprints compared), or null.
    verified_at INTEGER,
    added_at    INTEGER NOT NULL
);

-- Invites this profile made. Only a hash of the one-time secret is kept.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    person_id   INTEGER REFERENCES people (id)
);

-- Grants: 'out' are this profile's grants to others; 'in' are grants others made to
-- this profile (the grantee side), whose record lives in its own vault.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    direction   TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    person_id   INTEGER NOT NULL REFERENCES people (id),
    -- The signed grant document, exactly as signed.
    doc         TEXT NOT NULL,
    role        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- When it ended, and why: 'revoked' or 'expired'. Ended grants are kept for the
    -- record of who could see what.
    ended_at    INTEGER,
    ended_why   TEXT CHECK (ended_why IN ('revoked', 'expired')),
    -- The relay tag its envelopes carry (opaque, random).
    tag         TEXT NOT NULL,
    -- The next sequence number this profile sends on this grant.
    next_seq    INTEGER NOT NULL DEFAULT 1,
    -- The last sequence number this profile accepted on this grant.
    last_seq    INTEGER NOT NULL DEFAULT 0,
    last_delivery_at INTEGER,
    -- Whether the next delivery sends the whole scoped record (a new grant, or the
    -- grantee asked after a gap).
    reset_next  INTEGER NOT NULL DEFAULT 1,
    -- Whether the relay's copies were deleted after the grant ended.
    relay_cleared INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_person ON grants (person_id);

-- What each grantee holds: the record's key for each resource sent, and its hash,
-- so the next delivery sends exactly the difference.
CREATE TABLE grant_items (
    grant_id    TEXT NOT NULL REFERENCES grants (id),
    rkey        TEXT NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (grant_id, rkey)
) WITHOUT ROWID;

-- Sealed envelopes waiting to be posted. Written in the same transaction as the state
-- they carry, so a crash never loses or doubles a change.
CREATE TABLE relay_outbox (
    id         INTEGER PRIMARY KEY,
    mailbox    TEXT NOT NULL,
    tag        TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- In a vault that holds a record shared with this device: the sender's key for each
-- resource, so changes and removals find it.
CREATE TABLE shared_items (
    rkey        TEXT PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources (id)
) WITHOUT ROWID;

-- The audit log: append-only, each row chained to the one before by SHA-256.
CREATE TABLE audit_log (
    seq    INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    event  TEXT NOT NULL,
    party  TEXT,
    detail TEXT NOT NULL,
    prev   BLOB NOT NULL,
    hash   BLOB NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
