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
use waymark_sync::postgres::{HubOptions, HubUrl, PostgresHub};
use waymark_sync::worker::{Command, Commands, Runtime};
use waymark_sync::{RoundReport, SyncError, SyncOptions, SyncStatus, Worker, WorkerConfig, sync_round};

use crate::config::Settings;
use crate::ops::configuration::health_keys;
use crate::store::Store;
use crate::time::Timestamp;

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
        RoundSummary {
            pushed: r.pushed,
            pulled: r.pulled,
            conflicts: r.conflicts,
            cursor: r.cursor,
        }
    }
}

/// A pull cursor belongs to one (hub, space): when either changes, start
/// the log again (changes already applied are skipped).
pub fn bind_cursor(store: &Store, settings: &Settings) -> crate::Result<()> {
    let Some((_, space)) = settings.hub() else {
        return Ok(());
    };
    store.bind_hub(&format!("{}#{space}", settings.hub_display().unwrap_or_default()))?;
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
pub fn spawn_worker(store: Store, hub: PostgresHub, space: String, settings: &Settings) -> SyncHandle {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(SyncStatus::default()));
    let handle = SyncHandle {
        commands: tx,
        status: status.clone(),
    };
    let config = WorkerConfig {
        interval: settings.interval(),
        ..WorkerConfig::default()
    };
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    tokio::spawn(async move {
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
        let worker = Worker::new(config, Instant::now(), seed);
        let mut commands = Receiver(rx);
        let publish_store = store.clone();
        waymark_sync::worker::run(
            worker,
            &store,
            &hub,
            &space,
            SyncOptions::default(),
            &Tokio,
            &mut commands,
            |s| {
                *status.lock().unwrap_or_else(|p| p.into_inner()) = s.clone();
                let store = publish_store.clone();
                let s = s.clone();
                // The store's writer thread does the IO; never block the runtime on it.
                tokio::task::spawn_blocking(move || record_status(&store, &s));
            },
        )
        .await;
        tracing::debug!("sync worker stopped");
    });
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
/// date (cheap when it is), push the outbox, pull what is new.
pub async fn sync_once(store: &Store, settings: &Settings) -> Result<RoundSummary, SyncFailure> {
    let (hub, space) = hub_for(settings)?;
    let display = settings.hub_display().unwrap_or_default();
    bind_cursor(store, settings)?;
    let mut result = match hub.migrate().await {
        Ok(_) => sync_round(store, &hub, &space, SyncOptions::default()).await,
        Err(e) => Err(SyncError::Hub(e)),
    };
    if let Err(SyncError::HubLostChanges { .. }) = &result {
        // The hub lacks changes it once acknowledged: publish this store's
        // state to it again, under a new replica id, and sync once more.
        let records = store.republish()?;
        tracing::warn!(
            records,
            "the hub lost changes of this store; its state was published again"
        );
        result = sync_round(store, &hub, &space, SyncOptions::default()).await;
    }
    record_round(store, &result);
    result
        .map(|r| RoundSummary::from(&r))
        .map_err(|error| SyncFailure::Round { hub: display, error })
}

/// [`sync_once`] on a runtime of its own, for the command line.
pub fn sync_once_blocking(store: &Store, settings: &Settings) -> Result<RoundSummary, SyncFailure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SyncFailure::Store(crate::Error::Io(e)))?;
    runtime.block_on(sync_once(store, settings))
}
