//! Resource subscriptions: `notifications/resources/updated` for the
//! resources a client subscribed to, sent off the store's change feed (the
//! one `wait_for_changes` reads): `waymark://status` after any change,
//! `waymark://work-item/{id}` after a change of that item.
//!
//! Each session has its own set: every session gets its own clone of the
//! server, and a clone of a [`Subscriptions`] starts empty. The first
//! subscription of a session starts one task that waits on the feed while
//! the session lasts and anything is subscribed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::Peer;

use crate::ops::{Tracker, WaitForChanges};

/// How long one wait on the feed lasts before the task checks that the
/// session is still there.
const WAIT_S: i64 = 15;

/// The resources one session subscribed to.
#[derive(Default)]
pub(crate) struct Subscriptions {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    uris: BTreeSet<String>,
    /// Whether the task that sends the notifications runs.
    running: bool,
}

impl Clone for Subscriptions {
    /// A new session's clone of the server subscribes to nothing yet.
    fn clone(&self) -> Subscriptions {
        Subscriptions::default()
    }
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribe to `uri`; starts the notifying task if it is not running.
    pub fn add(&self, uri: String, tracker: &Tracker, peer: Peer<RoleServer>) {
        let start = {
            let mut state = self.lock();
            state.uris.insert(uri);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let inner = self.inner.clone();
            let tracker = tracker.clone();
            tokio::spawn(notify_while_subscribed(inner, tracker, peer));
        }
    }

    pub fn remove(&self, uri: &str) {
        self.lock().uris.remove(uri);
    }
}

async fn notify_while_subscribed(inner: Arc<Mutex<State>>, tracker: Tracker, peer: Peer<RoleServer>) {
    let lock = || inner.lock().unwrap_or_else(|p| p.into_inner());
    let mut cursor = tracker.changes_cursor().ok();
    loop {
        {
            // Checked and cleared under the lock `add` takes: a subscription
            // added after this starts a task of its own.
            let mut state = lock();
            if state.uris.is_empty() || peer.is_transport_closed() || cursor.is_none() {
                state.running = false;
                return;
            }
        }
        let input = WaitForChanges {
            cursor: cursor.clone(),
            timeout_s: Some(WAIT_S),
            ..WaitForChanges::default()
        };
        let changes = match super::tools::wait_off_thread(&tracker, input).await {
            Ok(Ok(changes)) => changes,
            Ok(Err(e)) => {
                tracing::warn!("resource notifications stop: {e}");
                cursor = None;
                continue;
            }
            Err(_) => return,
        };
        cursor = Some(changes.cursor.clone());
        if changes.changes.is_empty() {
            continue;
        }
        // What is subscribed now, not when the wait began.
        let uris = lock().uris.clone();
        for uri in uris {
            let hit = if uri == super::STATUS_URI {
                true
            } else if let Some(id) = uri.strip_prefix(super::WORK_ITEM_PREFIX) {
                changes
                    .changes
                    .iter()
                    .any(|c| c.collection == "work_items" && c.id.eq_ignore_ascii_case(id))
            } else {
                false
            };
            if hit
                && let Err(e) = peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone()))
                    .await
            {
                tracing::debug!("a resource notification was not sent: {e}");
            }
        }
    }
}
