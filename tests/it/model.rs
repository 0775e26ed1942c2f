//! The model-based property test of `spec/sync.md` over the **real store**
//! (issue 11).
//!
//! `sync/tests/model.rs` runs the protocol's scripts over in-memory replicas
//! and a toy collection. This one runs them over real SQLite stores: each
//! store is a [`Tracker`] in its own directory, written through the real
//! operations (work items created, updated, moved, deleted; dependencies;
//! archive; vendors with metadata; conflict resolutions), and synced with
//! [`sync_round`] through a [`FaultyHub`] over the in-memory hub (many cases)
//! or the real Postgres hub (a fresh space per case, fewer cases).
//!
//! Every action belongs to a [`Kind`]; a run draws its script from a set of
//! kinds, so each kind can be switched on and off (`WAYMARK_MODEL_KINDS`),
//! and each kind has a test of its own (base actions plus that kind) that
//! says whether it passes.
//!
//! After a final full sync of every store (each bound to the last space any
//! store moved to) until nothing moves, plus a fresh store that joins then:
//! - every store and the newcomer export byte-identical `export json`, hold
//!   the same registers and list the same open conflicts, have nothing left
//!   to push, and `Store::verify` finds no difference;
//! - the hub's log of the final space holds every local write exactly once
//!   (or a republication that saw it, for a store that moved spaces), in
//!   dense seqs, and folding it (in hub order and in another causal order)
//!   gives the stores' registers;
//! - nothing is lost: every write an operation acknowledged keeps its value
//!   in its field unless a later change to that field saw it, and a value
//!   survives exactly when no change saw it;
//! - the derived tree is whole (paths follow parent links, or a
//!   `cycle`/`depth`/`orphan` conflict says why not; every merged cycle is
//!   reported), a merged dependency cycle is reported, an archived item that
//!   was concurrently reopened is reported, a child created under a parent
//!   concurrently deleted is reported, and every live item is in exactly one
//!   of the live and archived lists;
//! - a new write on each store carries a clock reading no more than a day
//!   past the later of the true time and the furthest that store's own clock
//!   ever ran (a peer's clock years ahead must not carry it along).
//!
//! Failures shrink (proptest) to a numbered script, printed one action a
//! line, and each minimal script found so far is a `regression_*` test.
//!
//! Counts: `WAYMARK_MODEL_CASES` (in-memory hub, per test),
//! `WAYMARK_MODEL_PG_CASES` (Postgres), `WAYMARK_MODEL_KINDS` (the kinds the
//! mixed tests draw from: `all` or a comma list of [`Kind::name`]s),
//! `WAYMARK_MODEL_SHRINK_ITERS`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use waymark::Tracker;
use waymark::ops::{
    ArchiveRequest, DependencyAction, DependencyChange, NewVendor, NewWorkItem, VendorUpdate, WorkItemFilter,
    WorkItemUpdate,
};
use waymark_sync::memory::{Fault, MemoryHub};
use waymark_sync::postgres::testing::{TestDatabase, runtime};
use waymark_sync::postgres::{HubOptions, PostgresHub};
use waymark_sync::round::{SyncOptions, sync_round};
use waymark_sync::testing::{FaultyHub, block_on};
use waymark_sync::{
    Change, CompactOptions, Dot, Hlc, Hub, HubAdmin, RecordStates, Replica, ReplicaId, SCHEMA_VERSION, VersionVector,
};

const AUTHOR: &str = "model";
/// Stores a script starts with (copies add more, up to [`MAX_STORES`]).
const MIN_STORES: usize = 2;
const START_STORES: usize = 4;
const MAX_STORES: usize = 6;
/// Actions per script.
const MAX_ACTIONS: usize = 40;
const FLOATS: [f64; 6] = [
    0.300_000_000_000_000_04,
    1.000_000_000_000_000_2e-7,
    0.1,
    1.797_693_134_862_315_7e308,
    5e-324,
    100.000_000_000_000_01,
];
const YEAR_MS: i64 = 365 * 86_400_000;

/// What the histories of a run did, summed over its cases (printed at the
/// end, to see that the scripts reach what they should).
mod stats {
    use std::cell::Cell;

    // Per thread: each test runs its cases on its own thread.
    thread_local! {
        pub static WRITES: Cell<usize> = const { Cell::new(0) };
        pub static REFUSED: Cell<usize> = const { Cell::new(0) };
        pub static FAULTED_ROUNDS: Cell<usize> = const { Cell::new(0) };
        pub static CONFLICTS_AT_END: Cell<usize> = const { Cell::new(0) };
        pub static CASES_WITH_CONFLICTS: Cell<usize> = const { Cell::new(0) };
        pub static PUBLISHED: Cell<usize> = const { Cell::new(0) };
        pub static CLAIMS_HELD: Cell<usize> = const { Cell::new(0) };
        pub static CLAIMS_LOST: Cell<usize> = const { Cell::new(0) };
        pub static FOLDED: Cell<usize> = const { Cell::new(0) };
        pub static BEHIND_THE_FLOOR: Cell<usize> = const { Cell::new(0) };
    }

    pub fn add(counter: &'static std::thread::LocalKey<Cell<usize>>, n: usize) {
        counter.with(|c| c.set(c.get() + n));
    }

    pub fn take() -> String {
        let t = |c: &'static std::thread::LocalKey<Cell<usize>>| c.with(|c| c.replace(0));
        format!(
            "{} writes, {} refused operations, {} rounds cut by a fault, {} open conflicts at the end (in {} cases), \
             {} records published by stores bound late or moved, {} items held by a claim and {} with claims \
             that lost at the end, {} changes folded by compactions (leaving a store behind the floor {} times)",
            t(&WRITES),
            t(&REFUSED),
            t(&FAULTED_ROUNDS),
            t(&CONFLICTS_AT_END),
            t(&CASES_WITH_CONFLICTS),
            t(&PUBLISHED),
            t(&CLAIMS_HELD),
            t(&CLAIMS_LOST),
            t(&FOLDED),
            t(&BEHIND_THE_FLOOR)
        )
    }
}

// ---------------------------------------------------------------------------
// Kinds and actions

/// A family of actions, switchable as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Writes through the operations (random field subsets, races on one
    /// field, moves, deletes, dependencies, archive, vendors), resolutions,
    /// whole and partial rounds with faults, short pages, pulls that stop
    /// midway, duplicate pushes, crashes.
    Base,
    /// A store directory copied to a new path and opened there.
    Copy,
    /// A chain of 7-12 items moved concurrently on different stores into one
    /// merged cycle.
    MoveCycle,
    /// A depends on b here, b on a there (2-4 items).
    DepCycle,
    /// An item archived on one store, reopened and retitled on another.
    ArchiveReopen,
    /// A child created under a parent concurrently deleted.
    ChildOfDeleted,
    /// A store copied with unpushed changes; the copy overwrites the field.
    CopyOverwrite,
    /// A store pointed at a new space (`Store::bind_hub`).
    NewSpace,
    /// A store's clock years ahead or behind.
    ClockSkew,
    /// 17-digit floats in metadata.
    Floats,
    /// Changes of an unknown collection (`labels`) pushed by a newer build.
    UnknownCollection,
    /// Changes of an unknown field (`x_future`) of work items, pushed by a
    /// newer build.
    UnknownField,
    /// A store that joins late: written offline before it is ever bound to
    /// a hub (so with no outbox), it publishes its state at its first round.
    BindLate,
    /// Agents claim items (by id or next, some forced), release them, and
    /// write to them, on every store (issue 14).
    Claims,
    /// The hub compacts a space's history into snapshots (issue 13), in
    /// small batches, after forgetting a store or not: stores behind the
    /// floor catch up from the snapshots, keeping what they have not pushed;
    /// the final check compacts everything and a new store bootstraps from
    /// snapshots alone.
    Compact,
}

