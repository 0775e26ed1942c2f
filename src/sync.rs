//! The agent's side of sync: one round against a hub, the health it leaves
//! in the store's local state (what `status`, `get_project_configuration`
//! and the `sync` tool show), and the worker that `serve` runs.
//!
//! The protocol, the merge and the schedule live in `waymark-sync`; this
//! module only wires them to the SQLite store, the configuration and tokio.
//! It never holds a store transaction across a hub call (the round calls the
//! store between network requests).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use waymark_sync::postgres::{HubOptions, HubUrl, PostgresHub};
use waymark_sync::worker::{Command, Commands, Runtime};
use waymark_sync::{
    Change, Dot, PageApplied, RecordStates, Replica, ReplicaError, ReplicaId, RoundReport, SyncError, SyncOptions,
    SyncStatus, Worker, WorkerConfig, sync_round,
};

use crate::config::Settings;
use crate::ops::configuration::health_keys;
use crate::progress::Progress;
use crate::store::Store;
use crate::time::Timestamp;

/// What the `sync` tool and `waymark sync --json` answer: this replica's
/// sync health, with the round when one ran.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SyncAnswer {
    #[serde(flatten)]
    pub health: crate::ops::SyncHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundSummary>,
}

impl SyncAnswer {
    /// The health of `tracker`'s store after `round` (if one ran).
    pub fn of(tracker: &crate::ops::Tracker, round: Option<RoundSummary>) -> crate::Result<SyncAnswer> {
        let (_, health) = tracker.get_project_configuration()?;
        Ok(SyncAnswer { health, round })
    }
}

/// What one round did, as the CLI and the `sync` tool report it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RoundSummary {
    pub pushed: usize,
    pub pulled: usize,
    /// Conflicts open after the round that were not open before it, counted
    /// as `conflicts` (`list_conflicts`) lists them: one per conflicting
    /// field of a record, however many pulled changes touched it.
    pub conflicts: usize,
    /// Every conflict open after the round (what `conflicts` lists).
    pub open_conflicts: usize,
    pub cursor: u64,
}

impl RoundSummary {
    /// `report`, with the conflicts counted from the open ones before and
    /// after the round (the round's own count is of pulled changes that
    /// left a record conflicted, which a user cannot match to anything).
    fn of(report: &RoundReport, before: &OpenConflicts, after: &OpenConflicts) -> RoundSummary {
        RoundSummary {
            pushed: report.pushed,
            pulled: report.pulled,
            conflicts: after.difference(before).count(),
            open_conflicts: after.len(),
            cursor: report.cursor,
        }
    }
}

/// The open conflicts, by their key in the `conflicts` table (collection,
/// record, field, kind), the rows `list_conflicts` shows.
type OpenConflicts = BTreeSet<(String, String, String, String)>;

fn open_conflicts(store: &Store) -> crate::Result<OpenConflicts> {
    store.read(|conn| Ok(crate::store::query::conflicts::all(conn)?.into_iter().collect()))
}

/// How long one local transaction of a sync round should hold the store's
/// writer: a tool's write waits behind at most one of them.
const SLICE_BUDGET: Duration = Duration::from_millis(1);

/// A slice size that follows how long the last slice took: halved when a
/// slice ran past [`SLICE_BUDGET`], doubled when a full one took less than
/// half of it.
struct Pace {
    size: AtomicUsize,
    max: usize,
}

impl Pace {
    const fn new(start: usize, max: usize) -> Pace {
        Pace {
            size: AtomicUsize::new(start),
            max,
        }
    }

    fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    fn observe(&self, n: usize, took: Duration) {
        let size = self.size();
        let next = if took > SLICE_BUDGET {
            (n / 2).max(1)
        } else if took < SLICE_BUDGET / 2 && n >= size {
            (size * 2).min(self.max)
        } else {
            size
        };
        self.size.store(next, Ordering::Relaxed);
    }
}

/// The store as a sync round sees it, in short transactions: a pulled page
/// is applied in slices, each with its cursor in the same transaction (the
/// seqs of a page are dense, so a slice's last seq is a cursor that covers
/// exactly what was applied), and an outbox read hands out a bounded batch
/// (the round pushes until the outbox is empty, so a smaller batch only
/// means more pushes). The slices follow [`SLICE_BUDGET`], so tool writes
/// interleave with a big pull instead of queueing behind 1,000-change
/// transactions.
///
/// Two departures from the [`Replica`] contract, and why they are safe:
/// - A page that fails midway keeps the slices applied before the failure,
///   with the cursor at the last of them (not "nothing of the page"). What
///   is kept is exactly what the cursor covers, so the next round pulls from
///   there again: nothing is skipped, and applying is idempotent.
/// - A round's push hands out at most the changes that were waiting when
///   it began (the outbox then reads as empty, and the round goes on to
///   pull); changes written during the round wait for the next one, which
///   the worker runs soon after local writes. Otherwise an agent writing
///   faster than the hub takes its changes would keep the round pushing,
///   and it would never pull.
pub struct PacedReplica {
    store: Store,
    apply: Pace,
    outbox: Pace,
    /// How many more changes this round's push may hand out; `None` until
    /// the round's first outbox read.
    push_budget: Mutex<Option<usize>>,
    /// Told the changes pulled so far (a long pull, a bootstrap).
    progress: Progress,
    pulled: std::sync::atomic::AtomicU64,
}

