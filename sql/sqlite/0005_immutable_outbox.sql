-- Schema 5: outbox entries are immutable.
--
-- An entry keeps the fields of its change as written (`fields`, packed like
-- a state's values: floats to the bit), instead of naming its record and
-- rebuilding the change from the record's registers at push time. Two
-- stores that share an entry (a copied or restored store) then push the
-- same bytes, and a resend is the change first sent whatever was written
-- since. The space is reclaimed when the hub acknowledges the entry.
--
-- Entries of older schemas are given their fields when the store opens
-- (src/store/replica.rs `fill_legacy_outbox`); `overwritten` is then unused.
ALTER TABLE outbox ADD COLUMN fields BLOB;

-- Records of collections this build does not know (changes pushed by a
-- newer version): kept opaque, as their registers (the JSON of
-- waymark_sync::RecordState), merged like any other record and compared by
-- the sync tests, so a newer peer never stops this store; a store that
-- publishes its state again (another hub or space) publishes them too, as
-- outbox entries of collection code 0. The build that
-- knows the collection materializes them in its migration.
CREATE TABLE opaque_records (
    key        INTEGER PRIMARY KEY,   -- what an outbox entry names (collection code 0)
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    UNIQUE (collection, record_id)
);