pub const ALL_KINDS: [Kind; 15] = [
    Kind::Base,
    Kind::Copy,
    Kind::MoveCycle,
    Kind::DepCycle,
    Kind::ArchiveReopen,
    Kind::ChildOfDeleted,
    Kind::CopyOverwrite,
    Kind::NewSpace,
    Kind::ClockSkew,
    Kind::Floats,
    Kind::UnknownCollection,
    Kind::UnknownField,
    Kind::BindLate,
    Kind::Claims,
    Kind::Compact,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::Copy => "copy",
            Kind::MoveCycle => "move_cycle",
            Kind::DepCycle => "dep_cycle",
            Kind::ArchiveReopen => "archive_reopen",
            Kind::ChildOfDeleted => "child_of_deleted",
            Kind::CopyOverwrite => "copy_overwrite",
            Kind::NewSpace => "new_space",
            Kind::ClockSkew => "clock_skew",
            Kind::Floats => "floats",
            Kind::UnknownCollection => "unknown_collection",
            Kind::UnknownField => "unknown_field",
            Kind::BindLate => "bind_late",
            Kind::Claims => "claims",
            Kind::Compact => "compact",
        }
    }

    fn parse_list(text: &str) -> Vec<Kind> {
        if text.trim() == "all" {
            return ALL_KINDS.to_vec();
        }
        let mut kinds: Vec<Kind> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                *ALL_KINDS
                    .iter()
                    .find(|k| k.name() == s)
                    .unwrap_or_else(|| panic!("WAYMARK_MODEL_KINDS: unknown kind {s:?}"))
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// Fields an `Update` may write, by bit.
const UPDATE_FIELDS: [&str; 6] = ["title", "status", "priority", "description", "metadata", "deleted"];
const STATUSES: [&str; 3] = ["active", "completed", "blocked"];

/// One step of a script. Store and item numbers are taken modulo the stores
/// and the items that exist (items by creation order, on any store).
#[derive(Clone, Debug)]
pub enum Action {
    /// Create a task on `store`, at the root or under an item.
    Create { store: usize, parent: Option<usize> },
    /// Update the fields of an item chosen by the bits of `fields`
    /// ([`UPDATE_FIELDS`]) with values drawn from `value`.
    Update {
        store: usize,
        item: usize,
        fields: u8,
        value: u8,
    },
    /// Move an item under another, or to the root.
    Move {
        store: usize,
        item: usize,
        parent: Option<usize>,
    },
    /// Add (or remove) `source depends_on target`.
    Depend {
        store: usize,
        source: usize,
        target: usize,
        remove: bool,
    },
    /// Archive every completed or deleted item (`older_than_days: 0`).
    Archive { store: usize },
    /// Create vendor `v{vendor}`, or update its status and metadata.
    Vendor { store: usize, vendor: usize, value: u8 },
    /// Two stores write the same field of one item, neither having seen the
    /// other's write.
    Race {
        stores: (usize, usize),
        item: usize,
        field: usize,
        value: u8,
    },
    /// Resolve one of the open conflicts a store lists: a value conflict by
    /// choosing one of its values, a tree conflict by moving the item to the
    /// root.
    Resolve { store: usize, which: usize, pick: usize },
    /// A sync round, possibly cut by a fault at one of its hub calls
    /// (`(call, lose_reply)`).
    Round {
        store: usize,
        batch: usize,
        page: usize,
        fault: Option<(u64, bool)>,
    },
    /// Push one batch of at most `n` outbox changes, and nothing else.
    PushSome { store: usize, n: usize },
    /// Pull and apply at most `pages` pages of `page` changes, then stop.
    PullSome { store: usize, pages: usize, page: usize },
    /// Push again a batch the hub already committed (a duplicate push).
    Repush { which: usize },
    /// The process dies: the tracker is dropped and its directory reopened.
    Crash { store: usize },
    /// The store's directory is copied to a new path and opened there.
    Copy { store: usize },
    /// A chain of `len` new items, item k moved under item k+1 (the last
    /// under the first) on store `first + k` of `spread` stores.
    MoveCycle { first: usize, spread: usize, len: usize },
    /// `len` new items, item k made to depend on item k+1 (the last on the
    /// first) on store `first + k`.
    DepCycle { first: usize, len: usize },
    /// A completed item, synced; archived on `archiver`, reopened and
    /// retitled on `reopener`.
    ArchiveVsReopen { archiver: usize, reopener: usize },
    /// A parent, synced; deleted on `deleter` while `creator` creates a
    /// child under it.
    ChildOfDeleted { deleter: usize, creator: usize },
    /// A new item retitled on `store` (unpushed), the store copied, and the
    /// copy retitles it again.
    CopyOverwrite { store: usize },
    /// The store is pointed at the next space.
    NewSpace { store: usize },
    /// The store's clock runs `years` years ahead (behind when negative).
    Skew { store: usize, years: i8 },
    /// Write `FLOATS[which]` into metadata of an item or a vendor.
    Float {
        store: usize,
        target: usize,
        which: usize,
        vendor: bool,
    },
    /// A newer build pushes straight to the hub: a `labels` change, or a
    /// field `x_future` on a work item the hub holds.
    Unknown { labels: bool, target: usize, value: u8 },
    /// A new store, never bound to a hub, that creates `items` items and
    /// retitles the first offline; later actions write to it like any
    /// other, and its first round binds it.
    Late { items: usize },
    /// Agent `agent` claims an item (or the first ready one) on `store`,
    /// perhaps forcing it over another's claim, or releases its claim.
    Claim {
        store: usize,
        agent: usize,
        item: Option<usize>,
        force: bool,
        release: bool,
    },
    /// Two stores claim one item for two agents, neither having seen the
    /// other's claim: the hub's order decides.
    ClaimRace {
        stores: (usize, usize),
        agents: (usize, usize),
        item: usize,
    },
    /// Agent `agent` writes the title of an item on `store` (refused while
    /// another holds it; the holder's write renews its lease), perhaps
    /// completing it (which releases the claim).
    AgentWrite {
        store: usize,
        agent: usize,
        item: usize,
        complete: bool,
    },
    /// The hub compacts the space of `store` in batches of `batch`, after
    /// forgetting store `forget` there (which then is behind the floor),
    /// or, with `others`, every replica but the one of `store` (as a
    /// retention does to laptops long offline).
    Compact {
        store: usize,
        batch: usize,
        forget: Option<usize>,
        others: bool,
    },
}

/// The agents that claim.
const AGENTS: [&str; 3] = ["agent-a", "agent-b", "agent-c"];

fn base_actions() -> Vec<(u32, BoxedStrategy<Action>)> {
    let s = || 0usize..MAX_STORES;
    let i = || 0usize..64;
    vec![
        (
            4,
            (s(), proptest::option::of(i()))
                .prop_map(|(store, parent)| Action::Create { store, parent })
                .boxed(),
        ),
        (
            6,
            (s(), i(), 1u8..64, any::<u8>())
                .prop_map(|(store, item, fields, value)| Action::Update {
                    store,
                    item,
                    fields,
                    value,
                })
                .boxed(),
        ),
        (
            2,
            (s(), i(), proptest::option::of(i()))
                .prop_map(|(store, item, parent)| Action::Move { store, item, parent })
                .boxed(),
        ),
        (
            2,
            (s(), i(), i(), any::<bool>())
                .prop_map(|(store, source, target, remove)| Action::Depend {
                    store,
                    source,
                    target,
                    remove,
                })
                .boxed(),
        ),
        (1, s().prop_map(|store| Action::Archive { store }).boxed()),
        (
            2,
            (s(), 0usize..3, any::<u8>())
                .prop_map(|(store, vendor, value)| Action::Vendor { store, vendor, value })
                .boxed(),
        ),
        (
            3,
            ((s(), s()), i(), 0usize..4, any::<u8>())
                .prop_map(|(stores, item, field, value)| Action::Race {
                    stores,
                    item,
                    field,
                    value,
                })
                .boxed(),
        ),
        (
            2,
            (s(), 0usize..8, 0usize..4)
                .prop_map(|(store, which, pick)| Action::Resolve { store, which, pick })
                .boxed(),
        ),
        (
            5,
            (
                s(),
                1usize..4,
                1usize..4,
                proptest::option::of((0u64..3, any::<bool>())),
            )
                .prop_map(|(store, batch, page, fault)| Action::Round {
                    store,
                    batch,
                    page,
                    fault,
                })
                .boxed(),
        ),
        (
            1,
            (s(), 1usize..4)
                .prop_map(|(store, n)| Action::PushSome { store, n })
                .boxed(),
        ),
        (
            1,
            (s(), 1usize..3, 1usize..4)
                .prop_map(|(store, pages, page)| Action::PullSome { store, pages, page })
                .boxed(),
        ),
        (1, any::<usize>().prop_map(|which| Action::Repush { which }).boxed()),
        (1, s().prop_map(|store| Action::Crash { store }).boxed()),
    ]
}

fn kind_actions(kind: Kind) -> Vec<(u32, BoxedStrategy<Action>)> {
    let s = || 0usize..MAX_STORES;
    match kind {
        Kind::Base => base_actions(),
        Kind::Copy => vec![(2, s().prop_map(|store| Action::Copy { store }).boxed())],
        Kind::MoveCycle => vec![(
            2,
            (s(), 2usize..4, 7usize..=12)
                .prop_map(|(first, spread, len)| Action::MoveCycle { first, spread, len })
                .boxed(),
        )],
        Kind::DepCycle => vec![(
            2,
            (s(), 2usize..=4)
                .prop_map(|(first, len)| Action::DepCycle { first, len })
                .boxed(),
        )],
        Kind::ArchiveReopen => vec![(
            2,
            (s(), s())
                .prop_map(|(archiver, reopener)| Action::ArchiveVsReopen { archiver, reopener })
                .boxed(),
        )],
        Kind::ChildOfDeleted => vec![(
            2,
            (s(), s())
                .prop_map(|(deleter, creator)| Action::ChildOfDeleted { deleter, creator })
                .boxed(),
        )],
        Kind::CopyOverwrite => vec![(2, s().prop_map(|store| Action::CopyOverwrite { store }).boxed())],
        Kind::BindLate => vec![(2, (1usize..4).prop_map(|items| Action::Late { items }).boxed())],
        Kind::Claims => vec![
            (
                5,
                (
                    s(),
                    0usize..AGENTS.len(),
                    proptest::option::of(0usize..64),
                    proptest::bool::weighted(0.15),
                    proptest::bool::weighted(0.2),
                )
                    .prop_map(|(store, agent, item, force, release)| Action::Claim {
                        store,
                        agent,
                        item,
                        force,
                        release,
                    })
                    .boxed(),
            ),
            (
                3,
                ((s(), s()), (0usize..AGENTS.len(), 0usize..AGENTS.len()), 0usize..64)
                    .prop_map(|(stores, agents, item)| Action::ClaimRace { stores, agents, item })
                    .boxed(),
            ),
            (
                2,
                (s(), 0usize..AGENTS.len(), 0usize..64, proptest::bool::weighted(0.2))
                    .prop_map(|(store, agent, item, complete)| Action::AgentWrite {
                        store,
                        agent,
                        item,
                        complete,
                    })
                    .boxed(),
            ),
        ],
        Kind::Compact => vec![(
            3,
            (s(), 1usize..6, proptest::option::of(s()), any::<bool>())
                .prop_map(|(store, batch, forget, others)| Action::Compact {
                    store,
                    batch,
                    forget,
                    others,
                })
                .boxed(),
        )],
        Kind::NewSpace => vec![(2, s().prop_map(|store| Action::NewSpace { store }).boxed())],
        Kind::ClockSkew => vec![(
            2,
            (s(), -3i8..=3)
                .prop_map(|(store, years)| Action::Skew { store, years })
                .boxed(),
        )],
        Kind::Floats => vec![(
            3,
            (s(), 0usize..64, 0usize..FLOATS.len(), any::<bool>())
                .prop_map(|(store, target, which, vendor)| Action::Float {
                    store,
                    target,
                    which,
                    vendor,
                })
                .boxed(),
        )],
        Kind::UnknownCollection | Kind::UnknownField => {
            let labels = kind == Kind::UnknownCollection;
            vec![(
                2,
                (0usize..64, any::<u8>())
                    .prop_map(move |(target, value)| Action::Unknown { labels, target, value })
                    .boxed(),
            )]
        }
    }
}

/// One history: the stores it starts with, its script, and the seed of the
/// other causal order the final check folds the log in.
#[derive(Clone)]
pub struct Script {
    stores: usize,
    actions: Vec<Action>,
    order_seed: u64,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} stores, order seed {}:", self.stores, self.order_seed)?;
        for (n, a) in self.actions.iter().enumerate() {
            writeln!(f, "  {n:>2}: {a:?}")?;
        }
        Ok(())
    }
}

fn script(kinds: &[Kind]) -> impl Strategy<Value = Script> + use<> {
    let mut weighted = Vec::new();
    for &k in kinds {
        weighted.extend(kind_actions(k));
    }
    if !kinds.contains(&Kind::Base) {
        // Rounds are what every kind needs.
        weighted.extend(base_actions().into_iter().filter(|(w, _)| *w == 5));
    }
    let action = Union::new_weighted(weighted);
    (
        MIN_STORES..=START_STORES,
        proptest::collection::vec(action, 0..MAX_ACTIONS),
        any::<u64>(),
    )
        .prop_map(|(stores, actions, order_seed)| Script {
            stores,
            actions,
            order_seed,
        })
}

// ---------------------------------------------------------------------------
// The world

type Outcome<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// One store: a tracker in its own directory, and what the test knows of it.
struct Node {
    dir: PathBuf,
    tracker: Tracker,
    /// Index into [`World::spaces`] of the space it syncs with.
    space: usize,
    skew_ms: i64,
    /// The furthest ahead this store's own clock ever ran (its clock readings
    /// never go back, so its stamps may stay that far ahead).
    max_skew_ms: i64,
    /// `(replica id, counter)` last seen: new local writes are the dots above.
    seen: (String, u64),
}

/// A write an operation acknowledged: the value it left in one field.
#[derive(Clone, Debug)]
struct Written {
    dot: Dot,
    collection: String,
    record: String,
    field: String,
    value: Value,
    /// The action that wrote it (for messages).
    step: usize,
    /// The space a newer build pushed it to (`None`: a store wrote it). A
    /// store carries its own writes into every space it moves to; a peer's
    /// write reaches a later space only if some store had pulled it first.
    pushed_to: Option<usize>,
}

