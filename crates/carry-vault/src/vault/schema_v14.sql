-- Schema 14: a resource converted from an earlier FHIR release (STU3, as GP Connect
-- sends it) keeps the text it arrived in, beside the R4 view in `json` that every
-- index, search and share is worked out from. NULL for a resource that arrived as R4.
ALTER TABLE resources ADD COLUMN original TEXT;
-- A change to it reaches the next incremental backup, as a change to any column but
-- seen_run does.
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
  OR NEW.group_id IS NOT OLD.group_id OR NEW.gone_at IS NOT OLD.gone_at
  OR NEW.original IS NOT OLD.original)
BEGIN
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', OLD.id);
    INSERT OR REPLACE INTO backup_changes (tbl, k) VALUES ('resources', NEW.id);
END;
