-- Schema 3: fewer pages per write, and a smaller store.
--
-- * The full-text index is kept in batches (src/store/search.rs): a write
--   notes the work item in `search_pending`, with the text the index holds
--   for it; the index catches up before a search, when the writer goes idle,
--   and every few hundred noted items.
-- * A record's `state` is written packed (a binary form of the same
--   document, src/store/codec.rs), about half its JSON text; rows written
--   before keep their JSON text, which still reads, until they are next
--   written.

CREATE TABLE search_pending (
    key         INTEGER PRIMARY KEY,   -- work_items.key
    indexed     INTEGER NOT NULL,      -- whether the index holds text for it
    title       TEXT,                  -- that text, which the index needs to forget it
    description TEXT
);

-- Lists of work items page in the order this store recorded them (by key),
-- oldest first for the items created here. Their indexes end at the
-- filtered columns (SQLite appends the key), and no index of creation times
-- is kept. (Ready work keeps its order, highest priority then oldest, and
-- its index.)
DROP INDEX work_items_created;
DROP INDEX work_items_type_status;
DROP INDEX work_items_status;
CREATE INDEX work_items_type_status ON work_items (item_type, status);
CREATE INDEX work_items_status ON work_items (status);
