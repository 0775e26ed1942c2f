-- Waymark hub schema, version 2: bounded history (issue 13).
--
-- What each replica of a space has pulled (its frontier), and the space's
-- history below the lowest live frontier folded into one snapshot per
-- record. Every key starts with space_id, like version 1's, so every table
-- stays distributable by space_id and colocated with `spaces` (Citus:
-- `create_distributed_table('replicas', 'space_id', colocate_with =>
-- 'spaces')`, and the same for `folded` and `snapshots`; docs/hub.md).
-- Still no sequences, advisory locks, triggers, PL/pgSQL or LISTEN here.

-- Changes at or below `floor` are folded into `snapshots` and gone from
-- `changes`; a pull after a seq below it returns no changes.
ALTER TABLE spaces ADD COLUMN floor bigint NOT NULL DEFAULT 0 CHECK (floor >= 0);

-- The replicas that pull from a space: the cursor each last reported (it
-- has applied every change up to it), its name and host, its first and
-- last contact. A retired replica (`waymark hub forget`, or silent past
-- the retention) no longer holds the compaction floor; it is live again
-- when it reports again.
CREATE TABLE replicas (
    space_id text NOT NULL,
    replica_id uuid NOT NULL,
    name text NOT NULL,
    host text NOT NULL,
    acked_seq bigint NOT NULL CHECK (acked_seq >= 0),
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    PRIMARY KEY (space_id, replica_id)
);

-- Per replica, the highest counter of its changes folded into snapshots
-- (all its changes up to it are): a resend of one is already stored, and
-- the replica's next counter follows it.
CREATE TABLE folded (
    space_id text NOT NULL,
    replica_id uuid NOT NULL,
    counter bigint NOT NULL CHECK (counter > 0),
    PRIMARY KEY (space_id, replica_id)
);

-- One record's registers, merged from every change of it at or below the
-- space's floor (conflicts and delete races kept): `Snapshot::body`, JSON
-- as UTF-8 bytes, values grouped by the write that left them.
CREATE TABLE snapshots (
    space_id text NOT NULL,
    collection text NOT NULL,
    record_id text NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (space_id, collection, record_id)
);
