-- Carry vault schema, version 8: a person's devices sharing one profile.

-- This device's own keys, for the channel between the person's devices. Never in a
-- backup: a restored or moved profile makes its own.
CREATE TABLE device_self (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    device     TEXT NOT NULL,
    sign_pkcs8 BLOB NOT NULL,
    enc_secret BLOB NOT NULL,
    -- The Lamport clock: past every change seen from any device.
    lamport    INTEGER NOT NULL DEFAULT 0
);

-- The person's devices, this one included. The same on every device.
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    sign_key       BLOB NOT NULL,
    enc_key        BLOB NOT NULL,
    added_at       INTEGER NOT NULL,
    -- Removed devices stay listed; nothing more is sent to them or taken from them.
    removed_at     INTEGER,
    -- The one device that talks to other people's devices through the relay.
    is_primary     INTEGER NOT NULL DEFAULT 0,
    lamport        INTEGER NOT NULL DEFAULT 0,
    lamport_device TEXT NOT NULL DEFAULT '',
    -- Batch numbers, here only (not sent on): the last taken from this device, and
    -- the last sent to it.
    last_seq       INTEGER NOT NULL DEFAULT 0,
    sent_seq       INTEGER NOT NULL DEFAULT 0
);

-- Rows changed on this device since it last sent changes to the others. Kept only
-- while there are other devices.
CREATE TABLE device_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    k   NOT NULL,
    UNIQUE (tbl, k)
);

-- Sealed batches of changes on their way to the other devices.
CREATE TABLE device_outbox (
    id         INTEGER PRIMARY KEY,
    device     TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Audit entries taken from other devices, so each is taken once.
CREATE TABLE device_audit_seen (
    device     TEXT NOT NULL,
    origin_seq INTEGER NOT NULL,
    PRIMARY KEY (device, origin_seq)
) WITHOUT ROWID;

-- Grants resolve by Lamport time between devices.
ALTER TABLE grants ADD COLUMN lamport INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN lamport_device TEXT NOT NULL DEFAULT '';

CREATE VIEW device_sync_on AS
SELECT 1 AS on_ FROM devices d, device_self s WHERE d.removed_at IS NULL AND d.id <> s.device;

CREATE TRIGGER device_resources_in AFTER INSERT ON resources
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('resources', NEW.id);
END;
CREATE TRIGGER device_resources_up AFTER UPDATE OF json, entered_by ON resources
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('resources', NEW.id);
END;
CREATE TRIGGER device_people_in AFTER INSERT ON people
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('people', NEW.handle);
END;
CREATE TRIGGER device_people_up AFTER UPDATE ON people
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('people', NEW.handle);
END;
CREATE TRIGGER device_invites_in AFTER INSERT ON invites
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('invites', NEW.id);
END;
CREATE TRIGGER device_invites_up AFTER UPDATE ON invites
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('invites', NEW.id);
END;
CREATE TRIGGER device_grants_in AFTER INSERT ON grants
WHEN NEW.direction = 'out' AND EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('grants', NEW.id);
END;
CREATE TRIGGER device_grants_up AFTER UPDATE OF doc, role, revision, expires_at, ended_at, ended_why ON grants
WHEN NEW.direction = 'out' AND EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('grants', NEW.id);
END;
CREATE TRIGGER device_audit_in AFTER INSERT ON audit_log
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('audit_log', NEW.seq);
END;
CREATE TRIGGER device_devices_in AFTER INSERT ON devices BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('devices', NEW.id);
END;
CREATE TRIGGER device_devices_up AFTER UPDATE OF name, removed_at, is_primary ON devices BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('devices', NEW.id);
END;
CREATE TRIGGER device_prefs_in AFTER INSERT ON prefs
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('prefs', NEW.key);
END;
CREATE TRIGGER device_prefs_up AFTER UPDATE OF value ON prefs
WHEN EXISTS (SELECT 1 FROM device_sync_on) BEGIN
    INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('prefs', NEW.key);
END;
