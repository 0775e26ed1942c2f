-- Schema 2: the same data in about a quarter of the space.
--
-- * A record's replication state moves from `records` into its typed row
--   (`state`), and no longer repeats the values the row already holds: a
--   register with one value that the row shows exactly is stored as the
--   number of the write alone (src/store/codec.rs). `records` goes.
-- * Every typed table gets an explicit `key INTEGER PRIMARY KEY` (the old
--   rowid, kept), so VACUUM can never renumber rows that the full-text index,
--   the paths and the outbox point at. Typed rows are never deleted.
-- * A work item's derived `path` holds its ancestors' keys, `/k0/k1/`
--   (`/` for a root), not their 36-character ids joined with the item's own.
-- * An outbox entry names its record by key and keeps only what the record's
--   state no longer shows: the context, and (`overwritten`) the values of its
--   fields that later writes replaced. The change is rebuilt when pushed.
-- * Secondary indexes end at the sort key; SQLite appends the key itself.
-- * The full-text index is kept by the write path, not by triggers.

-- Replica ids of outbox entries, interned like those of states.
INSERT OR IGNORE INTO replicas (name) SELECT DISTINCT replica_id FROM outbox;

-- Work items -----------------------------------------------------------------

CREATE TEMP TABLE work_item_paths (key INTEGER PRIMARY KEY, path TEXT NOT NULL);
INSERT INTO work_item_paths
WITH RECURSIVE t(key, id, old, new) AS (
    SELECT rowid, id, path, '/' FROM work_items WHERE depth = 0
    UNION ALL
    SELECT c.rowid, c.id, c.path, t.new || t.key || '/'
    FROM t JOIN work_items c ON c.path > t.old || '/' AND c.path < t.old || '0'
    WHERE c.path = t.old || '/' || c.id
)
SELECT key, new FROM t;

DROP TRIGGER work_items_fts_insert;
DROP TRIGGER work_items_fts_delete;
DROP TRIGGER work_items_fts_update;

CREATE TABLE work_items_v2 (
    key         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    item_type   TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT,
    status      TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    parent_id   TEXT,
    path        TEXT NOT NULL,         -- derived: the ancestors' keys, /k0/k1/ (/ for a root)
    depth       INTEGER NOT NULL,      -- derived: 0 for a root
    open_blockers INTEGER NOT NULL DEFAULT 0, -- derived: open items this one waits for
    branch_name TEXT,
    commit_hash TEXT,
    pr_number   INTEGER,
    metadata    TEXT NOT NULL,
    deleted_at  TEXT,
    archived_at TEXT,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL          -- the record's registers (src/store/codec.rs)
);
INSERT INTO work_items_v2
SELECT w.rowid, w.id, w.item_type, w.title, w.description, w.status, w.priority, w.parent_id, p.path, w.depth,
       w.open_blockers, w.branch_name, w.commit_hash, w.pr_number, w.metadata, w.deleted_at, w.archived_at,
       w.created_at, w.created_by, w.updated_at, w.updated_by, w.version,
       (SELECT state FROM records r WHERE r.collection = 'work_items' AND r.id = w.id)
FROM work_items w JOIN work_item_paths p ON p.key = w.rowid;
DROP TABLE work_item_paths;
DROP TABLE work_items;
ALTER TABLE work_items_v2 RENAME TO work_items;

CREATE INDEX work_items_parent ON work_items (parent_id);
CREATE INDEX work_items_path ON work_items (path);
CREATE INDEX work_items_created ON work_items (created_at);
CREATE INDEX work_items_type_status ON work_items (item_type, status, created_at);
CREATE INDEX work_items_status ON work_items (status, created_at);
CREATE INDEX work_items_ready ON work_items (priority, created_at)
    WHERE status = 'active' AND deleted_at IS NULL AND archived_at IS NULL AND open_blockers = 0;
CREATE INDEX work_items_archive ON work_items (updated_at)
    WHERE archived_at IS NULL AND (status = 'completed' OR deleted_at IS NOT NULL);

-- The full-text index keeps its rows (keys are the old rowids). The store's
-- write path now keeps it (src/store/collections.rs), not triggers: a
-- trigger on work_items made every later statement of a transaction open a
-- statement journal, and each made the full-text index flush a segment.

-- Dependencies ---------------------------------------------------------------

