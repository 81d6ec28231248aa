-- Carry vault schema, version 7: incremental backups.
--
-- Triggers note which rows changed since the last backup to the endpoint, so the next
-- one carries only those. `k` (an integer or text, as the key is) names the row or,
-- for the tables kept per owner, the owner: a resource id, the resource a key belongs
-- to, a grant, an audit entry.

CREATE TABLE backup_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    k   NOT NULL,
    UNIQUE (tbl, k)
);

CREATE TRIGGER backup_resources_in AFTER INSERT ON resources BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', NEW.id);
END;
-- Each sync marks every resource it sees (`seen_run`); that alone is not a change a
-- backup keeps (a restored profile's first sync is a whole one).
CREATE TRIGGER backup_resources_up AFTER UPDATE ON resources
WHEN NEW.id IS NOT OLD.id OR NEW.source_id IS NOT OLD.source_id
  OR NEW.identity IS NOT OLD.identity OR NEW.rtype IS NOT OLD.rtype
  OR NEW.rid IS NOT OLD.rid OR NEW.full_url IS NOT OLD.full_url
  OR NEW.category IS NOT OLD.category OR NEW.date IS NOT OLD.date
  OR NEW.date_sort IS NOT OLD.date_sort OR NEW.display IS NOT OLD.display
  OR NEW.codes IS NOT OLD.codes OR NEW.sensitivity IS NOT OLD.sensitivity
  OR NEW.label_rules IS NOT OLD.label_rules OR NEW.entered_by IS NOT OLD.entered_by
  OR NEW.content_hash IS NOT OLD.content_hash OR NEW.json IS NOT OLD.json
  OR NEW.import_id IS NOT OLD.import_id OR NEW.updated_at IS NOT OLD.updated_at
  OR NEW.group_id IS NOT OLD.group_id OR NEW.gone_at IS NOT OLD.gone_at
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', OLD.id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', NEW.id);
END;
CREATE TRIGGER backup_resources_del AFTER DELETE ON resources BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', OLD.id);
END;

CREATE TRIGGER backup_resource_keys_in AFTER INSERT ON resource_keys BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', NEW.resource_id);
END;
CREATE TRIGGER backup_resource_keys_up AFTER UPDATE ON resource_keys BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', OLD.resource_id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', NEW.resource_id);
END;
CREATE TRIGGER backup_resource_keys_del AFTER DELETE ON resource_keys BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', OLD.resource_id);
END;

CREATE TRIGGER backup_grant_items_in AFTER INSERT ON grant_items BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', NEW.grant_id);
END;
CREATE TRIGGER backup_grant_items_up AFTER UPDATE ON grant_items BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', OLD.grant_id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', NEW.grant_id);
END;
CREATE TRIGGER backup_grant_items_del AFTER DELETE ON grant_items BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', OLD.grant_id);
END;

-- The audit log only grows.
CREATE TRIGGER backup_audit_in AFTER INSERT ON audit_log BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('audit_log', NEW.seq);
END;

-- The chain of backups at the endpoint: the last upload's version there, its id and
-- place in the chain, and sizes that decide when the next should be whole again.
ALTER TABLE backup_state ADD COLUMN chain_version INTEGER;
ALTER TABLE backup_state ADD COLUMN chain_id TEXT;
ALTER TABLE backup_state ADD COLUMN chain_seq INTEGER;
ALTER TABLE backup_state ADD COLUMN chain_full_bytes INTEGER;
ALTER TABLE backup_state ADD COLUMN chain_since_full_bytes INTEGER;