impl PacedReplica {
    pub fn new(store: Store) -> PacedReplica {
        PacedReplica {
            store,
            apply: Pace::new(32, 1000),
            outbox: Pace::new(64, 1000),
            push_budget: Mutex::new(None),
            progress: Progress::none(),
            pulled: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The same, telling `progress` the changes pulled.
    pub(crate) fn with_progress(mut self, progress: Progress) -> PacedReplica {
        self.progress = progress;
        self
    }

    /// Apply `items` in slices of about a millisecond each (one local
    /// transaction per slice, `apply(slice, is_last)`), so tool writes
    /// interleave with a big pull; a cancelled `sync now` stops between
    /// slices (what was applied stays, each slice with its cursor).
    fn in_slices<T>(
        &self,
        items: &[T],
        what: &'static str,
        apply: impl Fn(&[T], bool) -> Result<PageApplied, ReplicaError>,
    ) -> Result<PageApplied, ReplicaError> {
        let mut total = PageApplied::default();
        let mut rest = items;
        while !rest.is_empty() {
            if self.progress.is_cancelled() {
                return Err(ReplicaError::permanent(
                    "cancelled by the client; what was pulled before stays applied",
                ));
            }
            let n = self.apply.size().clamp(1, rest.len());
            let (slice, later) = rest.split_at(n);
            let started = Instant::now();
            let applied = apply(slice, later.is_empty())?;
            self.apply.observe(n, started.elapsed());
            total.applied += applied.applied;
            total.already_seen += applied.already_seen;
            total.conflicts += applied.conflicts;
            rest = later;
            let pulled = self.pulled.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed) + n as u64;
            self.progress.step(pulled, None, what);
        }
        Ok(total)
    }

    /// How many changes the next slice of a page applies (for tests).
    pub fn apply_slice(&self) -> usize {
        self.apply.size()
    }
}

impl Replica for PacedReplica {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Replica::replica_id(&self.store)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        if limit == usize::MAX {
            // The round checks the whole outbox after a gap: rare, and it
            // needs every entry.
            return self.store.outbox(limit);
        }
        let mut budget = self.push_budget.lock().unwrap_or_else(|p| p.into_inner());
        let remaining = match *budget {
            Some(r) => r,
            None => self
                .store
                .pending_changes()
                .map_err(|e| ReplicaError::retryable(e.to_string()))? as usize,
        };
        let n = limit.min(self.outbox.size()).min(remaining);
        if n == 0 {
            // The push of this round ends here; the next read starts the
            // next round's budget.
            *budget = None;
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let batch = self.store.outbox(n)?;
        self.outbox.observe(n, started.elapsed());
        *budget = if batch.is_empty() {
            None
        } else {
            Some(remaining - batch.len())
        };
        Ok(batch)
    }

    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        self.store.acknowledge(dots)
    }

    fn cursor(&self) -> Result<u64, ReplicaError> {
        self.store.cursor()
    }

    fn cursor_dot(&self) -> Result<Option<waymark_sync::Dot>, ReplicaError> {
        self.store.cursor_dot()
    }

    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        if changes.is_empty() {
            return self.store.apply_page(changes, new_cursor);
        }
        self.in_slices(changes, "changes pulled", |slice, last| {
            let cursor = if last { new_cursor } else { slice[slice.len() - 1].0 };
            self.store.apply_page(slice, cursor)
        })
    }

    fn apply_snapshots(&self, snapshots: &[waymark_sync::Snapshot]) -> Result<PageApplied, ReplicaError> {
        self.in_slices(snapshots, "records and changes pulled", |slice, _| {
            self.store.apply_snapshots(slice)
        })
    }

    fn label(&self) -> (String, String) {
        self.store.label()
    }

    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        self.store.record_states()
    }

    fn recover(&self, refusal: &waymark_sync::Refusal) -> Result<bool, ReplicaError> {
        // What the store publishes again is this round's to push: the round
        // runs once more after a recovery, and its push starts a new budget.
        *self.push_budget.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.store.recover(refusal)
    }
}

/// A pull cursor belongs to one (hub, space): when either changes, start
/// the log again (changes already applied are skipped). The hub is named
/// by [`HubUrl::identity`] (hosts, ports, database), so another user, a
/// new password or a `key=value` spelling of the same URL is the same hub;
/// a binding recorded in an earlier form (the whole URL, redacted) that
/// names the same hub is rewritten, not treated as a new hub.
pub fn bind_cursor(store: &Store, settings: &Settings) -> crate::Result<()> {
    let Some((url, space)) = settings.hub() else {
        return Ok(());
    };
    let identity = hub_identity(url, space);
    store.adopt_hub_identity(&identity, |earlier| {
        earlier
            .rsplit_once('#')
            .is_some_and(|(url, earlier_space)| hub_identity(url, earlier_space) == identity)
    })?;
    store.bind_hub(&identity)?;
    store.local_set(health_keys::HUB_URL_SET, "true")
}

/// `hub#space`, the hub as [`HubUrl::identity`] names it.
fn hub_identity(url: &str, space: &str) -> String {
    let hub = HubUrl::parse(url).map_or_else(|_| crate::config::redact_url(url), |u| u.identity());
    format!("{hub}#{space}")
}

fn system_time_text(t: SystemTime) -> String {
    let micros = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
    Timestamp(micros).to_string()
}