CREATE TABLE dependencies_v2 (
    key             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE, -- uuid v5 of (source, target, type)
    source_id       TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    dependency_type TEXT NOT NULL,     -- blocks | depends_on
    removed         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    updated_by      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    state           TEXT NOT NULL
);
INSERT INTO dependencies_v2
SELECT d.rowid, d.id, d.source_id, d.target_id, d.dependency_type, d.removed, d.created_at, d.created_by,
       d.updated_at, d.updated_by, d.version,
       (SELECT state FROM records r WHERE r.collection = 'dependencies' AND r.id = d.id)
FROM dependencies d;
DROP TABLE dependencies;
ALTER TABLE dependencies_v2 RENAME TO dependencies;
CREATE INDEX dependencies_source ON dependencies (source_id) WHERE removed = 0;
CREATE INDEX dependencies_target ON dependencies (target_id) WHERE removed = 0;

-- Vendors --------------------------------------------------------------------

CREATE TABLE vendors_v2 (
    key               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE, -- uuid v5 of the case-folded name
    name              TEXT NOT NULL,
    name_key          TEXT NOT NULL,    -- case-folded, trimmed
    status            TEXT NOT NULL,
    extractor_version TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    deleted_at        TEXT,
    created_at        TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    updated_by        TEXT NOT NULL,
    version           INTEGER NOT NULL,
    state             TEXT NOT NULL
);
INSERT INTO vendors_v2
SELECT v.rowid, v.id, v.name, v.name_key, v.status, v.extractor_version, v.metadata, v.deleted_at, v.created_at,
       v.created_by, v.updated_at, v.updated_by, v.version,
       (SELECT state FROM records r WHERE r.collection = 'vendors' AND r.id = v.id)
FROM vendors v;
DROP TABLE vendors;
ALTER TABLE vendors_v2 RENAME TO vendors;
CREATE INDEX vendors_name ON vendors (name_key);

-- Deployments ----------------------------------------------------------------

CREATE TABLE deployments_v2 (
    key         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    deployed_at TEXT NOT NULL,
    commit_hash TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    deleted_at  TEXT,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL
);
INSERT INTO deployments_v2
SELECT d.rowid, d.id, d.deployed_at, d.commit_hash, d.metadata, d.deleted_at, d.created_at, d.created_by,
       d.updated_at, d.updated_by, d.version,
       (SELECT state FROM records r WHERE r.collection = 'deployments' AND r.id = d.id)
FROM deployments d;
DROP TABLE deployments;
ALTER TABLE deployments_v2 RENAME TO deployments;
CREATE INDEX deployments_time ON deployments (deployed_at DESC, id DESC);

CREATE TABLE deployment_links_v2 (
    key           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE, -- uuid v5 of (deployment, target, type)
    deployment_id TEXT NOT NULL,
    link_type     TEXT NOT NULL,       -- vendor | work_item
    target_id     TEXT NOT NULL,
    removed       INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    state         TEXT NOT NULL
);
INSERT INTO deployment_links_v2
SELECT l.rowid, l.id, l.deployment_id, l.link_type, l.target_id, l.removed, l.created_at, l.created_by,
       l.updated_at, l.updated_by, l.version,
       (SELECT state FROM records r WHERE r.collection = 'deployment_links' AND r.id = l.id)
FROM deployment_links l;
DROP TABLE deployment_links;
ALTER TABLE deployment_links_v2 RENAME TO deployment_links;
CREATE INDEX deployment_links_deployment ON deployment_links (deployment_id) WHERE removed = 0;
CREATE INDEX deployment_links_target ON deployment_links (target_id) WHERE removed = 0;

-- Enhancements and the configuration -------------------------------------------

CREATE TABLE enhancements_v2 (
    key                              INTEGER PRIMARY KEY,
    id                               TEXT NOT NULL UNIQUE,
    title                            TEXT NOT NULL,
    description                      TEXT,
    priority                         INTEGER NOT NULL,
    status                           TEXT NOT NULL,
    target_quarter                   TEXT,
    requires_constitutional_approval INTEGER NOT NULL,
    depends_on                       TEXT NOT NULL, -- JSON list of enhancement ids
    deleted_at                       TEXT,
    created_at                       TEXT NOT NULL,
    created_by                       TEXT NOT NULL,
    updated_at                       TEXT NOT NULL,
    updated_by                       TEXT NOT NULL,
    version                          INTEGER NOT NULL,
    state                            TEXT NOT NULL
);
INSERT INTO enhancements_v2
SELECT e.rowid, e.id, e.title, e.description, e.priority, e.status, e.target_quarter,
       e.requires_constitutional_approval, e.depends_on, e.deleted_at, e.created_at, e.created_by, e.updated_at,
       e.updated_by, e.version,
       (SELECT state FROM records r WHERE r.collection = 'enhancements' AND r.id = e.id)