/// Something a scenario of its own must find at the end.
#[derive(Clone, Debug)]
enum Expect {
    /// An item archived on one store while another reopened it.
    ArchivedReopened { item: String },
    /// A child created under a parent another store deleted at the same time.
    ChildOfDeleted { child: String, parent: String },
}

struct World<H: Hub> {
    hub: FaultyHub<H>,
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    root: TempDir,
    /// The spaces stores sync with; stores start on the first.
    spaces: Vec<String>,
    nodes: Vec<Node>,
    /// Every work item created, by creation order (on any store).
    items: Vec<String>,
    writes: Vec<Written>,
    expects: Vec<Expect>,
    /// Batches the hub committed, for duplicate pushes: `(space, batch)`.
    committed: Vec<(usize, Vec<Change>)>,
    /// The newer build's replica: the space it pushes to (always the last
    /// one), its counter there, and what it saw per record.
    future: (usize, ReplicaId, u64, HashMap<(String, String), VersionVector>),
    step: usize,
    dirs_made: usize,
    /// Per space, the log as it was before the hub compacted it (the tail
    /// the hub keeps follows it): what the final check folds.
    archive: HashMap<usize, Vec<(u64, Change)>>,
}

fn replica_row(tracker: &Tracker) -> Outcome<(String, u64)> {
    tracker
        .store()
        .read(|c| {
            Ok(
                c.query_row("SELECT replica_id, counter FROM replica WHERE singleton = 1", [], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?,
            )
        })
        .map_err(|e| format!("reading the replica row: {e}"))
}

/// Whether the store was ever bound to a hub.
fn is_bound(tracker: &Tracker) -> Outcome<bool> {
    Ok(tracker
        .store()
        .local_get("sync.cursor_for")
        .map_err(|e| format!("reading the binding: {e}"))?
        .is_some())
}

fn refused(e: &waymark::Error) -> bool {
    use waymark::Error::*;
    matches!(
        e,
        NotFound { .. } | Invalid { .. } | StaleVersion { .. } | DepthLimit { .. } | Cycle(_) | Conflict(_)
    )
}

/// An operation's result: a refusal the domain rules explain is fine (the
/// item is not known here yet, a move would close a cycle, ...); anything
/// else is a failure.
fn allow<T>(what: &str, r: waymark::Result<T>) -> Outcome<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if refused(&e) => {
            stats::add(&stats::REFUSED, 1);
            Ok(None)
        }
        Err(e) => Err(format!("{what} failed: {e}")),
    }
}

fn export(t: &Tracker) -> Outcome<String> {
    let doc = t.export_json().map_err(|e| format!("export json: {e}"))?;
    serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())
}

fn copy_dir(from: &Path, to: &Path) -> Outcome {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        // The wal-index is shared memory of the running processes; SQLite
        // rebuilds it from the WAL when it is missing.
        if name.to_string_lossy().ends_with("-shm") {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).map_err(|e| format!("copying {name:?}: {e}"))?;
    }
    Ok(())
}

fn first_difference(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let at = la
        .iter()
        .zip(&lb)
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let from = at.saturating_sub(3);
    let show = |l: &[&str]| l[from.min(l.len())..(at + 3).min(l.len())].join("\n");
    format!(
        "first difference at line {at}:\n--- store 0\n{}\n--- other\n{}",
        show(&la),
        show(&lb)
    )
}

impl<H: HubAdmin> World<H> {
    fn new(hub: H, space: String, runtime: Option<Arc<tokio::runtime::Runtime>>, stores: usize) -> Outcome<Self> {
        let mut world = World {
            hub: FaultyHub::new(hub),
            runtime,
            root: tempfile::tempdir().map_err(|e| e.to_string())?,
            spaces: vec![space],
            nodes: Vec::new(),
            items: Vec::new(),
            writes: Vec::new(),
            expects: Vec::new(),
            committed: Vec::new(),
            future: (0, ReplicaId::mint(), 0, HashMap::new()),
            step: 0,
            dirs_made: 0,
            archive: HashMap::new(),
        };
        for _ in 0..stores {
            let dir = world.fresh_dir();
            let node = world.open(dir, 0, 0, true)?;
            world.nodes.push(node);
        }
        Ok(world)
    }

    fn fresh_dir(&mut self) -> PathBuf {
        self.dirs_made += 1;
        self.root.path().join(format!("store{}", self.dirs_made))
    }