/// Keep the worker's status where every face can read it.
pub(crate) fn record_status(store: &Store, status: &SyncStatus) {
    // Unknown is not "never": a success or reachability not yet observed
    // by this process leaves what an earlier one recorded.
    let mut writes: Vec<(&str, Option<String>)> = vec![(health_keys::LAST_ERROR, status.last_error.clone())];
    if let Some(at) = status.last_success_at {
        writes.push((health_keys::LAST_SYNC_AT, Some(system_time_text(at))));
    }
    if let Some(reachable) = status.hub_reachable {
        writes.push((health_keys::HUB_REACHABLE, Some(reachable.to_string())));
    }
    let result = store.on_writer(move |conn| {
        let tx = conn.transaction()?;
        for (key, value) in writes.drain(..) {
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, &v],
                )?,
                None => tx.execute("DELETE FROM local_state WHERE key = ?1", [key])?,
            };
        }
        tx.commit()?;
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the sync status");
    }
}

/// Record the outcome of one round run outside the worker.
fn record_round(store: &Store, result: &Result<RoundReport, SyncError>) {
    let mut worker = Worker::new(WorkerConfig::default(), Instant::now(), 0);
    worker.on_result(Instant::now(), SystemTime::now(), result);
    record_status(store, worker.status());
}

/// The running worker, as `serve` and its tools see it.
#[derive(Clone)]
pub struct SyncHandle {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    status: Arc<Mutex<SyncStatus>>,
}

impl SyncHandle {
    /// A local write committed: sync soon (debounced).
    pub fn local_write(&self) {
        let _ = self.commands.send(Command::LocalWrite);
    }

    /// Run a round as soon as the worker can.
    #[cfg(test)]
    pub(crate) fn sync_now(&self) {
        let _ = self.commands.send(Command::SyncNow);
    }

    pub fn status(&self) -> SyncStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }
}

struct Tokio;

impl Runtime for Tokio {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_time(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(deadline.into())
    }
}

struct Receiver(tokio::sync::mpsc::UnboundedReceiver<Command>);

impl Commands for Receiver {
    fn recv(&mut self) -> impl Future<Output = Option<Command>> + Send {
        self.0.recv()
    }
}

/// Listen for the hub's announcements of pushes to `space` and tell the
/// worker (through a weak sender: the listener does not keep the worker
/// alive). One connection, reconnected with backoff (1 s doubling to 60 s)
/// when it fails; after a reconnect the worker is told the head is unknown,
/// since announcements made meanwhile were missed. Runs until the worker is
/// gone.
async fn listen(hub: Arc<PostgresHub>, space: String, worker: tokio::sync::mpsc::WeakUnboundedSender<Command>) {
    const FIRST_DELAY: Duration = Duration::from_secs(1);
    let tell = |command| worker.upgrade().is_some_and(|w| w.send(command).is_ok());
    let mut delay = FIRST_DELAY;
    let mut first = true;
    loop {
        match hub.listen(&space).await {
            Ok(mut listener) => {
                tracing::debug!("listening for the hub's announcements");
                delay = FIRST_DELAY;
                if !std::mem::take(&mut first) && !tell(Command::HubChanged(None)) {
                    return;
                }
                let error = loop {
                    match listener.next().await {
                        Ok(head) => {
                            if !tell(Command::HubChanged(head)) {
                                return;
                            }
                        }
                        Err(e) => break e,
                    }
                };
                tracing::info!("the hub's announcements stopped ({error}); listening again, polling meanwhile");
            }
            Err(e) => tracing::debug!("cannot listen for the hub's announcements ({e}); polling meanwhile"),
        }
        if worker.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// How often `serve` compacts its space's history on the hub.
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Compact the space's history on the hub now and then (every
/// [`COMPACT_EVERY`], the first time a few minutes after starting, each
/// jittered so the `serve`s of a team do not compact in step; a compaction
/// that finds nothing to fold costs the hub two short statements). Failures
/// are logged and wait for the next time: history only grows meanwhile.
async fn compact_periodically(hub: Arc<PostgresHub>, space: String, retention: Option<std::time::Duration>, seed: u64) {
    use waymark_sync::HubAdmin;
    let mut jitter = seed | 1;
    let mut next = move |max: u64| {
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        std::time::Duration::from_secs(jitter % max.max(1))
    };
    let mut delay = std::time::Duration::from_secs(300) + next(300);
    loop {
        tokio::time::sleep(delay).await;
        let opts = waymark_sync::CompactOptions {
            retention_ms: retention.map(|r| r.as_millis() as u64),
            ..waymark_sync::CompactOptions::default()
        };
        match hub.compact(&space, opts).await {
            Ok(r) if r.folded > 0 || r.retired > 0 => tracing::info!(
                folded = r.folded,
                retired = r.retired,
                floor = r.floor,
                head = r.head,
                "compacted the space's history on the hub"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("compacting the space's history on the hub failed: {e}"),
        }
        delay = COMPACT_EVERY + next(COMPACT_EVERY.as_secs() / 6);
    }
}

/// Start the worker on a thread of its own, with its own tokio runtime:
/// rounds on a timer, soon after local writes, as soon as the hub
/// announces a push by another replica (unless `settings` turn listening
/// off), with backoff while the hub is unreachable. Tool calls never wait for it: the rounds' store work
/// (applying pulled pages, reading the outbox) blocks only that thread, and
/// runs in short transactions ([`PacedReplica`]) that tool writes
/// interleave with.
pub fn spawn_worker(store: Store, hub: PostgresHub, space: String, settings: &Settings) -> SyncHandle {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let announcements = settings.listen().then(|| tx.downgrade());
    let status = Arc::new(Mutex::new(SyncStatus::default()));
    let handle = SyncHandle {
        commands: tx,
        status: status.clone(),
    };
    let config = WorkerConfig {
        interval: settings.interval(),
        ..WorkerConfig::default()
    };
    let retention = settings.retention();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let run = async move {
        // The hub's schema first (cheap when it is current): until it is
        // there, rounds could only fail. Retried with backoff while the hub
        // is unreachable; local writes queue up meanwhile.
        let mut delay = std::time::Duration::from_secs(1);
        while let Err(e) = hub.migrate().await {
            tracing::warn!("sync waits for the hub: {e}");
            let failed = SyncStatus {
                last_error: Some(e.to_string()),
                hub_reachable: Some(!e.is_unreachable()),
                ..SyncStatus::default()
            };
            record_status(&store, &failed);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.backoff.cap);
        }
        // Then this store's state, where the hub lacks it (a store's first
        // hub, another hub or space): until it is published, its changes
        // are in no outbox, so the rounds wait for it.
        let mut delay = std::time::Duration::from_secs(1);
        while let Err(e) = store.hub_answered() {
            tracing::error!("sync could not publish this store's state to the hub yet: {e}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.backoff.cap);
        }
        let hub = Arc::new(hub);
        let listener = announcements.map(|worker| tokio::spawn(listen(hub.clone(), space.clone(), worker)));
        let compactor = tokio::spawn(compact_periodically(hub.clone(), space.clone(), retention, seed));
        let worker = Worker::new(config, Instant::now(), seed);
        let mut commands = Receiver(rx);
        let replica = PacedReplica::new(store.clone());
        waymark_sync::worker::run(
            worker,
            &replica,
            &*hub,
            &space,
            SyncOptions::default(),
            &Tokio,
            &mut commands,
            |s| {
                *status.lock().unwrap_or_else(|p| p.into_inner()) = s.clone();
                // This thread is the worker's own: waiting for the store's
                // writer here delays only the next round.
                record_status(&store, s);
            },
        )
        .await;
        if let Some(listener) = listener {
            listener.abort();
        }
        compactor.abort();
        tracing::debug!("sync worker stopped");
    };
    let started = std::thread::Builder::new().name("waymark-sync".into()).spawn(move || {
        crate::store::wait_patiently();
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run),
            Err(e) => tracing::error!("the sync worker could not start its runtime: {e}"),
        }
    });
    if let Err(e) = started {
        tracing::error!("the sync worker could not start its thread: {e}");
    }
    handle
}

/// Why a sync could not run or finish. Never contains the hub's password.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error(
        "no hub is configured; run `waymark init --hub postgres://USER@HOST/DB --space NAME`, or set WAYMARK_HUB_URL and WAYMARK_SPACE"
    )]
    NotConfigured,
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error("sync with {hub} failed: {error}")]
    Round { hub: String, error: SyncError },
}

