//! The agent's side of sync: one round against a hub, the health it leaves
//! in the store's local state (what `status`, `get_project_configuration`
//! and the `sync` tool show), and the worker that `serve` runs.
//!
//! The protocol, the merge and the schedule live in `waymark-sync`; this
//! module only wires them to the SQLite store, the configuration and tokio.
//! It never holds a store transaction across a hub call (the round calls the
//! store between network requests).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use waymark_sync::worker::{Command, Commands, Runtime};
use waymark_sync::{Hub, RoundReport, SyncError, SyncOptions, SyncStatus, Worker, WorkerConfig, sync_round};

use crate::config::Settings;
use crate::ops::configuration::health_keys;
use crate::store::Store;
use crate::time::Timestamp;

/// Local-state key naming the hub and space the pull cursor belongs to.
const CURSOR_FOR: &str = "sync.cursor_for";

/// What one round did, as the CLI and the `sync` tool report it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RoundSummary {
    pub pushed: usize,
    pub pulled: usize,
    pub conflicts: usize,
    pub cursor: u64,
}

impl From<&RoundReport> for RoundSummary {
    fn from(r: &RoundReport) -> Self {
        RoundSummary { pushed: r.pushed, pulled: r.pulled, conflicts: r.conflicts, cursor: r.cursor }
    }
}

/// A pull cursor belongs to one (hub, space): when either changes, start
/// the log again (changes already applied are skipped).
pub fn bind_cursor(store: &Store, settings: &Settings) -> crate::Result<()> {
    let Some((_, space)) = settings.hub() else { return Ok(()) };
    let identity = format!("{}#{space}", settings.hub_display().unwrap_or_default());
    if store.local_get(CURSOR_FOR)?.as_deref() != Some(identity.as_str()) {
        store.reset_cursor()?;
        store.local_set(CURSOR_FOR, &identity)?;
    }
    store.local_set(health_keys::HUB_URL_SET, "true")
}

fn system_time_text(t: SystemTime) -> String {
    let micros = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
    Timestamp(micros).to_string()
}

/// Keep the worker's status where every face can read it.
pub fn record_status(store: &Store, status: &SyncStatus) {
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

/// One round with `hub`, recording its outcome in the store's health.
pub async fn round_with<H: Hub>(store: &Store, hub: &H, space: &str) -> Result<RoundSummary, SyncError> {
    let result = sync_round(store, hub, space, SyncOptions::default()).await;
    let mut worker = Worker::new(WorkerConfig::default(), Instant::now(), 0);
    worker.on_result(Instant::now(), SystemTime::now(), &result);
    record_status(store, worker.status());
    result.map(|r| RoundSummary::from(&r))
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
    pub fn sync_now(&self) {
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

/// Start the worker on the current tokio runtime: rounds on a timer, soon
/// after local writes, with backoff while the hub is unreachable. Tool calls
/// never wait for it.
pub fn spawn_worker<H: Hub + 'static>(store: Store, hub: H, space: String, settings: &Settings) -> SyncHandle {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(SyncStatus::default()));
    let handle = SyncHandle { commands: tx, status: status.clone() };
    let config = WorkerConfig { interval: settings.interval(), ..WorkerConfig::default() };
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7);
    tokio::spawn(async move {
        let worker = Worker::new(config, Instant::now(), seed);
        let mut commands = Receiver(rx);
        let publish_store = store.clone();
        waymark_sync::worker::run(worker, &store, &hub, &space, SyncOptions::default(), &Tokio, &mut commands, |s| {
            *status.lock().unwrap_or_else(|p| p.into_inner()) = s.clone();
            let store = publish_store.clone();
            let s = s.clone();
            // The store's writer thread does the IO; never block the runtime on it.
            tokio::task::spawn_blocking(move || record_status(&store, &s));
        })
        .await;
        tracing::debug!("sync worker stopped");
    });
    handle
}