    /// Open the store in `dir` with its clock skew; when `bind`, bound to
    /// space `space` (and answered by the hub, as a store whose worker
    /// reached the hub when it started).
    fn open(&self, dir: PathBuf, space: usize, skew_ms: i64, bind: bool) -> Outcome<Node> {
        let tracker = Tracker::open(&dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
        if bind {
            tracker
                .store()
                .bind_hub(&format!("hub#{}", self.spaces[space]))
                .map_err(|e| format!("bind_hub: {e}"))?;
            tracker
                .store()
                .hub_answered()
                .map_err(|e| format!("hub_answered: {e}"))?;
        }
        tracker.store().set_clock_skew(skew_ms);
        let seen = replica_row(&tracker)?;
        Ok(Node {
            dir,
            tracker,
            space,
            skew_ms,
            max_skew_ms: skew_ms.max(0),
            seen,
        })
    }

    fn block<F: Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(future),
            None => block_on(future),
        }
    }

    /// The whole log of `space`: what compactions folded (as the test saw
    /// it before), then the tail the hub holds.
    fn log(&self, space: usize) -> Outcome<Vec<(u64, Change)>> {
        let mut all = self.archive.get(&space).cloned().unwrap_or_default();
        let last = all.last().map_or(0, |(seq, _)| *seq);
        let tail = self
            .block(self.hub.log_after(&self.spaces[space], last))
            .map_err(|e| format!("reading the hub's log: {e}"))?;
        all.extend(tail);
        Ok(all)
    }

    /// Compact `space` on the hub (the log kept aside first, for the check).
    fn compact(&mut self, space: usize, batch: usize) -> Outcome<waymark_sync::CompactReport> {
        let log = self.log(space)?;
        self.archive.insert(space, log);
        let opts = CompactOptions {
            batch,
            ..CompactOptions::default()
        };
        let report = self
            .block(self.hub.compact(&self.spaces[space], opts))
            .map_err(|e| format!("compacting: {e}"))?;
        stats::add(&stats::FOLDED, report.folded);
        Ok(report)
    }

    fn node(&self, store: usize) -> &Node {
        &self.nodes[store % self.nodes.len()]
    }

    fn t(&self, store: usize) -> &Tracker {
        &self.node(store).tracker
    }

    fn item(&self, n: usize) -> Option<String> {
        (!self.items.is_empty()).then(|| self.items[n % self.items.len()].clone())
    }

    /// Record the local writes every store made since the last look: the
    /// fields whose registers hold one of the new dots, with their values.
    fn capture_writes(&mut self) -> Outcome {
        for i in 0..self.nodes.len() {
            let now = replica_row(&self.nodes[i].tracker)?;
            let before = &self.nodes[i].seen;
            let from = if now.0 == before.0 { before.1 } else { 0 };
            if now.1 > from {
                let replica: ReplicaId = now.0.parse().map_err(|_| format!("replica id {:?}", now.0))?;
                let states = self.nodes[i]
                    .tracker
                    .store()
                    .record_states()
                    .map_err(|e| format!("record states: {e}"))?;
                for ((collection, record), state) in &states {
                    for (field, register) in &state.fields {
                        for s in register.siblings() {
                            if s.dot.replica == replica && s.dot.counter > from {
                                self.writes.push(Written {
                                    dot: s.dot,
                                    collection: collection.clone(),
                                    record: record.clone(),
                                    field: field.clone(),
                                    value: s.value.clone(),
                                    step: self.step,
                                    pushed_to: None,
                                });
                            }
                        }
                    }
                }
            }
            self.nodes[i].seen = now;
        }
        Ok(())
    }

    // -- operations --------------------------------------------------------

    fn create(&mut self, store: usize, parent: Option<&str>, status: Option<&str>) -> Outcome<Option<String>> {
        let title = format!("item {}", self.items.len());
        let input = NewWorkItem {
            item_type: "task".into(),
            title,
            parent_id: parent.map(str::to_owned),
            status: status.map(str::to_owned),
            ..Default::default()
        };
        let made = allow("create_work_item", self.t(store).create_work_item(AUTHOR, input))?;
        Ok(made.map(|item| {
            self.items.push(item.id.clone());
            item.id
        }))
    }

    /// Read item `id` on `store` and update it with `change` (at the version
    /// read). `None` when the store refuses (or does not know the item).
    fn update(&self, store: usize, id: &str, change: impl FnOnce(&mut WorkItemUpdate)) -> Outcome<Option<()>> {
        let t = self.t(store);
        let Some(item) = allow("get_work_item", t.get_work_item(id))? else {
            return Ok(None);
        };
        let mut input = WorkItemUpdate {
            id: id.to_owned(),
            version: item.version,
            ..Default::default()
        };
        change(&mut input);
        Ok(allow("update_work_item", t.update_work_item(AUTHOR, input))?.map(drop))
    }

    fn set_field(&self, store: usize, id: &str, field: &str, value: u8) -> Outcome<Option<()>> {
        let v = value as usize;
        self.update(store, id, |u| match field {
            "title" => u.title = Some(format!("title {v} s{}", store % self.nodes.len())),
            "status" => u.status = Some(STATUSES[v % 3].into()),
            "priority" => u.priority = Some((v % 5) as i64),
            "description" => u.description = Some(format!("description {v}")),
            "metadata" => {
                let mut m = Map::new();
                m.insert(format!("k{}", v % 3), json!(v));
                u.metadata = Some(m);
            }
            "deleted" => u.deleted = Some(v.is_multiple_of(2)),
            _ => unreachable!("{field}"),
        })
    }

    fn depend(&self, store: usize, source: &str, target: &str, remove: bool) -> Outcome<Option<()>> {
        let change = DependencyChange {
            action: if remove {
                DependencyAction::Remove
            } else {
                DependencyAction::Add
            },
            source_id: source.to_owned(),
            target_id: target.to_owned(),
            dependency_type: "depends_on".into(),
        };
        Ok(allow("manage_dependency", self.t(store).manage_dependency(AUTHOR, change))?.map(drop))
    }

    fn vendor(&self, store: usize, name: &str, metadata: Map<String, Value>, status: Option<&str>) -> Outcome {
        let t = self.t(store);
        match t.query_vendor_status(name) {
            Ok(v) => {
                let update = VendorUpdate {
                    name: name.to_owned(),
                    version: v.version,
                    status: status.map(str::to_owned),
                    metadata: Some(metadata),
                    ..Default::default()
                };
                allow("update_vendor_status", t.update_vendor_status(AUTHOR, update))?;
            }
            Err(e) if refused(&e) => {
                let new = NewVendor {
                    name: name.to_owned(),
                    extractor_version: None,
                    metadata: Some(metadata),
                };
                allow("create_vendor", t.create_vendor(AUTHOR, new))?;
            }
            Err(e) => return Err(format!("query_vendor_status failed: {e}")),
        }
        Ok(())
    }

    // -- sync --------------------------------------------------------------

    /// The hub answered the store (as `waymark sync` and the worker tell
    /// it before a round, after binding it to the configured space): a store
    /// that moved to another space, or never published its state, publishes
    /// it there.
    fn answered(&self, store: usize) -> Outcome {
        let node = self.node(store);
        node.tracker
            .store()
            .bind_hub(&format!("hub#{}", self.spaces[node.space]))
            .map_err(|e| format!("bind_hub: {e}"))?;
        node.tracker
            .store()
            .hub_answered()
            .map(|n| stats::add(&stats::PUBLISHED, n))
            .map_err(|e| format!("store {}: hub_answered: {e}", store % self.nodes.len()))
    }

    fn round(&self, store: usize, opts: SyncOptions) -> Outcome<waymark_sync::RoundReport> {
        self.answered(store)?;
        let node = self.node(store);
        self.block(sync_round(
            node.tracker.store(),
            &self.hub,
            &self.spaces[node.space],
            opts,
        ))
        .map_err(|e| {
            format!(
                "a sync round of store {} failed without a fault: {e}",
                store % self.nodes.len()
            )
        })
    }

    /// Whole rounds of `stores` (in order), without faults.
    fn settle(&self, stores: &[usize]) -> Outcome {
        for &s in stores {
            self.round(s, SyncOptions::default())?;
        }
        Ok(())
    }

    /// Sync every store, whole rounds without faults, until a pass moves
    /// nothing.
    fn sync_until_quiet(&self) -> Outcome {
        for _ in 0..=MAX_STORES + 2 {
            let mut quiet = true;
            for s in 0..self.nodes.len() {
                let report = self.round(s, SyncOptions::default())?;
                quiet &= report.pushed == 0 && report.pulled == 0;
            }
            if quiet {
                return Ok(());
            }
        }
        Err("the final sync did not settle".into())
    }

    fn copy_store(&mut self, store: usize) -> Outcome<Option<usize>> {
        if self.nodes.len() >= MAX_STORES {
            return Ok(None);
        }
        let store = store % self.nodes.len();
        // Let the writer finish what it does when idle, then copy the files.
        self.nodes[store]
            .tracker
            .store()
            .catch_up_search()
            .map_err(|e| e.to_string())?;
        let to = self.fresh_dir();
        copy_dir(&self.nodes[store].dir, &to)?;
        let (space, skew) = (self.nodes[store].space, self.nodes[store].skew_ms);
        let bound = is_bound(&self.nodes[store].tracker)?;
        let mut node = self.open(to, space, skew, bound)?;
        // The copy's writes under the shared id are the original's.
        node.seen = (self.nodes[store].seen.0.clone(), self.nodes[store].seen.1);
        node.max_skew_ms = self.nodes[store].max_skew_ms;
        let fresh = replica_row(&node.tracker)?;
        if fresh.0 != node.seen.0 {
            node.seen = fresh;
        }
        self.nodes.push(node);
        Ok(Some(self.nodes.len() - 1))
    }

    // -- one action --------------------------------------------------------

    fn perform(&mut self, action: &Action) -> Outcome {
        self.step += 1;
        let n = self.nodes.len();
        match *action {
            Action::Create { store, parent } => {
                let parent = parent.and_then(|p| self.item(p));
                self.create(store, parent.as_deref(), None)?;
            }
            Action::Update {
                store,
                item,
                fields,
                value,
            } => {
                if let Some(id) = self.item(item) {
                    let t = self.t(store);
                    if let Some(current) = allow("get_work_item", t.get_work_item(&id))? {
                        let mut u = WorkItemUpdate {
                            id: id.clone(),
                            version: current.version,
                            ..Default::default()
                        };
                        let v = value as usize;
                        for (bit, field) in UPDATE_FIELDS.iter().enumerate() {
                            if fields & (1 << bit) == 0 {
                                continue;
                            }
                            match *field {
                                "title" => u.title = Some(format!("title {v} s{}", store % n)),
                                "status" => u.status = Some(STATUSES[v % 3].into()),
                                "priority" => u.priority = Some(((v / 3) % 5) as i64),
                                "description" => u.description = Some(format!("description {v}")),
                                "metadata" => {
                                    let mut m = Map::new();
                                    m.insert(
                                        format!("k{}", v % 3),
                                        if v.is_multiple_of(7) { Value::Null } else { json!(v) },
                                    );
                                    u.metadata = Some(m);
                                }
                                "deleted" => u.deleted = Some(v.is_multiple_of(4)),
                                _ => {}
                            }
                        }
                        allow("update_work_item", t.update_work_item(AUTHOR, u))?;
                    }
                }
            }
            Action::Move { store, item, parent } => {
                if let Some(id) = self.item(item) {
                    let parent = parent.and_then(|p| self.item(p)).unwrap_or_default();
                    self.update(store, &id, |u| u.parent_id = Some(parent))?;
                }
            }
            Action::Depend {
                store,
                source,
                target,
                remove,
            } => {
                // Older items depend on newer ones only: concurrent adds never
                // close a cycle here (`DepCycle` makes those on purpose).
                let len = self.items.len().max(1);
                let (i, j) = (source % len, target % len);
                if i != j && !self.items.is_empty() {
                    let (a, b) = (self.items[i.min(j)].clone(), self.items[i.max(j)].clone());
                    self.depend(store, &a, &b, remove)?;
                }
            }
            Action::Archive { store } => {
                let request = ArchiveRequest {
                    older_than_days: Some(0),
                    dry_run: false,
                };
                allow("archive_work_items", self.t(store).archive_work_items(AUTHOR, request))?;
            }
            Action::Vendor { store, vendor, value } => {
                let v = value as i64;
                let mut m = Map::new();
                m.insert("notes".into(), json!(format!("notes {v}")));
                if v % 2 == 0 {
                    m.insert("test_results".into(), json!({"passing": v % 5, "total": 4 + v % 3}));
                }
                let status = ["operational", "broken"][(value % 2) as usize];
                self.vendor(store, &format!("v{vendor}"), m, Some(status))?;
            }
            Action::Race {
                stores: (a, b),
                item,
                field,
                value,
            } => {
                if let Some(id) = self.item(item) {
                    let field = UPDATE_FIELDS[field % 4];
                    self.set_field(a, &id, field, value)?;
                    self.set_field(b, &id, field, value.wrapping_add(1))?;
                }
            }
            Action::Resolve { store, which, pick } => {
                let t = self.t(store);
                let conflicts = t.list_conflicts().map_err(|e| format!("list_conflicts: {e}"))?;
                if !conflicts.is_empty() {
                    let c = &conflicts[which % conflicts.len()];
                    match c.kind.as_str() {
                        "value" | "delete_vs_update" => {
                            let mut values: Vec<Value> = c.values.iter().map(|v| v.value.clone()).collect();
                            if c.kind == "delete_vs_update" {
                                values.push(Value::Null);
                            }
                            let value = values[pick % values.len()].clone();
                            allow("resolve_conflict", t.resolve_conflict(AUTHOR, &c.id, value))?;
                        }
                        _ => {
                            let id = c.record_id.clone();
                            self.update(store, &id, |u| u.parent_id = Some(String::new()))?;
                        }
                    }
                }
            }
            Action::Round {
                store,
                batch,
                page,
                fault,
            } => {
                if let Some((at, lose_reply)) = fault {
                    let kind = if lose_reply {
                        Fault::DropReplyAfterCommit
                    } else {
                        Fault::FailBeforeCommit
                    };
                    self.hub.inject(at, kind);
                }
                let opts = SyncOptions {
                    push_batch: batch,
                    page_size: page,
                };
                if fault != Some((0, false)) {
                    self.answered(store)?;
                }
                let node = self.node(store);
                let result = self.block(sync_round(
                    node.tracker.store(),
                    &self.hub,
                    &self.spaces[node.space],
                    opts,
                ));
                self.hub.clear_faults();
                if let Err(e) = result {
                    stats::add(&stats::FAULTED_ROUNDS, 1);
                    ensure!(
                        fault.is_some() && e.is_retryable(),
                        "a sync round of store {} failed{}: {e}",
                        store % n,
                        if fault.is_some() {
                            " (not retryable)"
                        } else {
                            " without a fault"
                        }
                    );
                }
            }
            Action::PushSome { store, n: limit } => {
                self.answered(store)?;
                let node = self.node(store);
                let space = node.space;
                let store_ = node.tracker.store();
                let batch = store_.outbox(limit).map_err(|e| format!("outbox: {e}"))?;
                if !batch.is_empty() {
                    self.block(self.hub.push(&self.spaces[space], &batch))
                        .map_err(|e| format!("pushing a batch from store {}'s outbox: {e}", store % n))?;
                    store_
                        .acknowledge(&batch.iter().map(|c| c.dot).collect::<Vec<_>>())
                        .map_err(|e| format!("acknowledge: {e}"))?;
                    self.committed.push((space, batch));
                }
            }
            Action::PullSome { store, pages, page } => {
                self.answered(store)?;
                let node = self.node(store);
                let s = node.tracker.store();
                for _ in 0..pages {
                    let cursor = s.cursor().map_err(|e| format!("cursor: {e}"))?;
                    let got = self
                        .block(self.hub.pull(&self.spaces[node.space], cursor, page))
                        .map_err(|e| format!("pull: {e}"))?;
                    let Some(&(last, _)) = got.changes.last() else { break };
                    s.apply_page(&got.changes, last)
                        .map_err(|e| format!("store {} applying a page: {e}", store % n))?;
                }
            }
            Action::Repush { which } => {
                if !self.committed.is_empty() {
                    let (space, batch) = &self.committed[which % self.committed.len()];
                    let ack = self
                        .block(self.hub.push(&self.spaces[*space], batch))
                        .map_err(|e| format!("a resent batch was refused: {e}"))?;
                    ensure!(ack.inserted == 0, "a resent batch stored {} new changes", ack.inserted);
                }
            }
            Action::Crash { store } => {
                let i = store % n;
                let dir = self.nodes[i].dir.clone();
                let (space, skew, seen) = (self.nodes[i].space, self.nodes[i].skew_ms, self.nodes[i].seen.clone());
                // Drop the tracker first: only what it committed survives.
                let max_skew_ms = self.nodes[i].max_skew_ms;
                let bound = is_bound(&self.nodes[i].tracker)?;
                drop(self.nodes.remove(i));
                let mut node = self.open(dir, space, skew, bound)?;
                node.seen = seen;
                node.max_skew_ms = max_skew_ms;
                self.nodes.insert(i, node);
            }
            Action::Copy { store } => {
                self.copy_store(store)?;
            }
            Action::Claim {
                store,
                agent,
                item,
                force,
                release,
            } => {
                let id = match item {
                    Some(i) => self.item(i),
                    None => None,
                };
                if item.is_none() || id.is_some() {
                    let request = waymark::ops::ClaimRequest {
                        next: id.is_none(),
                        id,
                        force,
                        release: release && item.is_some(),
                        ..Default::default()
                    };
                    allow("claim_work_item", self.t(store).claim_work_item(AGENTS[agent], request))?;
                }
            }
            Action::ClaimRace { stores, agents, item } => {
                if let Some(id) = self.item(item) {
                    for (store, agent) in [(stores.0, agents.0), (stores.1, agents.1)] {
                        let request = waymark::ops::ClaimRequest {
                            id: Some(id.clone()),
                            ..Default::default()
                        };
                        allow("claim_work_item", self.t(store).claim_work_item(AGENTS[agent], request))?;
                    }
                }
            }
            Action::AgentWrite {
                store,
                agent,
                item,
                complete,
            } => {
                if let Some(id) = self.item(item) {
                    let t = self.t(store);
                    if let Some(current) = allow("get_work_item", t.get_work_item(&id))? {
                        let u = WorkItemUpdate {
                            id: id.clone(),
                            version: current.version,
                            title: Some(format!("written by {} on s{}", AGENTS[agent], store % n)),
                            status: complete.then(|| "completed".to_owned()),
                            ..Default::default()
                        };
                        allow("update_work_item", t.update_work_item(AGENTS[agent], u))?;
                    }
                }
            }
            Action::Compact {
                store,
                batch,
                forget,
                others,
            } => {
                let space = self.node(store).space;
                let mut retire: Vec<ReplicaId> = Vec::new();
                if let Some(f) = forget {
                    let (replica, _) = replica_row(&self.node(f).tracker)?;
                    retire.push(replica.parse().map_err(|_| format!("replica id {replica:?}"))?);
                }
                if others {
                    let (keep, _) = replica_row(&self.node(store).tracker)?;
                    let listed = self
                        .block(self.hub.replicas(&self.spaces[space]))
                        .map_err(|e| format!("listing replicas: {e}"))?;
                    retire.extend(
                        listed
                            .iter()
                            .filter(|r| r.replica.to_string() != keep)
                            .map(|r| r.replica),
                    );
                }
                for replica in retire {
                    self.block(self.hub.forget(&self.spaces[space], replica))
                        .map_err(|e| format!("forgetting: {e}"))?;
                }
                let report = self.compact(space, batch)?;
                for node in self.nodes.iter().filter(|n| n.space == space) {
                    let cursor = node.tracker.store().cursor().map_err(|e| e.to_string())?;
                    stats::add(&stats::BEHIND_THE_FLOOR, usize::from(cursor < report.floor));
                }
            }
            Action::Late { items } => {
                if self.nodes.len() < MAX_STORES {
                    let dir = self.fresh_dir();
                    let space = self.spaces.len() - 1;
                    let node = self.open(dir, space, 0, false)?;
                    self.nodes.push(node);
                    let late = self.nodes.len() - 1;
                    let mut made = Vec::new();
                    for _ in 0..items {
                        made.extend(self.create(late, None, None)?);
                    }
                    if let Some(first) = made.first() {
                        self.set_field(late, first, "title", 9)?;
                    }
                }
            }
            Action::MoveCycle { first, spread, len } => {
                if n >= 2 {
                    let spread = spread.clamp(2, n);
                    let chain: Vec<String> = (0..len)
                        .map(|_| self.create(first, None, None))
                        .collect::<Outcome<Vec<_>>>()?
                        .into_iter()
                        .flatten()
                        .collect();
                    let stores: Vec<usize> = (0..spread).map(|k| (first + k) % n).collect();
                    self.settle(&stores)?;
                    self.settle(&stores)?;
                    for (k, id) in chain.iter().enumerate() {
                        let parent = chain[(k + 1) % chain.len()].clone();
                        self.update(stores[k % spread], id, |u| u.parent_id = Some(parent))?;
                    }
                }
            }
            Action::DepCycle { first, len } => {
                if n >= 2 {
                    let members: Vec<String> = (0..len)
                        .map(|_| self.create(first, None, None))
                        .collect::<Outcome<Vec<_>>>()?
                        .into_iter()
                        .flatten()
                        .collect();
                    let stores: Vec<usize> = (0..len.min(n)).map(|k| (first + k) % n).collect();
                    self.settle(&stores)?;
                    self.settle(&stores)?;
                    for (k, id) in members.iter().enumerate() {
                        let target = &members[(k + 1) % members.len()];
                        self.depend(stores[k % stores.len()], id, target, false)?;
                    }
                }
            }
            Action::ArchiveVsReopen { archiver, reopener } => {
                let (a, b) = (archiver % n, reopener % n);
                if a != b
                    && let Some(id) = self.create(a, None, Some("completed"))?
                {
                    self.settle(&[a, b])?;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    let request = ArchiveRequest {
                        older_than_days: Some(0),
                        dry_run: false,
                    };
                    allow("archive_work_items", self.t(a).archive_work_items(AUTHOR, request))?;
                    let reopened = self.update(b, &id, |u| {
                        u.status = Some("active".into());
                        u.title = Some("reopened".into());
                    })?;
                    if reopened.is_some() {
                        self.expects.push(Expect::ArchivedReopened { item: id });
                    }
                }
            }
            Action::ChildOfDeleted { deleter, creator } => {
                let (a, b) = (deleter % n, creator % n);
                if a != b
                    && let Some(parent) = self.create(a, None, None)?
                {
                    self.settle(&[a, b])?;
                    let deleted = self.update(a, &parent, |u| u.deleted = Some(true))?;
                    let child = self.create(b, Some(&parent), None)?;
                    if let (Some(()), Some(child)) = (deleted, child) {
                        self.expects.push(Expect::ChildOfDeleted { child, parent });
                    }
                }
            }
            Action::CopyOverwrite { store } => {
                if let Some(id) = self.create(store, None, None)? {
                    self.set_field(store, &id, "title", 1)?;
                    if let Some(copy) = self.copy_store(store)? {
                        self.set_field(copy, &id, "title", 2)?;
                    }
                }
            }
            Action::NewSpace { store } => {
                let i = store % n;
                let next = self.nodes[i].space + 1;
                if next == self.spaces.len() {
                    let name = format!("{}-{next}", self.spaces[0]);
                    self.spaces.push(name);
                }
                self.nodes[i]
                    .tracker
                    .store()
                    .bind_hub(&format!("hub#{}", self.spaces[next]))
                    .map_err(|e| format!("bind_hub: {e}"))?;
                self.nodes[i].space = next;
            }
            Action::Skew { store, years } => {
                let i = store % n;
                self.nodes[i].skew_ms = years as i64 * YEAR_MS;
                self.nodes[i].max_skew_ms = self.nodes[i].max_skew_ms.max(self.nodes[i].skew_ms);
                self.nodes[i].tracker.store().set_clock_skew(self.nodes[i].skew_ms);
            }
            Action::Float {
                store,
                target,
                which,
                vendor,
            } => {
                let f = FLOATS[which % FLOATS.len()];
                let mut m = Map::new();
                m.insert("ratio".into(), json!(f));
                if vendor {
                    let name = format!("v{}", target % 3);
                    self.vendor(store, &name, m, None)?;
                    if let Ok(v) = self.t(store).query_vendor_status(&name) {
                        let back = v.metadata.get("ratio").and_then(Value::as_f64);
                        ensure!(
                            back.map(f64::to_bits) == Some(f.to_bits()),
                            "vendor {name} metadata.ratio {f:e} reads back as {back:?}"
                        );
                    }
                } else if let Some(id) = self.item(target)
                    && self.update(store, &id, |u| u.metadata = Some(m))?.is_some()
                {
                    let item = self.t(store).get_work_item(&id).map_err(|e| e.to_string())?;
                    let back = item.metadata.get("ratio").and_then(Value::as_f64);
                    ensure!(
                        back.map(f64::to_bits) == Some(f.to_bits()),
                        "item metadata.ratio {f:e} reads back as {back:?}"
                    );
                }
            }
            Action::Unknown { labels, target, value } => {
                // The newer build syncs with the last space; in a space new
                // to it, it starts over as a new replica.
                let space = self.spaces.len() - 1;
                if self.future.0 != space {
                    self.future = (space, ReplicaId::mint(), 0, HashMap::new());
                }
                let (collection, record, fields) = if labels {
                    let fields = BTreeMap::from([
                        ("name".to_owned(), json!(format!("label {}", value % 4))),
                        ("color".to_owned(), json!(["red", "green"][(value % 2) as usize])),
                    ]);
                    ("labels".to_owned(), format!("label-{}", target % 3), fields)
                } else {
                    // A work item the hub holds, written by a build that saw
                    // all of it there.
                    let log = self.log(space)?;
                    let held: Vec<&str> = log
                        .iter()
                        .filter(|(_, c)| c.collection == "work_items")
                        .map(|(_, c)| c.record_id.as_str())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if held.is_empty() {
                        return Ok(());
                    }
                    let record = held[target % held.len()].to_owned();
                    let mut seen = self
                        .future
                        .3
                        .get(&("work_items".to_owned(), record.clone()))
                        .cloned()
                        .unwrap_or_default();
                    for (_, c) in log.iter().filter(|(_, c)| c.record_id == record) {
                        seen.join(&c.context);
                        seen.insert(c.dot);
                    }
                    self.future.3.insert(("work_items".to_owned(), record.clone()), seen);
                    let fields = BTreeMap::from([("x_future".to_owned(), json!({"v": value, "nested": [1.5, "x"]}))]);
                    ("work_items".to_owned(), record, fields)
                };
                self.future.2 += 1;
                let dot = Dot {
                    replica: self.future.1,
                    counter: self.future.2,
                };
                let key = (collection.clone(), record.clone());
                let context = self.future.3.get(&key).cloned().unwrap_or_default();
                let change = Change {
                    collection,
                    record_id: record,
                    dot,
                    context: context.clone(),
                    fields: fields.clone(),
                    hlc: Hlc::from_parts(1_700_000_000_000 + self.future.2, 0),
                    author: "newer-build".into(),
                    schema_version: SCHEMA_VERSION,
                };
                let mut after = context;
                after.insert(dot);
                self.future.3.insert(key, after);
                self.block(
                    self.hub
                        .inner()
                        .push(&self.spaces[space], std::slice::from_ref(&change)),
                )
                .map_err(|e| format!("the hub refused a newer build's change: {e}"))?;
                for (field, value) in fields {
                    self.writes.push(Written {
                        dot,
                        collection: change.collection.clone(),
                        record: change.record_id.clone(),
                        field,
                        value,
                        step: self.step,
                        pushed_to: Some(space),
                    });
                }
            }
        }
        self.capture_writes()
    }

    // -- the end -----------------------------------------------------------

    /// Bind every store to the last space any store used and sync until
    /// nothing moves.
    fn finish(&mut self) -> Outcome<usize> {
        let last = self.nodes.iter().map(|n| n.space).max().unwrap_or(0);
        for i in 0..self.nodes.len() {
            if self.nodes[i].space != last {
                self.nodes[i]
                    .tracker
                    .store()
                    .bind_hub(&format!("hub#{}", self.spaces[last]))
                    .map_err(|e| format!("bind_hub: {e}"))?;
                self.nodes[i].space = last;
            }
        }
        self.sync_until_quiet()?;
        Ok(last)
    }

    fn check(&mut self, order_seed: u64) -> Outcome {
        let space = self.finish()?;
        if !self.archive.is_empty() {
            // Every store is up to date: everything folds, and the store
            // that joins next bootstraps from snapshots alone.
            let report = self.compact(space, 7)?;
            ensure!(
                report.floor == report.head,
                "after the final sync the hub folds up to {} of {} (a store's frontier is behind)",
                report.floor,
                report.head
            );
        }
        // A store that joins now catches up from the hub alone.
        let dir = self.fresh_dir();
        let joiner = self.open(dir, space, 0, true)?;
        self.nodes.push(joiner);
        let j = self.nodes.len() - 1;
        for _ in 0..3 {
            if self.round(j, SyncOptions::default())?.pulled == 0 {
                break;
            }
        }

        // Every store (and the newcomer) exports the same bytes, holds the
        // same registers and conflicts, and has nothing left to push.
        let reference = export(&self.nodes[0].tracker)?;
        let states = self.nodes[0]
            .tracker
            .store()
            .record_states()
            .map_err(|e| e.to_string())?;
        let conflicts = self.nodes[0].tracker.list_conflicts().map_err(|e| e.to_string())?;
        stats::add(&stats::WRITES, self.writes.len());
        stats::add(&stats::CONFLICTS_AT_END, conflicts.len());
        stats::add(&stats::CASES_WITH_CONFLICTS, usize::from(!conflicts.is_empty()));
        let log = self.log(space)?;
        let replicas: HashSet<ReplicaId> = log.iter().map(|(_, c)| c.dot.replica).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            let who = if i == j {
                "the store that joined last".to_owned()
            } else {
                format!("store {i}")
            };
            let t = &node.tracker;
            let mine = export(t)?;
            ensure!(
                mine == reference,
                "{who} exports differently from store 0: {}",
                first_difference(&reference, &mine)
            );
            let their = t.store().record_states().map_err(|e| e.to_string())?;
            if let Some(key) = registers_differ(&states, &their, &replicas) {
                let key = Some(key);
                return Err(format!(
                    "{who} holds different registers from store 0 for {key:?}: {}",
                    describe_difference(
                        key.as_ref().and_then(|k| states.get(k)),
                        key.as_ref().and_then(|k| their.get(k))
                    )
                ));
            }
            ensure!(
                t.list_conflicts().map_err(|e| e.to_string())? == conflicts,
                "{who} lists different conflicts"
            );
            let pending = t.store().pending_changes().map_err(|e| e.to_string())?;
            ensure!(pending == 0, "{who} still has {pending} changes to push");
            let cursor = t.store().cursor().map_err(|e| e.to_string())?;
            ensure!(
                cursor == log.len() as u64,
                "{who}'s cursor is {cursor}, the log ends at {}",
                log.len()
            );
            let differences = t.store().verify().map_err(|e| format!("verify: {e}"))?;
            ensure!(
                differences.is_empty(),
                "verify finds {who}'s projection differs: {differences:?}"
            );
            check_lists(t).map_err(|e| format!("{who}: {e}"))?;
        }

        // The hub holds every write exactly once, in dense seqs.
        let seqs: Vec<u64> = log.iter().map(|(s, _)| *s).collect();
        ensure!(
            seqs == (1..=log.len() as u64).collect::<Vec<_>>(),
            "the hub's seqs are not dense"
        );
        let stored: HashMap<Dot, &Change> = log.iter().map(|(_, c)| (c.dot, c)).collect();
        ensure!(stored.len() == log.len(), "the hub stores a change twice");
        // A write reached the space as its own change, or superseded by a
        // change that saw it (a store that moved to this space published
        // its state again, under a new replica id).
        let superseded = |w: &Written| {
            log.iter().any(|(_, c)| {
                c.collection == w.collection && c.record_id == w.record && c.dot != w.dot && c.context.covers(&w.dot)
            })
        };
        let expected: Vec<&Written> = self
            .writes
            .iter()
            .filter(|w| w.pushed_to.is_none_or(|s| s == space))
            .collect();
        for w in &expected {
            ensure!(
                stored.contains_key(&w.dot) || superseded(w),
                "the write of {}/{}/{} at step {} ({:?}) never reached the hub's space {space}",
                w.collection,
                w.record,
                w.field,
                w.step,
                w.dot
            );
        }

        // The stores hold the state of the log, folded in hub order and in
        // another causal order.
        let seq_of: HashMap<Dot, u64> = log.iter().map(|(seq, c)| (c.dot, *seq)).collect();
        let changes: Vec<Change> = log.into_iter().map(|(_, c)| c).collect();
        for (folded, how) in [
            (fold(&changes), "in hub order"),
            (
                fold(shuffled_causal_order(&changes, order_seed)),
                "in another causal order",
            ),
        ] {
            if let Some(key) = registers_differ(&folded, &states, &replicas) {
                return Err(format!(
                    "the stores differ from the log folded {how} for {key:?}: {}",
                    describe_difference(folded.get(&key), states.get(&key))
                ));
            }
        }

        // Nothing is lost: an acknowledged write keeps its value unless a
        // change to its field saw it; a value survives exactly when none did.
        let saw = |dot: &Dot, collection: &str, record: &str, field: &str| {
            changes.iter().any(|later| {
                later.dot != *dot
                    && later.collection == collection
                    && later.record_id == record
                    && later.fields.contains_key(field)
                    && later.context.covers(dot)
            })
        };
        for w in &expected {
            let survivor = states
                .get(&(w.collection.clone(), w.record.clone()))
                .and_then(|r| r.fields.get(&w.field))
                .and_then(|r| r.siblings().iter().find(|s| s.dot == w.dot).cloned());
            match survivor {
                Some(s) => ensure!(
                    s.value == w.value,
                    "the write of {}/{}/{} at step {} holds {} instead of {}",
                    w.collection,
                    w.record,
                    w.field,
                    w.step,
                    s.value,
                    w.value
                ),
                None => ensure!(
                    saw(&w.dot, &w.collection, &w.record, &w.field),
                    "the write of {}/{}/{} = {} at step {} was lost though no later write saw it",
                    w.collection,
                    w.record,
                    w.field,
                    w.value,
                    w.step
                ),
            }
        }
        for c in &changes {
            let record = &states[&(c.collection.clone(), c.record_id.clone())];
            for field in c.fields.keys() {
                let survives = record
                    .fields
                    .get(field)
                    .is_some_and(|r| r.siblings().iter().any(|s| s.dot == c.dot));
                let covered = saw(&c.dot, &c.collection, &c.record_id, field);
                ensure!(
                    survives != covered,
                    "{}/{}/{} of {:?}: survives {survives}, seen by a later write {covered}",
                    c.collection,
                    c.record_id,
                    field,
                    c.dot
                );
            }
        }

        check_claims(&self.nodes, &changes, &seq_of)?;

        let doc: Value = serde_json::from_str(&reference).map_err(|e| e.to_string())?;
        check_rules(&doc, &self.expects)?;
        self.check_stamps()
    }

    /// Clocks only display and break ties: a store stamps a new write with
    /// its own clock, or a later time it has seen from a peer, but a peer's
    /// clock years ahead must not carry every later write of every store
    /// with it (its writes would then win every tie, and show the wrong
    /// time, for years). One new item per store, after the final sync: its
    /// `updated_at` (its clock reading) is at most a day past the later of the true time and the
    /// store's own clock.
    fn check_stamps(&self) -> Outcome {
        const DAY_US: i64 = 86_400_000_000;
        for (i, node) in self.nodes.iter().enumerate() {
            let input = NewWorkItem {
                item_type: "task".into(),
                title: "stamped".into(),
                ..Default::default()
            };
            let now = waymark::time::Timestamp::now().0;
            let item = node
                .tracker
                .create_work_item(AUTHOR, input)
                .map_err(|e| format!("store {i}: create_work_item after the final sync: {e}"))?;
            let stamped = waymark::time::Timestamp::parse(&item.updated_at)
                .ok_or_else(|| format!("updated_at {:?} does not parse", item.updated_at))?
                .0;
            let own = now + node.max_skew_ms * 1000;
            ensure!(
                stamped <= now.max(own) + DAY_US,
                "store {i} (clock {:+} days, never more than {:+}) stamps a new write {} days ahead of the true \
                 time: {} (a peer's clock ahead carries every later write with it)",
                node.skew_ms / 86_400_000,
                node.max_skew_ms / 86_400_000,
                (stamped - now) / DAY_US,
                item.updated_at
            );
        }
        Ok(())
    }
}