impl SyncFailure {
    /// The sentence a face shows: the error, and when it is worth retrying,
    /// that local work is safe meanwhile.
    pub fn sentence(&self) -> String {
        if self.is_retryable() {
            format!("{self}; local work is safe and the worker keeps retrying")
        } else {
            self.to_string()
        }
    }

    /// Whether trying again later may succeed (the hub was unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncFailure::Round { error, .. } if error.is_retryable())
    }
}

/// The configured hub, not yet connected (it connects at its first call).
pub fn hub_for(settings: &Settings) -> Result<(PostgresHub, String), SyncFailure> {
    let (url, space) = settings.hub().ok_or(SyncFailure::NotConfigured)?;
    let display = settings.hub_display().unwrap_or_default();
    let hub = HubUrl::parse(url)
        .and_then(|u| PostgresHub::new(u, HubOptions::default()))
        .map_err(|e| SyncFailure::Round {
            hub: display.clone(),
            error: SyncError::Hub(e),
        })?;
    Ok((hub, space.to_owned()))
}

/// One sync round with the configured hub: bring the hub's schema up to
/// date (cheap when it is), push the outbox, pull what is new. The round
/// runs on a thread of its own ([`sync_once_blocking`]), so the runtime
/// awaiting it (the one serving tools) goes on serving meanwhile; `progress`
/// is told the changes pulled.
pub(crate) async fn sync_once_with(
    store: &Store,
    settings: &Settings,
    progress: Progress,
) -> Result<RoundSummary, SyncFailure> {
    let (store, settings) = (store.clone(), settings.clone());
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("waymark-sync-round".into())
        .spawn(move || {
            crate::store::wait_patiently();
            let _ = reply.send(sync_once_blocking_with(&store, &settings, progress));
        })
        .map_err(|e| SyncFailure::Store(crate::Error::Io(e)))?;
    answer.await.unwrap_or_else(|_| {
        Err(SyncFailure::Store(crate::Error::Corrupt(
            "the sync round's thread stopped before it answered".into(),
        )))
    })
}

/// One sync round (see [`sync_once_with`]) on a runtime of its own, blocking
/// the calling thread: for the command line.
pub fn sync_once_blocking(store: &Store, settings: &Settings) -> Result<RoundSummary, SyncFailure> {
    sync_once_blocking_with(store, settings, Progress::none())
}

/// [`sync_once_blocking`], telling `progress` the changes pulled.
pub fn sync_once_blocking_with(
    store: &Store,
    settings: &Settings,
    progress: Progress,
) -> Result<RoundSummary, SyncFailure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncFailure::Store(crate::Error::Io(e)))?;
    runtime.block_on(round_once(store, settings, progress))
}