FROM enhancements e;
DROP TABLE enhancements;
ALTER TABLE enhancements_v2 RENAME TO enhancements;
CREATE INDEX enhancements_order ON enhancements (priority, created_at, id);

CREATE TABLE configuration_v2 (
    key                  INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    active_context_type  TEXT NOT NULL,
    current_session_id   TEXT,
    git_branch           TEXT,
    git_head_commit      TEXT,
    default_token_budget INTEGER NOT NULL,
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    updated_by           TEXT NOT NULL,
    version              INTEGER NOT NULL,
    state                TEXT NOT NULL
);
INSERT INTO configuration_v2
SELECT c.rowid, c.id, c.active_context_type, c.current_session_id, c.git_branch, c.git_head_commit,
       c.default_token_budget, c.created_at, c.created_by, c.updated_at, c.updated_by, c.version,
       (SELECT state FROM records r WHERE r.collection = 'configuration' AND r.id = c.id)
FROM configuration c;
DROP TABLE configuration;
ALTER TABLE configuration_v2 RENAME TO configuration;

-- The outbox -----------------------------------------------------------------

CREATE TABLE outbox_v2 (
    seq         INTEGER PRIMARY KEY,   -- local write order
    replica     INTEGER NOT NULL,      -- replicas.idx of the writer
    counter     INTEGER NOT NULL,      -- dense per replica
    collection  INTEGER NOT NULL,      -- the collection's code (src/store/collections.rs)
    record      INTEGER NOT NULL,      -- the record's key in its table
    hlc         INTEGER NOT NULL,
    author      INTEGER NOT NULL,      -- authors.idx
    schema      INTEGER NOT NULL,      -- the change's schema version
    context     TEXT,                  -- [[replica idx, counter], ..]; NULL when empty
    overwritten TEXT,                  -- {field: value} this change wrote that its record no longer shows
    UNIQUE (replica, counter)
);
INSERT INTO outbox_v2
SELECT o.seq, (SELECT idx FROM replicas WHERE name = o.replica_id), o.counter, c.code,
       CASE c.code
           WHEN 1 THEN (SELECT key FROM work_items WHERE id = json_extract(o.change, '$[1]'))
           WHEN 2 THEN (SELECT key FROM dependencies WHERE id = json_extract(o.change, '$[1]'))
           WHEN 3 THEN (SELECT key FROM vendors WHERE id = json_extract(o.change, '$[1]'))
           WHEN 4 THEN (SELECT key FROM deployments WHERE id = json_extract(o.change, '$[1]'))
           WHEN 5 THEN (SELECT key FROM deployment_links WHERE id = json_extract(o.change, '$[1]'))
           WHEN 6 THEN (SELECT key FROM enhancements WHERE id = json_extract(o.change, '$[1]'))
           WHEN 7 THEN (SELECT key FROM configuration WHERE id = json_extract(o.change, '$[1]'))
       END,
       json_extract(o.change, '$[4]'), json_extract(o.change, '$[5]'), json_extract(o.change, '$[6]'),
       nullif(json_extract(o.change, '$[2]'), '[]'),
       -- All of the change's fields: the rebuilt change is then the stored one exactly.
       json_extract(o.change, '$[3]')
FROM outbox o JOIN (SELECT 'work_items' AS name, 1 AS code UNION ALL SELECT 'dependencies', 2
                   UNION ALL SELECT 'vendors', 3 UNION ALL SELECT 'deployments', 4
                   UNION ALL SELECT 'deployment_links', 5 UNION ALL SELECT 'enhancements', 6
                   UNION ALL SELECT 'configuration', 7) AS c
    ON c.name = json_extract(o.change, '$[0]');
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;

DROP TABLE records;