/// The first record whose registers differ between `a` and `b`: its fields
/// (every value, with its dot, clock and author), its delete races, and its
/// version vector as far as `replicas` go (the replicas with changes in
/// this space's log: a store that moved here has also seen its own history
/// in the space it left, which it published again under a new id; those
/// dots never reach this space and decide nothing here).
fn registers_differ(a: &RecordStates, b: &RecordStates, replicas: &HashSet<ReplicaId>) -> Option<(String, String)> {
    let keys: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .find(|k| match (a.get(*k), b.get(*k)) {
            (Some(x), Some(y)) => {
                x.fields != y.fields
                    || x.delete_races != y.delete_races
                    || vv_in(&x.vv, replicas) != vv_in(&y.vv, replicas)
            }
            _ => true,
        })
        .cloned()
}

fn vv_in(vv: &VersionVector, replicas: &HashSet<ReplicaId>) -> Vec<(ReplicaId, u64)> {
    vv.iter()
        .filter(|(r, _)| replicas.contains(r))
        .map(|(r, n)| (*r, *n))
        .collect()
}

/// What differs between two states of one record (`a` first).
fn describe_difference(a: Option<&waymark_sync::RecordState>, b: Option<&waymark_sync::RecordState>) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return format!("one side has no such record ({} / {})", a.is_some(), b.is_some());
    };
    let mut out = Vec::new();
    let names: BTreeSet<&String> = a.fields.keys().chain(b.fields.keys()).collect();
    for name in names {
        let (x, y) = (a.fields.get(name), b.fields.get(name));
        if x != y {
            out.push(format!("field {name}: {x:?} vs {y:?}"));
        }
    }
    if a.delete_races != b.delete_races {
        out.push(format!("delete races {:?} vs {:?}", a.delete_races, b.delete_races));
    }
    if a.vv != b.vv {
        out.push(format!("version vector {:?} vs {:?}", a.vv, b.vv));
    }
    out.join("\n")
}