async fn round_once(store: &Store, settings: &Settings, progress: Progress) -> Result<RoundSummary, SyncFailure> {
    let (hub, space) = hub_for(settings)?;
    let display = settings.hub_display().unwrap_or_default();
    bind_cursor(store, settings)?;
    let before = open_conflicts(store)?;
    let replica = PacedReplica::new(store.clone()).with_progress(progress.clone());
    let result = match hub.migrate().await {
        Ok(_) => {
            store.hub_answered()?;
            sync_round(&replica, &hub, &space, SyncOptions::default()).await
        }
        Err(e) => Err(SyncError::Hub(e)),
    };
    record_round(store, &result);
    if let Ok(report) = &result {
        progress.done(report.pulled as u64, Some(report.pulled as u64), "changes pulled");
    }
    let report = result.map_err(|error| SyncFailure::Round { hub: display, error })?;
    Ok(RoundSummary::of(&report, &before, &open_conflicts(store)?))
}

/// How many times `claim next` tries another item after losing one online.
const CLAIM_NEXT_TRIES: usize = 3;

/// Claim (or release) a work item as `agent` (`claim_work_item`, `waymark
/// claim`): the claim is written locally, then, when a hub is configured,
/// one round pushes it and pulls up to it, so the answer says `confirmed`
/// or `lost`; with no hub, or the hub unreachable, it stays `tentative`
/// (decided at the next sync). A `next` claim that lost tries the next
/// ready item, a few times.
pub async fn claim(
    tracker: &crate::ops::Tracker,
    settings: Option<&Settings>,
    agent: &str,
    request: crate::ops::ClaimRequest,
) -> crate::Result<crate::ops::ClaimAnswer> {
    use crate::domain::claim::ClaimState;
    let settings = settings.filter(|s| s.hub().is_some());
    let mut tries = 0;
    let mut lost: Option<crate::ops::ClaimAnswer> = None;
    loop {
        tries += 1;
        let answer = match (tracker.claim_work_item(agent, request.clone()), lost) {
            (Ok(answer), _) => answer,
            // Nothing else to take: the answer is the claim that lost.
            (Err(_), Some(lost)) => return Ok(lost),
            (Err(e), None) => return Err(e),
        };
        let undecided = answer.claim.as_ref().is_none_or(|c| c.state == ClaimState::Tentative);
        let Some(settings) = settings.filter(|_| undecided) else {
            return Ok(answer);
        };
        // A hub the last round could not reach: the claim stays tentative
        // at once (the worker decides it when the hub is back), rather than
        // after a connection timeout.
        if tracker.store().read(crate::ops::sync_health)?.hub_reachable == Some(false) {
            return Ok(answer);
        }
        if let Err(e) = claim_round(tracker.store(), settings).await {
            tracing::debug!("the claim stays tentative: {}", e.sentence());
            return Ok(answer);
        }
        let answer = tracker.claim_of(agent, &answer.item.id)?;
        let is_lost = answer.claim.as_ref().is_some_and(|c| c.state == ClaimState::Lost);
        if !(is_lost && request.next && tries < CLAIM_NEXT_TRIES) {
            return Ok(answer);
        }
        lost = Some(answer);
    }
}

/// A round the claim link runs: the store, its settings, where to answer.
type ClaimJob = (Store, Settings, tokio::sync::oneshot::Sender<Result<(), SyncFailure>>);

/// One round for a claim: push it, pull up to it. It runs on the claim
/// link, a thread of this process with its own runtime that keeps the hub's
/// connection between claims (a claim is a few round trips, not a new
/// connection), so the runtime awaiting it goes on serving meanwhile.
async fn claim_round(store: &Store, settings: &Settings) -> Result<(), SyncFailure> {
    type Job = ClaimJob;
    static LINK: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Job>>> = Mutex::new(None);
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = (store.clone(), settings.clone(), reply);
    {
        let mut link = LINK.lock().unwrap_or_else(|p| p.into_inner());
        // The link's thread, started at the first claim (again if it ended).
        let unsent = match link.as_ref() {
            Some(sender) => sender.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = unsent {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name("waymark-claims".into())
                .spawn(move || claim_link(receiver))
                .map_err(|e| SyncFailure::Store(crate::Error::Io(e)))?;
            let _ = sender.send(job);
            *link = Some(sender);
        }
    }
    answer.await.unwrap_or_else(|_| {
        Err(SyncFailure::Store(crate::Error::Corrupt(
            "the claim link stopped before it answered".into(),
        )))
    })
}

/// The claim link's thread: one hub per hub and space named, kept (with
/// its connection and its schema checked once) while the process runs.
fn claim_link(mut jobs: tokio::sync::mpsc::UnboundedReceiver<ClaimJob>) {
    crate::store::wait_patiently();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("the claim link could not start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let mut hubs: std::collections::HashMap<(String, String), Arc<PostgresHub>> = Default::default();
        while let Some((store, settings, reply)) = jobs.recv().await {
            let result = async {
                let (url, space) = settings.hub().ok_or(SyncFailure::NotConfigured)?;
                let key = (url.to_owned(), space.to_owned());
                let display = settings.hub_display().unwrap_or_default();
                let hub = match hubs.get(&key) {
                    Some(hub) => hub.clone(),
                    None => {
                        let (hub, _) = hub_for(&settings)?;
                        hub.migrate().await.map_err(|e| SyncFailure::Round {
                            hub: display.clone(),
                            error: SyncError::Hub(e),
                        })?;
                        let hub = Arc::new(hub);
                        hubs.insert(key.clone(), hub.clone());
                        hub
                    }
                };
                bind_cursor(&store, &settings)?;
                store.hub_answered()?;
                let replica = PacedReplica::new(store.clone());
                let result = sync_round(&replica, &*hub, &key.1, SyncOptions::default()).await;
                if result.is_err() {
                    // A broken connection is made again at the next claim.
                    hubs.remove(&key);
                }
                record_round(&store, &result);
                result
                    .map(|_| ())
                    .map_err(|error| SyncFailure::Round { hub: display, error })
            }
            .await;
            let _ = reply.send(result);
        }
    });
}

