-- Waymark's local store, schema 1.
--
-- Two kinds of tables:
-- * the replication state, which is the truth: `records` holds each record's
--   field registers and version vector (see sync/src/merge.rs), `outbox` the
--   changes written here and not yet acknowledged by the hub;
-- * the typed tables (work_items, vendors, ...), a projection of `records`
--   rewritten on every applied change, with the indexes the tools query.
-- There are no foreign keys between typed tables: a merge must never fail, so
-- references are checked by the operations and repaired by derivation.

CREATE TABLE replica (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    replica_id  TEXT NOT NULL,
    counter     INTEGER NOT NULL,      -- the last dot's counter written here
    hlc         INTEGER NOT NULL,      -- the last hybrid logical clock reading
    fingerprint TEXT NOT NULL,         -- where this store lives; a mismatch means it was copied
    created_at  TEXT NOT NULL
);

-- Replica ids this store wrote under before it noticed it was copied.
CREATE TABLE retired_replicas (
    replica_id TEXT PRIMARY KEY,
    retired_at TEXT NOT NULL
) WITHOUT ROWID;

-- Replica ids and authors, interned as small numbers inside stored states
-- (src/store/codec.rs). Local to this store; never synced.
CREATE TABLE replicas (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE authors (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);

-- A rowid table: a state (about a kilobyte of JSON) would overflow almost
-- every WITHOUT ROWID page.
CREATE TABLE records (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    state      TEXT NOT NULL,          -- the record's registers, compact (src/store/codec.rs)
    PRIMARY KEY (collection, id)
);

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY,    -- local write order
    replica_id TEXT NOT NULL,
    counter    INTEGER NOT NULL,       -- dense per replica
    change     TEXT NOT NULL,          -- JSON of waymark_sync::Change
    UNIQUE (replica_id, counter)
);

-- Key-value state local to this replica (git import position, sync cursor, ...).
CREATE TABLE local_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE work_items (
    id          TEXT PRIMARY KEY,
    item_type   TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT,
    status      TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    parent_id   TEXT,
    path        TEXT NOT NULL,         -- derived: /{root}/.../{id}
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
    version     INTEGER NOT NULL
);
CREATE INDEX work_items_parent ON work_items (parent_id);
CREATE INDEX work_items_path ON work_items (path);
CREATE INDEX work_items_created ON work_items (created_at, id);
CREATE INDEX work_items_type_status ON work_items (item_type, status, created_at, id);
CREATE INDEX work_items_status ON work_items (status, created_at, id);
CREATE INDEX work_items_ready ON work_items (priority, created_at, id)
    WHERE status = 'active' AND deleted_at IS NULL AND archived_at IS NULL AND open_blockers = 0;
CREATE INDEX work_items_archive ON work_items (updated_at)
    WHERE archived_at IS NULL AND (status = 'completed' OR deleted_at IS NOT NULL);

CREATE VIRTUAL TABLE work_items_fts USING fts5 (
    title, description, content = 'work_items', content_rowid = 'rowid'
);
CREATE TRIGGER work_items_fts_insert AFTER INSERT ON work_items BEGIN
    INSERT INTO work_items_fts (rowid, title, description) VALUES (new.rowid, new.title, new.description);
END;
CREATE TRIGGER work_items_fts_delete AFTER DELETE ON work_items BEGIN
    INSERT INTO work_items_fts (work_items_fts, rowid, title, description)
        VALUES ('delete', old.rowid, old.title, old.description);
END;
CREATE TRIGGER work_items_fts_update AFTER UPDATE OF title, description ON work_items
    WHEN old.title IS NOT new.title OR old.description IS NOT new.description BEGIN
    INSERT INTO work_items_fts (work_items_fts, rowid, title, description)
        VALUES ('delete', old.rowid, old.title, old.description);
    INSERT INTO work_items_fts (rowid, title, description) VALUES (new.rowid, new.title, new.description);
END;

CREATE TABLE dependencies (
    id              TEXT PRIMARY KEY,  -- uuid v5 of (source, target, type)
    source_id       TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    dependency_type TEXT NOT NULL,     -- blocks | depends_on
    removed         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    updated_by      TEXT NOT NULL,
    version         INTEGER NOT NULL
);
CREATE INDEX dependencies_source ON dependencies (source_id) WHERE removed = 0;
CREATE INDEX dependencies_target ON dependencies (target_id) WHERE removed = 0;

CREATE TABLE vendors (
    id                TEXT PRIMARY KEY, -- uuid v5 of the case-folded name
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
    version           INTEGER NOT NULL
);
CREATE INDEX vendors_name ON vendors (name_key);

CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    deployed_at TEXT NOT NULL,
    commit_hash TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    deleted_at  TEXT,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    version     INTEGER NOT NULL
);
CREATE INDEX deployments_time ON deployments (deployed_at DESC, id DESC);

CREATE TABLE deployment_links (
    id            TEXT PRIMARY KEY,    -- uuid v5 of (deployment, target, type)
    deployment_id TEXT NOT NULL,
    link_type     TEXT NOT NULL,       -- vendor | work_item
    target_id     TEXT NOT NULL,
    removed       INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    version       INTEGER NOT NULL
);
CREATE INDEX deployment_links_deployment ON deployment_links (deployment_id) WHERE removed = 0;
CREATE INDEX deployment_links_target ON deployment_links (target_id) WHERE removed = 0;

CREATE TABLE enhancements (
    id                               TEXT PRIMARY KEY,
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
    version                          INTEGER NOT NULL
);
CREATE INDEX enhancements_order ON enhancements (priority, created_at, id);

CREATE TABLE configuration (
    id                   TEXT PRIMARY KEY,
    active_context_type  TEXT NOT NULL,
    current_session_id   TEXT,
    git_branch           TEXT,
    git_head_commit      TEXT,
    default_token_budget INTEGER NOT NULL,
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    updated_by           TEXT NOT NULL,
    version              INTEGER NOT NULL
);

-- Open conflicts, derived from records: `value` (a field whose register holds
-- concurrent, different values), or, on a work item's parent_id, `cycle`,
-- `depth` or `orphan` (how the derived tree departs from the merged links).
CREATE TABLE conflicts (
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    field      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    PRIMARY KEY (collection, record_id, field, kind)
) WITHOUT ROWID;