fn fold<'a>(changes: impl IntoIterator<Item = &'a Change>) -> RecordStates {
    let mut states = RecordStates::new();
    for c in changes {
        states
            .entry((c.collection.clone(), c.record_id.clone()))
            .or_default()
            .apply(c);
    }
    states
}

/// A random causal order of `changes`: a change comes after every change of
/// its record that its context covers, and otherwise anywhere.
fn shuffled_causal_order(changes: &[Change], mut seed: u64) -> Vec<&Change> {
    let mut next = move || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB) ^ (z >> 31)
    };
    let key = |c: &Change| (c.collection.clone(), c.record_id.clone());
    let mut waiting: Vec<&Change> = changes.iter().collect();
    let mut done: HashSet<Dot> = HashSet::new();
    let mut order = Vec::with_capacity(changes.len());
    while !waiting.is_empty() {
        let ready: Vec<usize> = (0..waiting.len())
            .filter(|&i| {
                waiting.iter().all(|o| {
                    !(key(o) == key(waiting[i]) && o.dot != waiting[i].dot && waiting[i].context.covers(&o.dot))
                        || done.contains(&o.dot)
                })
            })
            .collect();
        if ready.is_empty() {
            // Contexts that form a cycle: keep the hub's order for the rest.
            order.extend(waiting);
            break;
        }
        let pick = ready[(next() % ready.len() as u64) as usize];
        let c = waiting.remove(pick);
        done.insert(c.dot);
        order.push(c);
    }
    order
}