/// [`claim`] on a runtime of its own, blocking the calling thread: for the
/// command line.
pub fn claim_blocking(
    tracker: &crate::ops::Tracker,
    settings: Option<&Settings>,
    agent: &str,
    request: crate::ops::ClaimRequest,
) -> crate::Result<crate::ops::ClaimAnswer> {
    if settings.is_none_or(|s| s.hub().is_none()) {
        return tracker.claim_work_item(agent, request);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(crate::Error::Io)?;
    runtime.block_on(claim(tracker, settings, agent, request))
}

/// One replica of the space, as `waymark hub replicas` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplicaRow {
    pub replica: String,
    pub name: String,
    pub host: String,
    /// The last seq it pulled and applied.
    pub cursor: u64,
    /// Its last contact (RFC 3339, UTC).
    pub last_seen: String,
    pub retired: bool,
    /// Whether this store is that replica.
    pub this_store: bool,
}

/// The replicas of the space, and where its history stands.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplicasAnswer {
    pub hub: String,
    pub space: String,
    pub replicas: Vec<ReplicaRow>,
    /// The space's last seq, and the seq up to which history is folded.
    pub head: u64,
    pub floor: u64,
}

/// What `waymark hub forget` or `waymark hub compact` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CompactAnswer {
    pub hub: String,
    pub space: String,
    /// The replica forgotten (`hub forget`), when it was live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<String>,
    /// Replicas retired for silence past the retention.
    pub retired: usize,
    /// Changes folded into snapshots.
    pub folded: usize,
    pub floor: u64,
    pub head: u64,
    pub snapshots: u64,
}

/// An administrative call on the configured hub (migrated first), on a
/// runtime of its own: for the command line.
fn with_hub<T>(
    settings: &Settings,
    call: impl AsyncFnOnce(&PostgresHub, &str) -> Result<T, waymark_sync::HubError>,
) -> Result<T, SyncFailure> {
    let (hub, space) = hub_for(settings)?;
    let display = settings.hub_display().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncFailure::Store(crate::Error::Io(e)))?;
    runtime
        .block_on(async {
            hub.migrate().await?;
            call(&hub, &space).await
        })
        .map_err(|e| SyncFailure::Round {
            hub: display,
            error: SyncError::Hub(e),
        })
}

fn rfc3339_ms(ms: u64) -> String {
    crate::time::Timestamp::from_millis(ms).to_string()
}

/// `waymark hub replicas`: every replica that reported to the space.
pub fn hub_replicas(store: &Store, settings: &Settings) -> Result<ReplicasAnswer, SyncFailure> {
    use waymark_sync::HubAdmin;
    let me = Replica::replica_id(store).ok();
    let (listed, page) = with_hub(settings, async |hub, space| {
        let listed = hub.replicas(space).await?;
        let page = waymark_sync::Hub::pull(hub, space, u64::MAX >> 1, 1).await?;
        Ok((listed, page))
    })?;
    Ok(ReplicasAnswer {
        hub: settings.hub_display().unwrap_or_default(),
        space: settings.space.clone().unwrap_or_default(),
        replicas: listed
            .into_iter()
            .map(|r| ReplicaRow {
                this_store: Some(r.replica) == me,
                replica: r.replica.to_string(),
                name: r.name,
                host: r.host,
                cursor: r.cursor,
                last_seen: rfc3339_ms(r.last_seen_ms),
                retired: r.retired,
            })
            .collect(),
        head: page.head_seq,
        floor: page.floor,
    })
}

/// `waymark hub forget REPLICA`: retire a replica that will not come back
/// (if it does, it catches up from the snapshots, keeping what it has not
/// pushed), then compact.
pub fn hub_forget(settings: &Settings, replica: &str) -> Result<CompactAnswer, SyncFailure> {
    let id: ReplicaId = replica.trim().parse().map_err(|_| {
        SyncFailure::Store(crate::Error::invalid(
            "replica",
            format!(
                "{} is not a replica id (a UUID as `waymark hub replicas` lists it)",
                crate::error::quote(replica)
            ),
        ))
    })?;
    let forgotten = with_hub(settings, async |hub, space| {
        use waymark_sync::HubAdmin;
        hub.forget(space, id).await
    })?;
    if !forgotten {
        return Err(SyncFailure::Store(crate::Error::invalid(
            "replica",
            format!("{id} is no live replica of this space (see `waymark hub replicas`)"),
        )));
    }
    let mut answer = hub_compact(settings)?;
    answer.forgotten = Some(id.to_string());
    Ok(answer)
}

