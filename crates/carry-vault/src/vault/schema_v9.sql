-- Carry vault schema, version 9: change tracking for incremental backups only once
-- there is something to be incremental to.
--
-- Before the first backup to the endpoint (and after a restore or a new recovery code,
-- which start a new chain) the next backup is a whole one, so recording each changed
-- row is wasted work: a first sync or a large import paid for it on every resource.
-- `tracking` is set in the same transaction that starts a backup to the endpoint,
-- before its snapshot is read, so nothing written after the snapshot goes unrecorded;
-- it is cleared with the chain.

ALTER TABLE backup_state ADD COLUMN tracking INTEGER;
UPDATE backup_state SET tracking = 1 WHERE chain_version IS NOT NULL;

DROP TRIGGER backup_resources_in;
CREATE TRIGGER backup_resources_in AFTER INSERT ON resources
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', NEW.id);
END;
DROP TRIGGER backup_resources_up;
CREATE TRIGGER backup_resources_up AFTER UPDATE ON resources
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
  AND (NEW.id IS NOT OLD.id OR NEW.source_id IS NOT OLD.source_id
  OR NEW.identity IS NOT OLD.identity OR NEW.rtype IS NOT OLD.rtype
  OR NEW.rid IS NOT OLD.rid OR NEW.full_url IS NOT OLD.full_url
  OR NEW.category IS NOT OLD.category OR NEW.date IS NOT OLD.date
  OR NEW.date_sort IS NOT OLD.date_sort OR NEW.display IS NOT OLD.display
  OR NEW.codes IS NOT OLD.codes OR NEW.sensitivity IS NOT OLD.sensitivity
  OR NEW.label_rules IS NOT OLD.label_rules OR NEW.entered_by IS NOT OLD.entered_by
  OR NEW.content_hash IS NOT OLD.content_hash OR NEW.json IS NOT OLD.json
  OR NEW.import_id IS NOT OLD.import_id OR NEW.updated_at IS NOT OLD.updated_at
  OR NEW.group_id IS NOT OLD.group_id OR NEW.gone_at IS NOT OLD.gone_at)
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', OLD.id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', NEW.id);
END;
DROP TRIGGER backup_resources_del;
CREATE TRIGGER backup_resources_del AFTER DELETE ON resources
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', OLD.id);
END;
DROP TRIGGER backup_resource_keys_in;
CREATE TRIGGER backup_resource_keys_in AFTER INSERT ON resource_keys
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', NEW.resource_id);
END;
DROP TRIGGER backup_resource_keys_up;
CREATE TRIGGER backup_resource_keys_up AFTER UPDATE ON resource_keys
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', OLD.resource_id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', NEW.resource_id);
END;
DROP TRIGGER backup_resource_keys_del;
CREATE TRIGGER backup_resource_keys_del AFTER DELETE ON resource_keys
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resource_keys', OLD.resource_id);
END;
DROP TRIGGER backup_grant_items_in;
CREATE TRIGGER backup_grant_items_in AFTER INSERT ON grant_items
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', NEW.grant_id);
END;
DROP TRIGGER backup_grant_items_up;
CREATE TRIGGER backup_grant_items_up AFTER UPDATE ON grant_items
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', OLD.grant_id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', NEW.grant_id);
END;
DROP TRIGGER backup_grant_items_del;
CREATE TRIGGER backup_grant_items_del AFTER DELETE ON grant_items
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('grant_items', OLD.grant_id);
END;
DROP TRIGGER backup_audit_in;
CREATE TRIGGER backup_audit_in AFTER INSERT ON audit_log
WHEN (SELECT tracking FROM backup_state WHERE id = 1) IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('audit_log', NEW.seq);
END;