/// Every live item is in exactly one of the live list and the archived list.
fn check_lists(t: &Tracker) -> Outcome {
    let mut live: Vec<String> = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .list_work_items(WorkItemFilter {
                limit: Some(100),
                cursor: cursor.take(),
                ..Default::default()
            })
            .map_err(|e| format!("list_work_items: {e}"))?;
        live.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut archived: Vec<String> = Vec::new();
    loop {
        let page = t
            .list_work_items(WorkItemFilter {
                archived: true,
                limit: Some(100),
                cursor: cursor.take(),
                ..Default::default()
            })
            .map_err(|e| format!("list_work_items (archived): {e}"))?;
        archived.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let doc = t.export_json().map_err(|e| e.to_string())?;
    let all = doc["work_items"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(doc["archived_work_items"].as_array().into_iter().flatten());
    for item in all {
        if !item["deleted_at"].is_null() {
            continue;
        }
        let id = item["id"].as_str().unwrap_or_default();
        let places = live.iter().filter(|x| *x == id).count() + archived.iter().filter(|x| *x == id).count();
        ensure!(
            places == 1,
            "live item {id} is in {places} of the live and archived lists"
        );
    }
    Ok(())
}

/// Claims (issue 14): every store derives the holder of each item from the
/// registers and the hub's order alone (the same as the pure derivation
/// over the log folded with its seqs), claims raise no conflict, and no
/// agent is shown as holding an item it lost, nor offered it as ready.
fn check_claims(nodes: &[Node], changes: &[Change], seq_of: &HashMap<Dot, u64>) -> Outcome {
    use waymark::domain::claim;
    let folded = fold(changes);
    type Row = (String, Option<String>, Option<i64>, i64, Option<String>);
    let mut expected: Vec<Row> = Vec::new();
    for ((collection, id), state) in &folded {
        if collection != "claims" {
            continue;
        }
        let siblings: Vec<claim::Sibling> = state
            .fields
            .get("claim")
            .map(|r| {
                r.siblings()
                    .iter()
                    .filter_map(|s| {
                        Some(claim::Sibling {
                            dot: s.dot,
                            hlc: s.hlc,
                            value: claim::ClaimValue::parse(&s.value)?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let d = claim::derive(&siblings, |dot| seq_of.get(dot).copied());
        let holder = d.current.as_ref().filter(|c| !c.released).map(|c| c.holder.clone());
        if let Some(h) = &holder {
            ensure!(
                !d.lost.iter().any(|(l, _)| l == h),
                "claim of {id}: holder {h} also listed as having lost"
            );
        }
        expected.push((
            id.clone(),
            holder.clone(),
            d.current.as_ref().map(|c| c.expires_at as i64),
            i64::from(d.tentative && holder.is_some()),
            (!d.lost.is_empty()).then(|| serde_json::to_string(&d.lost).unwrap()),
        ));
    }
    expected.sort();
    stats::add(&stats::CLAIMS_HELD, expected.iter().filter(|r| r.1.is_some()).count());
    stats::add(&stats::CLAIMS_LOST, expected.iter().filter(|r| r.4.is_some()).count());
    for (i, node) in nodes.iter().enumerate() {
        let t = &node.tracker;
        let mut rows: Vec<Row> = t
            .store()
            .read(|c| {
                let mut stmt = c.prepare("SELECT id, holder, expires_at, tentative, lost FROM claims")?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            waymark::store::id::get_id(r, 0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<Row>>>()?;
                Ok(rows)
            })
            .map_err(|e| format!("reading claims: {e}"))?;
        rows.sort();
        ensure!(
            rows == expected,
            "store {i} derives other claims than the log in the hub's order: {rows:?} != {expected:?}"
        );
        // No agent is offered an item another holds, nor one it lost.
        for agent in AGENTS {
            let ready = t
                .ready_work_for(
                    agent,
                    waymark::ops::ReadyQuery {
                        limit: Some(100),
                        ..Default::default()
                    },
                )
                .map_err(|e| format!("ready: {e}"))?;
            for row in &ready.page.items {
                if let Some(h) = &row.claimed_by {
                    ensure!(h == agent, "store {i} offers {agent} the item {} {h} holds", row.id);
                }
            }
        }
    }
    Ok(())
}

/// The rules a merge must report when it cannot keep them: the tree, the
/// dependency graph, and what the scenarios expect.
fn check_rules(doc: &Value, expects: &[Expect]) -> Outcome {
    let conflicts: Vec<(String, String, String, String)> = doc["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("collection"), s("record_id"), s("field"), s("kind"))
        })
        .collect();
    let tree_conflict = |id: &str, kinds: &[&str]| {
        conflicts
            .iter()
            .any(|(c, r, f, k)| c == "work_items" && r == id && f == "parent_id" && kinds.contains(&k.as_str()))
    };
    let names_record = |id: &str| conflicts.iter().any(|(_, r, _, _)| r == id);
    let items: BTreeMap<String, &Value> = doc["work_items"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(doc["archived_work_items"].as_array().into_iter().flatten())
        .map(|i| (i["id"].as_str().unwrap_or_default().to_owned(), i))
        .collect();
    let parent_of = |id: &str| items.get(id).and_then(|i| i["parent_id"].as_str()).map(str::to_owned);

    // The derived tree: paths follow the parent links, or a tree conflict
    // says why not.
    for (id, item) in &items {
        let path = item["path"].as_str().unwrap_or_default();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        ensure!(
            segs.last() == Some(&id.as_str()),
            "item {id}'s path {path} does not end with it"
        );
        ensure!(
            segs.iter().collect::<HashSet<_>>().len() == segs.len(),
            "item {id}'s path {path} repeats an item"
        );
        let depth = item["depth"].as_i64().unwrap_or(-1);
        ensure!(
            depth == segs.len() as i64 - 1 && depth <= 5,
            "item {id} has depth {depth} with path {path}"
        );
        let placed_under = (segs.len() >= 2).then(|| segs[segs.len() - 2].to_owned());
        let stated = parent_of(id);
        if placed_under != stated {
            ensure!(
                tree_conflict(id, &["cycle", "depth", "orphan"]),
                "item {id} has parent {stated:?} but sits under {placed_under:?}, and no cycle, depth or orphan \
                 conflict says why"
            );
        } else if let Some(p) = &stated
            && let Some(parent) = items.get(p)
        {
            let expected = format!("{}/{id}", parent["path"].as_str().unwrap_or_default());
            ensure!(
                path == expected,
                "item {id}'s path {path} is not its parent's plus itself ({expected})"
            );
        }
    }
    // Every cycle of parent links is reported.
    let mut reported: HashSet<String> = HashSet::new();
    for start in items.keys() {
        let mut chain = vec![start.clone()];
        let mut at = start.clone();
        while let Some(p) = parent_of(&at) {
            if !items.contains_key(&p) {
                break;
            }
            if let Some(pos) = chain.iter().position(|x| *x == p) {
                let cycle = &chain[pos..];
                let mut key: Vec<&String> = cycle.iter().collect();
                key.sort();
                let key = format!("{key:?}");
                if reported.insert(key) {
                    ensure!(
                        cycle.iter().any(|m| tree_conflict(m, &["cycle"])),
                        "the parent links form a cycle of {} items ({}) and no member has a cycle conflict",
                        cycle.len(),
                        cycle.join(" -> ")
                    );
                }
                break;
            }
            if chain.len() > items.len() {
                break;
            }
            chain.push(p.clone());
            at = p;
        }
    }

    // A merged dependency cycle is reported.
    let mut waits: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for d in doc["dependencies"].as_array().into_iter().flatten() {
        let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
        let (waiter, awaited) = if s("dependency_type") == "blocks" {
            (s("target_id"), s("source_id"))
        } else {
            (s("source_id"), s("target_id"))
        };
        waits.entry(waiter).or_default().push((awaited, s("id")));
    }
    for start in waits.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), Vec::new())];
        let mut visited: HashSet<String> = HashSet::new();
        while let Some((at, edges)) = stack.pop() {
            for (next, dep) in waits.get(&at).into_iter().flatten() {
                let mut path = edges.clone();
                path.push(dep.clone());
                if next == start {
                    let mut members: Vec<String> = path.clone();
                    members.push(start.clone());
                    ensure!(
                        members.iter().any(|m| names_record(m)),
                        "the dependencies form a cycle through {start} ({} edges) and no conflict reports it",
                        path.len()
                    );
                } else if visited.insert(next.clone()) {
                    stack.push((next.clone(), path));
                }
            }
        }
    }

    for e in expects {
        match e {
            Expect::ArchivedReopened { item } => {
                let Some(i) = items.get(item) else { continue };
                let open = i["status"] != "completed" && i["deleted_at"].is_null();
                if !i["archived_at"].is_null() && open {
                    ensure!(
                        names_record(item),
                        "item {item} was archived on one store and reopened on another: it is archived with status \
                         {}, and no conflict reports it",
                        i["status"]
                    );
                }
            }
            Expect::ChildOfDeleted { child, parent } => {
                let (Some(c), Some(p)) = (items.get(child), items.get(parent)) else {
                    continue;
                };
                if !p["deleted_at"].is_null()
                    && c["deleted_at"].is_null()
                    && c["parent_id"].as_str() == Some(parent.as_str())
                {
                    ensure!(
                        names_record(child) || names_record(parent),
                        "item {child} was created under {parent} while another store deleted {parent}: it lives under \
                         a deleted parent, and no conflict reports it"
                    );
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Runners

fn env_number(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        source_file: Some(file!()),
        // One regressions file would serve every test of this file, each with
        // its own strategy: the minimal scripts are kept as tests instead
        // (`regression_*`).
        failure_persistence: None,
        max_shrink_iters: env_number("WAYMARK_MODEL_SHRINK_ITERS").unwrap_or(1024),
        ..Config::default()
    }
}

fn run_case<H: HubAdmin>(world: Outcome<World<H>>, script: &Script) -> Result<(), TestCaseError> {
    let outcome = world.and_then(|mut world| {
        for (n, action) in script.actions.iter().enumerate() {
            world
                .perform(action)
                .map_err(|e| format!("at action {n} ({action:?}): {e}"))?;
        }
        world
            .check(script.order_seed)
            .map_err(|e| format!("after the final sync: {e}"))
    });
    outcome.map_err(TestCaseError::fail)
}

fn report(name: &str, kinds: &[Kind], cases: u32, started: Instant, result: Result<(), TestError<Script>>) {
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    match result {
        Ok(()) => eprintln!(
            "model {name} [{}]: {cases} cases in {:.1} s; {}",
            names.join(","),
            started.elapsed().as_secs_f64(),
            stats::take()
        ),
        Err(TestError::Fail(why, script)) => panic!(
            "model {name} [{}] failed: {why}\nminimal failing script: {script:?}",
            names.join(",")
        ),
        Err(e) => panic!("model {name}: {e}"),
    }
}

/// Run `cases` histories drawn from `kinds` over the in-memory hub.
fn run_memory(name: &str, kinds: &[Kind], cases: u32) {
    let started = Instant::now();
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&script(kinds), |script| {
        let world = World::new(MemoryHub::new(), "model".into(), None, script.stores);
        run_case(world, &script)
    });
    report(name, kinds, cases, started, result);
}

/// Run `cases` histories drawn from `kinds` over the real Postgres hub: one
/// database, a fresh space (and hub connections) per case.
fn run_postgres(name: &str, kinds: &[Kind], cases: u32) {
    let rt = Arc::new(runtime());
    let db = rt.block_on(TestDatabase::create("model_real"));
    rt.block_on(db.hub()); // migrated once
    let started = Instant::now();
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&script(kinds), |script| {
        let world = PostgresHub::new(db.url().clone(), HubOptions::default())
            .map_err(|e| format!("a hub: {e}"))
            .and_then(|hub| {
                let space = format!("model-{}", uuid::Uuid::now_v7());
                World::new(hub, space, Some(rt.clone()), script.stores)
            });
        run_case(world, &script)
    });
    report(name, kinds, cases, started, result);
}

/// Per-kind tests: the base actions plus one kind.
const KIND_CASES: u32 = 4;
/// The mixed tests: every kind of `WAYMARK_MODEL_KINDS` (default: all).
const MIXED_CASES: u32 = 16;
const POSTGRES_CASES: u32 = 4;

fn kind_cases() -> u32 {
    env_number("WAYMARK_MODEL_CASES").unwrap_or(KIND_CASES)
}

fn mixed_kinds() -> Vec<Kind> {
    std::env::var("WAYMARK_MODEL_KINDS").map_or_else(|_| ALL_KINDS.to_vec(), |k| Kind::parse_list(&k))
}

fn with_base(kind: Kind) -> Vec<Kind> {
    vec![Kind::Base, kind]
}

#[test]
fn base() {
    run_memory("base", &[Kind::Base], kind_cases());
}

#[test]
fn copy() {
    run_memory("copy", &with_base(Kind::Copy), kind_cases());
}

#[test]
fn move_cycle() {
    run_memory("move_cycle", &with_base(Kind::MoveCycle), kind_cases());
}

#[test]
fn dep_cycle() {
    run_memory("dep_cycle", &with_base(Kind::DepCycle), kind_cases());
}

#[test]
fn archive_reopen() {
    run_memory("archive_reopen", &with_base(Kind::ArchiveReopen), kind_cases());
}

#[test]
fn child_of_deleted() {
    run_memory("child_of_deleted", &with_base(Kind::ChildOfDeleted), kind_cases());
}

#[test]
fn copy_overwrite() {
    run_memory("copy_overwrite", &with_base(Kind::CopyOverwrite), kind_cases());
}

#[test]
fn new_space() {
    run_memory("new_space", &with_base(Kind::NewSpace), kind_cases());
}

#[test]
fn clock_skew() {
    run_memory("clock_skew", &with_base(Kind::ClockSkew), kind_cases());
}

#[test]
fn floats() {
    run_memory("floats", &with_base(Kind::Floats), kind_cases());
}

#[test]
fn unknown_collection() {
    run_memory("unknown_collection", &with_base(Kind::UnknownCollection), kind_cases());
}

#[test]
fn new_space_with_unknown_collection() {
    run_memory(
        "new_space_with_unknown_collection",
        &[Kind::Base, Kind::NewSpace, Kind::UnknownCollection],
        kind_cases(),
    );
}

#[test]
fn new_space_with_clock_skew() {
    run_memory(
        "new_space_with_clock_skew",
        &[Kind::Base, Kind::NewSpace, Kind::ClockSkew],
        kind_cases(),
    );
}

#[test]
fn unknown_field() {
    run_memory("unknown_field", &with_base(Kind::UnknownField), kind_cases());
}

#[test]
fn compact() {
    run_memory("compact", &with_base(Kind::Compact), kind_cases());
}

/// Compaction with the kinds that change replica ids or spaces (copies,
/// stores moved to a new space, stores bound late).
#[test]
fn compact_with_copies_and_new_spaces() {
    run_memory(
        "compact with copies and new spaces",
        &[
            Kind::Base,
            Kind::Compact,
            Kind::Copy,
            Kind::CopyOverwrite,
            Kind::NewSpace,
            Kind::BindLate,
        ],
        kind_cases(),
    );
}

#[test]
fn bind_late() {
    run_memory("bind_late", &with_base(Kind::BindLate), kind_cases());
}

#[test]
fn claims() {
    run_memory("claims", &with_base(Kind::Claims), kind_cases());
}

#[test]
fn claims_with_copies_and_new_spaces() {
    run_memory(
        "claims_with_copies_and_new_spaces",
        &[Kind::Base, Kind::Claims, Kind::Copy, Kind::NewSpace, Kind::BindLate],
        kind_cases(),
    );
}

#[test]
fn bind_late_with_copies() {
    run_memory(
        "bind_late_with_copies",
        &[Kind::Base, Kind::BindLate, Kind::Copy, Kind::CopyOverwrite],
        kind_cases(),
    );
}

/// Every kind at once (or those of `WAYMARK_MODEL_KINDS`): the soak runs
/// this one with `WAYMARK_MODEL_CASES=10000`.
#[test]
fn mixed_over_memory() {
    let cases = env_number("WAYMARK_MODEL_CASES").unwrap_or(MIXED_CASES);
    run_memory("mixed", &mixed_kinds(), cases);
}

#[test]
fn mixed_over_postgres() {
    let cases = env_number("WAYMARK_MODEL_PG_CASES").unwrap_or(POSTGRES_CASES);
    run_postgres("mixed over Postgres", &mixed_kinds(), cases);
}

// ---------------------------------------------------------------------------
// The minimal scripts the kinds shrank to (issue 11), replayed as they are.
// Each failed before the fixes of issue 11 (copies, new spaces, clocks ahead,
// 17-digit floats, unknown collections, long cycles, dependency cycles,
// archive against reopen, a child under a deleted parent) and hold them now.

fn replay(stores: usize, actions: Vec<Action>) {
    let script = Script {
        stores,
        actions,
        order_seed: 0,
    };
    let world = World::new(MemoryHub::new(), "model".into(), None, stores);
    match run_case(world, &script) {
        Ok(()) => {}
        Err(TestCaseError::Fail(why) | TestCaseError::Reject(why)) => panic!("{why}\nscript: {script:?}"),
    }
}

macro_rules! regression {
    ($name:ident, $stores:expr, [$($action:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            replay($stores, vec![$($action),*]);
        }
    };
}

regression!(
    regression_copy,
    2,
    [
        Action::Copy { store: 0 },
        Action::Vendor {
            store: 1,
            vendor: 2,
            value: 0
        },
        Action::Copy { store: 1 },
        Action::Vendor {
            store: 1,
            vendor: 2,
            value: 0
        },
    ]
);

regression!(regression_copy_overwrite, 2, [Action::CopyOverwrite { store: 0 }]);

regression!(
    regression_move_cycle,
    2,
    [Action::MoveCycle {
        first: 0,
        spread: 2,
        len: 7
    }]
);

regression!(regression_dep_cycle, 2, [Action::DepCycle { first: 0, len: 2 }]);

regression!(
    regression_archive_reopen,
    2,
    [Action::ArchiveVsReopen {
        archiver: 0,
        reopener: 1
    }]
);

regression!(
    regression_child_of_deleted,
    2,
    [Action::ChildOfDeleted { deleter: 0, creator: 1 }]
);

regression!(
    regression_new_space,
    2,
    [
        Action::Vendor {
            store: 0,
            vendor: 0,
            value: 0
        },
        Action::Round {
            store: 0,
            batch: 1,
            page: 1,
            fault: None
        },
        Action::NewSpace { store: 0 },
    ]
);

regression!(
    regression_clock_skew,
    2,
    [
        Action::Skew { store: 1, years: 1 },
        Action::Create { store: 1, parent: None },
    ]
);

regression!(
    regression_floats,
    2,
    [Action::Float {
        store: 0,
        target: 0,
        which: 5,
        vendor: true
    }]
);

regression!(
    regression_unknown_collection,
    2,
    [Action::Unknown {
        labels: true,
        target: 0,
        value: 0
    }]
);

regression!(
    regression_new_space_with_unknown_collection,
    2,
    [
        Action::Unknown {
            labels: true,
            target: 0,
            value: 0
        },
        Action::Round {
            store: 0,
            batch: 1,
            page: 1,
            fault: None
        },
        Action::NewSpace { store: 0 },
    ]
);

regression!(
    regression_new_space_with_clock_skew,
    3,
    [
        Action::Skew { store: 0, years: 1 },
        Action::Create { store: 0, parent: None },
        Action::Round {
            store: 0,
            batch: 1,
            page: 1,
            fault: None
        },
        Action::PullSome {
            store: 1,
            pages: 1,
            page: 1
        },
        Action::NewSpace { store: 0 },
    ]
);

regression!(
    regression_bind_late,
    2,
    [
        Action::Late { items: 2 },
        Action::Create { store: 2, parent: None },
        Action::Race {
            stores: (2, 0),
            item: 0,
            field: 0,
            value: 3
        },
        Action::Copy { store: 2 },
        Action::Update {
            store: 3,
            item: 0,
            fields: 0b100001,
            value: 4
        },
        Action::Round {
            store: 2,
            batch: 1,
            page: 1,
            fault: Some((1, true))
        },
    ]
);

// A claim made on a store whose clock runs a year ahead: ready work there
// read its lease against one time and showed the holder against another
// (issue 14).
regression!(
    regression_claim_on_a_clock_a_year_ahead,
    2,
    [
        Action::MoveCycle {
            first: 0,
            spread: 2,
            len: 10
        },
        Action::Late { items: 3 },
        Action::Skew { store: 3, years: 1 },
        Action::ClaimRace {
            stores: (0, 2),
            agents: (0, 0),
            item: 10
        },
    ]
);

// Found when claims met compaction: a claim folded into a snapshot lost its
// hub seq, so a store that bootstrapped from the snapshots showed it
// `tentative` where every store that pulled the log showed it confirmed
// (snapshots now keep the seqs of the writes they show or name).
regression!(
    regression_a_claim_folded_into_a_snapshot_keeps_its_place,
    2,
    [
        Action::ChildOfDeleted { deleter: 0, creator: 1 },
        Action::Claim {
            store: 1,
            agent: 0,
            item: None,
            force: false,
            release: false
        },
        Action::Compact {
            store: 0,
            batch: 1,
            forget: None,
            others: false
        },
    ]
);
