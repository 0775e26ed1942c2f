//! Waymark's integration tests, in one binary (fast links on small machines).

mod claims;
mod cli;
mod faces;
mod feed;
mod fuzz;
mod git;
mod markdown;
mod migrate;
mod model;
mod ops;
mod props;
mod sync;
mod wedges;

use tempfile::TempDir;
use waymark::Tracker;
use waymark::ops::NewWorkItem;

/// How many processes a SIGKILL test kills: `WAYMARK_KILLS` for a soak,
/// else `default`.
pub fn kills(default: usize) -> usize {
    std::env::var("WAYMARK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tracker on a fresh store in a temporary directory.
pub fn tracker() -> (TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Tracker::open(dir.path()).expect("open store");
    (dir, t)
}

/// A tracker whose store has published its state to a hub, as a store
/// bound to one from the start has: its changes go to the outbox from its
/// first write (a store that never synced writes none).
pub fn published_tracker() -> (TempDir, Tracker) {
    let (dir, t) = tracker();
    publish(&t);
    (dir, t)
}

/// Bind `t`'s store to a hub and tell it the hub answered: it publishes its
/// state, and its changes go to the outbox from then on.
pub fn publish(t: &Tracker) {
    t.store().bind_hub("test-hub#space").expect("bind a hub");
    t.store().hub_answered().expect("publish the store's state");
}

pub fn new_item(item_type: &str, title: &str, parent: Option<&str>) -> NewWorkItem {
    let metadata = (item_type == "project")
        .then(|| {
            serde_json::json!({"description": format!("{title}, described")})
                .as_object()
                .cloned()
        })
        .flatten();
    NewWorkItem {
        item_type: item_type.into(),
        title: title.into(),
        parent_id: parent.map(str::to_owned),
        metadata,
        ..Default::default()
    }
}
