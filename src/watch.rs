//! The watcher that keeps the store in step with git while `serve` runs:
//! when HEAD moves or new commits land (`.git/HEAD`, `.git/refs/`,
//! `.git/packed-refs`) it imports them, and, when the configuration asks
//! for it, it keeps `.project_status.md` at the repository root current
//! after the store changes.
//!
//! Bursts are folded: file events are debounced (notify-debouncer-full);
//! after a ref moves, the watcher waits until no ref has moved for
//! [`SETTLE`] (at most [`MAX_SETTLE`]) before it imports, and every event
//! that arrives while an import runs is taken by that import, so a commit,
//! a rebase, a branch switch or a script committing in a loop gives one
//! import, not dozens. (The debouncer alone does not fold a burst longer
//! than its timeout: it lets each event go once that event is old enough.)
//!
//! Configuration: `auto_export_markdown = true` in `.waymark/config.toml`
//! (or `WAYMARK_AUTO_EXPORT_MARKDOWN=1`) turns the markdown upkeep on; it is
//! off by default, since the file is committed and rewriting it is a change
//! a user must want.
//!
//! The watcher writes only through [`Tracker`] operations and logs through
//! `tracing` (stderr): never stdout, which belongs to the protocol.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use crate::import::{STATUS_FILE, git::GIT_AUTHOR};
use crate::ops::Tracker;

/// How long the watcher waits for a burst of file events to settle.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(300);
/// How long no ref must move before the watcher imports a burst.
pub(crate) const SETTLE: Duration = Duration::from_millis(400);
/// The longest the watcher waits for a burst to settle: a ref that keeps
/// moving is still imported this often.
pub(crate) const MAX_SETTLE: Duration = Duration::from_secs(3);
/// How often the watcher looks whether the store changed (for the markdown
/// upkeep).
const STORE_POLL: Duration = Duration::from_secs(1);

/// A running watcher; dropping it (or [`WatcherHandle::stop`]) stops it.
pub struct WatcherHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    active: bool,
}

impl WatcherHandle {
    /// Whether the watcher runs (false outside a git repository, or when
    /// the file system cannot be watched; the reason was logged).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Stop the watcher and wait for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn inactive() -> WatcherHandle {
        WatcherHandle {
            stop: None,
            thread: None,
            active: false,
        }
    }
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether a changed path inside the git directory can move HEAD or a
/// branch (and not, say, the index or an object being written).
fn moves_a_ref(git_dir: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(git_dir) else {
        return false;
    };
    if rel.extension().is_some_and(|e| e == "lock") {
        return false;
    }
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    matches!(first.as_deref(), Some("HEAD" | "packed-refs" | "refs"))
}

/// Start watching the repository at `repo_root` for `tracker`, whose data
/// directory (config, template) is `data_dir`. Imports once at start (the
/// commits made while nothing watched), then on every change of HEAD or a
/// branch. Outside a git repository the handle is inactive and the reason
/// is logged.
pub fn spawn_watcher(tracker: Tracker, repo_root: &Path, data_dir: &Path) -> WatcherHandle {
    let repo = match gix::discover(repo_root) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(repo = %repo_root.display(), error = %e, "not a git repository; the git watcher does not run");
            return WatcherHandle::inactive();
        }
    };
    let git_dir = std::fs::canonicalize(repo.git_dir()).unwrap_or_else(|_| repo.git_dir().to_path_buf());
    let common_dir = std::fs::canonicalize(repo.common_dir()).unwrap_or_else(|_| repo.common_dir().to_path_buf());
    let work_dir = repo
        .workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root.to_path_buf());
    drop(repo);

    let (events_tx, events) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = match new_debouncer(DEBOUNCE, None, events_tx) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the file system; the git watcher does not run");
            return WatcherHandle::inactive();
        }
    };
    // The git directory itself (HEAD, packed-refs), not recursively: objects
    // and logs are noise. The refs, recursively (in the common directory for
    // a linked worktree).
    let mut watched = vec![(git_dir.clone(), RecursiveMode::NonRecursive)];
    if common_dir != git_dir {
        watched.push((common_dir.clone(), RecursiveMode::NonRecursive));
    }
    watched.push((common_dir.join("refs"), RecursiveMode::Recursive));
    for (path, mode) in &watched {
        if let Err(e) = debouncer.watch(path, *mode) {
            tracing::warn!(path = %path.display(), error = %e, "cannot watch; the git watcher does not run");
            return WatcherHandle::inactive();
        }
    }

    let (stop_tx, stop) = mpsc::channel::<()>();
    let data_dir = data_dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("waymark-git-watcher".into())
        .spawn(move || {
            let watch = Watch {
                tracker,
                work_dir,
                data_dir,
                git_dirs: vec![git_dir, common_dir],
                exported_at: None,
                config_error: None,
            };
            watch.run(events, stop);
            drop(debouncer);
        });
    match thread {
        Ok(t) => WatcherHandle {
            stop: Some(stop_tx),
            thread: Some(t),
            active: true,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the git watcher thread");
            WatcherHandle::inactive()
        }
    }
}

