-- Waymark hub schema, version 1: an ordered log of changes per space.
--
-- Applied by `PostgresHub::migrate` in one transaction, which also records
-- the version in `hub_migrations` (created by the migrator itself).
--
-- Every table's key starts with space_id and every hot statement touches one
-- space, so the schema can be distributed by space_id (Citus
-- `create_distributed_table('...', 'space_id')`, YugabyteDB or CockroachDB
-- hash/range on the primary key) unchanged. On purpose there are no
-- sequences (a space's seqs come from its `head` row), no advisory locks, no
-- triggers, no PL/pgSQL and no LISTEN/NOTIFY.

-- One row per space. `head` is the highest seq assigned in the space. A push
-- locks this row first (an upsert that returns it) and sets it to the last
-- seq it assigns before committing: the row lock serialises pushes within a
-- space, so seq order is commit order, and pushes to other spaces are not
-- delayed.
CREATE TABLE spaces (
    space_id text PRIMARY KEY,
    head bigint NOT NULL DEFAULT 0 CHECK (head >= 0)
);

-- The log. `body` is the change serialized as JSON (UTF-8 bytes), stored as
-- bytea rather than jsonb: byte-exact, and jsonb would refuse a "\u0000"
-- that a user typed into a title. (replica_id, counter) is the change's dot;
-- the highest counter per replica (an index-only backward scan of the unique
-- key) is what the hub expects next, minus one.
CREATE TABLE changes (
    space_id text NOT NULL REFERENCES spaces (space_id),
    seq bigint NOT NULL CHECK (seq > 0),
    replica_id uuid NOT NULL,
    counter bigint NOT NULL CHECK (counter > 0),
    -- The oldest change schema this hub accepts. A later migration that
    -- retires a version raises this bound, and so refuses pushes of older
    -- clients too.
    schema_version integer NOT NULL CONSTRAINT changes_schema_version_accepted CHECK (schema_version >= 1),
    body bytea NOT NULL,
    PRIMARY KEY (space_id, seq),
    CONSTRAINT changes_dot_key UNIQUE (space_id, replica_id, counter)
);
