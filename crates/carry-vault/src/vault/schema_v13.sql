-- Schema 13 (its step also works out every display line again, with this build's
-- formatter): in a vault that holds a record shared with this device, the parts of an
-- item too large for one envelope (a document with its attachment), kept until the
-- last part arrives and the item is whole.
CREATE TABLE shared_parts (
    rkey  TEXT    NOT NULL,
    idx   INTEGER NOT NULL,
    count INTEGER NOT NULL,
    item  TEXT    NOT NULL,
    PRIMARY KEY (rkey, idx)
) WITHOUT ROWID;
