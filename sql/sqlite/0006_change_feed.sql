-- Schema 6: the change feed, a cursor over what changed in this store.
--
-- Each record (of any collection, and the opaque ones) has at most one row
-- here: the local sequence number of its latest change, written or pulled,
-- set in the same transaction as the change. The feed is as large as the
-- store, never longer: a reader that asks what changed after sequence N
-- gets each record changed since once (`wait_for_changes`, `waymark watch`,
-- the board). Local to this store; never synced. Records untouched since
-- this schema have no row (nothing changed after any cursor).
ALTER TABLE replica ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;  -- the last sequence number given

CREATE TABLE change_feed (
    collection INTEGER NOT NULL,   -- the collection's code (0: opaque_records)
    key        INTEGER NOT NULL,   -- the record's row key in its table
    seq        INTEGER NOT NULL,   -- its latest change's local sequence number
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX change_feed_seq ON change_feed (seq);