struct Watch {
    tracker: Tracker,
    work_dir: PathBuf,
    data_dir: PathBuf,
    git_dirs: Vec<PathBuf>,
    /// The store's clock when the markdown was last written.
    exported_at: Option<i64>,
    /// The configuration's last error, logged once (it is read every
    /// [`STORE_POLL`]).
    config_error: Option<String>,
}

impl Watch {
    fn run(mut self, events: mpsc::Receiver<DebounceEventResult>, stop: mpsc::Receiver<()>) {
        self.import();
        loop {
            match stop.try_recv() {
                Err(mpsc::TryRecvError::Empty) => {}
                _ => return,
            }
            match events.recv_timeout(STORE_POLL) {
                Ok(result) => {
                    let mut relevant = self.relevant(&result);
                    // Take every event already queued: one import for the burst.
                    while let Ok(more) = events.try_recv() {
                        relevant |= self.relevant(&more);
                    }
                    if relevant {
                        let batches = self.settle(&events);
                        tracing::debug!(batches, "refs moved; importing");
                        self.import();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.export_if_changed();
        }
    }

    /// Wait until no ref has moved for [`SETTLE`] (at most [`MAX_SETTLE`]),
    /// taking the events that arrive meanwhile; returns how many batches of
    /// ref changes the wait folded (counting the first).
    fn settle(&self, events: &mpsc::Receiver<DebounceEventResult>) -> usize {
        let started = Instant::now();
        let mut last_move = started;
        let mut batches = 1;
        loop {
            let now = Instant::now();
            let quiet_until = last_move + SETTLE;
            let give_up = started + MAX_SETTLE;
            if now >= quiet_until || now >= give_up {
                return batches;
            }
            match events.recv_timeout(quiet_until.min(give_up) - now) {
                Ok(more) => {
                    if self.relevant(&more) {
                        batches += 1;
                        last_move = Instant::now();
                    }
                }
                Err(_) => return batches,
            }
        }
    }

    fn relevant(&self, result: &DebounceEventResult) -> bool {
        match result {
            // Reading a ref (as the import itself does) is an access event
            // on Linux: only changes count, or each import would trigger
            // the next.
            Ok(events) => events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Access(_)))
                .flat_map(|e| e.paths.iter())
                .any(|p| self.git_dirs.iter().any(|g| moves_a_ref(g, p))),
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "file watch error");
                }
                false
            }
        }
    }

    fn import(&mut self) {
        match self.tracker.import_git(GIT_AUTHOR, &self.work_dir) {
            Ok(r) => tracing::info!(
                commits = r.commits_read,
                created = r.report.created_total(),
                updated = r.report.updated_total(),
                skipped = r.report.skipped.len(),
                "imported git history"
            ),
            Err(e) => tracing::warn!(error = %e, "git import failed"),
        }
        self.export_if_changed();
    }

    /// Whether the configuration asks for the markdown upkeep (read each
    /// time, so an edit takes effect while `serve` runs); a configuration
    /// that does not parse turns it off, with one warning.
    fn auto_export_enabled(&mut self) -> bool {
        match crate::config::auto_export_markdown(&self.data_dir) {
            Ok(on) => {
                self.config_error = None;
                on
            }
            Err(e) => {
                let e = e.to_string();
                if self.config_error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "the markdown upkeep is off until the configuration is fixed");
                    self.config_error = Some(e);
                }
                false
            }
        }
    }

    fn export_if_changed(&mut self) {
        if !self.auto_export_enabled() {
            return;
        }
        let clock = self.tracker.store().read(|tx| {
            Ok(tx.query_row("SELECT hlc FROM replica WHERE singleton = 1", [], |r| {
                r.get::<_, i64>(0)
            })?)
        });
        let Ok(clock) = clock else { return };
        if self.exported_at == Some(clock) {
            return;
        }
        let out = self.work_dir.join(STATUS_FILE);
        match self.tracker.export_markdown(Some(&self.data_dir), &out) {
            Ok(_) => {
                self.exported_at = Some(clock);
                tracing::info!(path = %out.display(), "status report written");
            }
            Err(e) => tracing::warn!(error = %e, path = %out.display(), "cannot write the status report"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ref_changes_count() {
        let g = Path::new("/r/.git");
        assert!(moves_a_ref(g, Path::new("/r/.git/HEAD")));
        assert!(moves_a_ref(g, Path::new("/r/.git/refs/heads/main")));
        assert!(moves_a_ref(g, Path::new("/r/.git/packed-refs")));
        assert!(!moves_a_ref(g, Path::new("/r/.git/refs/heads/main.lock")));
        assert!(!moves_a_ref(g, Path::new("/r/.git/index")));
        assert!(!moves_a_ref(g, Path::new("/r/.git/objects/ab/cdef")));
        assert!(!moves_a_ref(g, Path::new("/r/src/main.rs")));
    }
}
