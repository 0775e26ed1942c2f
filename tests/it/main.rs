//! Waymark's integration tests, in one binary (fast links on small machines).

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
