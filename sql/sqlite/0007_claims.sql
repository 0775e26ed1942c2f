-- Schema 7: claims with leases (issue 14).
--
-- A claim is synced like any record: collection `claims`, one record per
-- work item (its id is the item's), one field `claim` whose values are
-- {holder, expires_at (ms), tenure, origin, generation, released}
-- (src/domain/claim.rs). Who holds the item is derived from those values
-- and the hub's order of their changes, never synced: `holder`,
-- `expires_at`, `tentative` and `lost` below are a projection, recomputed
-- when a value arrives and when the hub seq of a claim's change is learnt.
CREATE TABLE claims (
    key        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,   -- the work item's id
    claim      TEXT NOT NULL,          -- the register's latest value (JSON), as every projection shows one
    holder     TEXT,                   -- derived: who holds (or held, until expires_at) the item; NULL when released
    expires_at INTEGER,                -- derived: the holder's lease end (ms since the epoch)
    tentative  INTEGER NOT NULL,       -- derived: 1 while the hub's order of the holder's claim is unknown here
    lost       TEXT,                   -- derived: JSON [[holder, lease end ms], ...] of claims that came later
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    version    INTEGER NOT NULL,
    state      TEXT NOT NULL
);
CREATE INDEX claims_live ON claims (expires_at) WHERE holder IS NOT NULL;
CREATE INDEX claims_lost ON claims (key) WHERE lost IS NOT NULL;

-- The hub seq of each claim change this store has pulled (its own come
-- back too): local, from the hub's log; emptied when the store starts
-- pulling a log again from 0 (another hub, a reset log).
CREATE TABLE claim_seqs (
    replica TEXT NOT NULL,
    counter INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (replica, counter)
) WITHOUT ROWID;