/// `waymark hub compact`: retire replicas silent past the retention, then
/// fold the history every live replica has pulled into snapshots.
pub fn hub_compact(settings: &Settings) -> Result<CompactAnswer, SyncFailure> {
    let opts = waymark_sync::CompactOptions {
        retention_ms: settings.retention().map(|r| r.as_millis() as u64),
        ..waymark_sync::CompactOptions::default()
    };
    let report = with_hub(settings, async |hub, space| {
        use waymark_sync::HubAdmin;
        hub.compact(space, opts).await
    })?;
    Ok(CompactAnswer {
        hub: settings.hub_display().unwrap_or_default(),
        space: settings.space.clone().unwrap_or_default(),
        forgotten: None,
        retired: report.retired,
        folded: report.folded,
        floor: report.floor,
        head: report.head,
        snapshots: report.snapshots,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    use super::*;
    use crate::ops::{NewVendor, Tracker, WorkItemUpdate};

    fn tracker() -> (tempfile::TempDir, Tracker) {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::open(dir.path()).unwrap();
        (dir, tracker)
    }

    #[test]
    fn a_slice_follows_its_budget() {
        let pace = Pace::new(32, 1000);
        pace.observe(32, SLICE_BUDGET * 3);
        assert_eq!(pace.size(), 16, "too slow: halved");
        pace.observe(16, SLICE_BUDGET / 4);
        assert_eq!(pace.size(), 32, "fast and full: doubled");
        pace.observe(5, SLICE_BUDGET / 4);
        assert_eq!(pace.size(), 32, "a short last slice says nothing");
        pace.observe(1, SLICE_BUDGET * 10);
        assert_eq!(pace.size(), 1, "never below one");
        for _ in 0..20 {
            pace.observe(pace.size(), Duration::ZERO);
        }
        assert_eq!(pace.size(), 1000, "never above the cap");
    }

    /// A store bound by an earlier version (the whole URL, redacted) keeps
    /// its cursor and publishes nothing again when the same hub is named
    /// another way; another database is another hub.
    #[test]
    fn a_binding_in_an_earlier_spelling_names_the_same_hub() {
        use crate::store::replica::CURSOR_KEY;
        let (_dir, tracker) = tracker();
        let store = tracker.store();
        let hub = |url: &str| Settings::default().with_overrides(Some(url.into()), Some("team".into()));
        store
            .bind_hub("postgres://u:***@db.example.com:5432/w?sslmode=require#team")
            .unwrap();
        assert_eq!(store.hub_answered().unwrap(), 0);
        store.local_set(CURSOR_KEY, "7").unwrap();
        for same in [
            "postgresql://other:pw@db.example.com/w",
            "host=db.example.com dbname=w user=u password=x",
        ] {
            bind_cursor(store, &hub(same)).unwrap();
            assert_eq!(store.local_get(CURSOR_KEY).unwrap().as_deref(), Some("7"), "{same}");
            assert_eq!(store.hub_answered().unwrap(), 0, "{same}");
        }
        bind_cursor(store, &hub("postgres://u:pw@db.example.com/another")).unwrap();
        assert_eq!(store.local_get(CURSOR_KEY).unwrap().as_deref(), Some("0"));
    }

    /// The test database's URL with its credentials.
    fn url_of(db: &TestDatabase) -> String {
        let shown = db.url().to_string();
        if !shown.contains("***") {
            return shown;
        }
        let raw = std::env::var("WAYMARK_TEST_DATABASE_URL").expect("a URL with a password comes from the environment");
        let (base, query) = raw.split_once('?').map_or((raw.as_str(), None), |(b, q)| (b, Some(q)));
        let (server, _) = base.rsplit_once('/').expect("a database in the URL");
        format!(
            "{server}/{}{}",
            db.name(),
            query.map(|q| format!("?{q}")).unwrap_or_default()
        )
    }

    fn settings(db: &TestDatabase, space: &str) -> Settings {
        Settings::default().with_overrides(Some(url_of(db)), Some(space.into()))
    }

    /// The worker runs on a thread and runtime of its own: it pushes a local
    /// write while the runtime that started it is blocked (as a long tool
    /// call blocks the runtime that serves MCP). It ran on that runtime
    /// before, and could not.
    #[test]
    fn the_worker_syncs_while_the_runtime_that_started_it_is_blocked() {
        let db = block_on(TestDatabase::create("worker_thread"));
        let settings = settings(&db, "w");
        let (_dir, tracker) = tracker();
        // Bound and answered (as the worker does first): the write goes to
        // the outbox, which the worker must empty.
        bind_cursor(tracker.store(), &settings).unwrap();
        tracker.store().hub_answered().unwrap();
        tracker
            .create_vendor(
                "test",
                NewVendor {
                    name: "EPSON".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let (hub, space) = hub_for(&settings).unwrap();
        let (held, _) = hub_for(&settings).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = tracker.store().clone();
        let pushed = runtime.block_on(async move {
            let handle = spawn_worker(store.clone(), hub, space, &settings);
            handle.sync_now();
            // Never yields to the runtime.
            let deadline = Instant::now() + Duration::from_secs(20);
            let pushed = loop {
                if store.pending_changes().unwrap() == 0 {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            handle.stop();
            pushed
        });
        assert!(
            pushed,
            "the worker pushed nothing while its caller's runtime was blocked"
        );
        assert_eq!(
            block_on(waymark_sync::Hub::pull(&held, "w", 0, 10))
                .unwrap()
                .changes
                .len(),
            1,
            "the hub holds the write"
        );
    }

    /// `serve`'s worker for `tracker` (as `crate::mcp` starts it): bound,
    /// running, and told of local writes.
    fn serve_worker(tracker: &Tracker, settings: &Settings) -> SyncHandle {
        let (hub, space) = hub_for(settings).unwrap();
        bind_cursor(tracker.store(), settings).unwrap();
        let handle = spawn_worker(tracker.store().clone(), hub, space, settings);
        let notify = handle.clone();
        tracker
            .store()
            .set_write_hook(Some(Arc::new(move || notify.local_write())));
        handle
    }

    /// Two stores, each with `serve`'s worker polling every 30 s: a write on
    /// one shows on the other within a second, which only the hub's
    /// announcement can explain; with listening off it does not.
    #[test]
    fn a_write_reaches_another_serve_by_its_wake_up_not_the_poll() {
        let db = block_on(TestDatabase::create("live"));
        let mut listening = settings(&db, "live");
        listening.sync_interval = Some(Duration::from_secs(30));
        let ((_a_dir, a), (_b_dir, b)) = (tracker(), tracker());
        let (wa, wb) = (serve_worker(&a, &listening), serve_worker(&b, &listening));
        // Both listening, and both past their first round.
        let rt = waymark_sync::postgres::testing::runtime();
        let raw = rt.block_on(db.raw_client());
        let listeners = || -> i64 {
            rt.block_on(raw.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
                &[&db.name()],
            ))
            .unwrap()
            .get(0)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while listeners() < 2 || wa.status().last_success_at.is_none() || wb.status().last_success_at.is_none() {
            assert!(Instant::now() < deadline, "the workers did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        let shows_within = |name: &str, limit: Duration| {
            let written = Instant::now();
            a.create_vendor(
                "test",
                NewVendor {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap();
            while b.query_vendor_status(name).is_err() {
                if written.elapsed() > limit {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(written.elapsed())
        };
        // Well under the 30 s poll: only the wake-up explains it. The
        // figure itself (about 0.5 s) is the bench's (`WAYMARK_SYNC_BENCH=
        // propagation cargo bench --bench sync`); a loaded machine may be slower.
        let woken = Duration::from_secs(5);
        for i in 0..3 {
            let took = shows_within(&format!("live-{i}"), woken);
            let took = took.unwrap_or_else(|| panic!("write {i} did not reach the other store within {woken:?}"));
            eprintln!("write {i} showed on the other store after {took:?}");
        }
        // The listening connections are cut: the workers listen again.
        rt.block_on(raw.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&db.name()],
        ))
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_secs(20);
        while listeners() < 2 {
            assert!(Instant::now() < deadline, "the workers did not listen again");
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = shows_within("after-reconnect", woken);
        assert!(
            took.is_some(),
            "a write after the reconnect did not reach the other store within {woken:?}"
        );
        wa.stop();
        wb.stop();

        // The control: the same without listening waits for the poll.
        let mut polling = listening.clone();
        polling.sync_listen = Some(false);
        let (wa, wb) = (serve_worker(&a, &polling), serve_worker(&b, &polling));
        let deadline = Instant::now() + Duration::from_secs(20);
        while wa.status().last_success_at.is_none() || wb.status().last_success_at.is_none() {
            assert!(Instant::now() < deadline, "the workers did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(shows_within("polled", woken), None);
        wa.stop();
        wb.stop();
    }

    /// Two stores edit the titles of the same items, several times each,
    /// offline: the summary counts the conflicts that opened (one per item,
    /// as `list_conflicts` lists them), not the pulled changes that left an
    /// item conflicted (three per item here), and a round that opens none
    /// says 0 while the open count stays.
    #[test]
    fn the_summary_counts_the_conflicts_a_user_sees() {
        let db = block_on(TestDatabase::create("summary_conflicts"));
        let settings = settings(&db, "c");
        let ((_a_dir, a), (_b_dir, b)) = (tracker(), tracker());
        let ids: Vec<String> = (0..4)
            .map(|i| {
                a.create_work_item(
                    "a",
                    crate::ops::NewWorkItem {
                        item_type: "task".into(),
                        title: format!("item {i}"),
                        ..Default::default()
                    },
                )
                .unwrap()
                .id
            })
            .collect();
        assert_eq!(sync_once_blocking(a.store(), &settings).unwrap().pushed, 4);
        let first = sync_once_blocking(b.store(), &settings).unwrap();
        assert_eq!((first.pulled, first.conflicts, first.open_conflicts), (4, 0, 0));

        for (who, t) in [("a", &a), ("b", &b)] {
            for id in &ids {
                for n in 0..3 {
                    let version = t.get_work_item(id).unwrap().version;
                    t.update_work_item(
                        who,
                        WorkItemUpdate {
                            id: id.clone(),
                            version,
                            title: Some(format!("{who}'s title, take {n}")),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                }
            }
        }
        sync_once_blocking(a.store(), &settings).unwrap();
        let round = sync_once_blocking(b.store(), &settings).unwrap();
        assert_eq!(round.pulled, 12);
        let listed = b.list_conflicts().unwrap();
        assert_eq!(listed.len(), 4, "{listed:#?}");
        assert_eq!((round.conflicts, round.open_conflicts), (4, 4), "{round:?}");

        let again = sync_once_blocking(b.store(), &settings).unwrap();
        assert_eq!((again.conflicts, again.open_conflicts), (0, 4), "{again:?}");

        // a resolves one before it pulls b's side: three open there, three new.
        let on_a = sync_once_blocking(a.store(), &settings).unwrap();
        assert_eq!(
            (on_a.pulled, on_a.conflicts, on_a.open_conflicts),
            (12, 4, 4),
            "{on_a:?}"
        );
        let conflict = &a.list_conflicts().unwrap()[0];
        a.resolve_conflict("a", &conflict.id, conflict.values[0].value.clone())
            .unwrap();
        let resolved = sync_once_blocking(a.store(), &settings).unwrap();
        assert_eq!((resolved.conflicts, resolved.open_conflicts), (0, 3), "{resolved:?}");
        assert_eq!(a.list_conflicts().unwrap().len(), 3);
    }
}
