//! What the board (`src/board`) shows, read in one transaction: every
//! work item in the compact form a board card needs, the live dependency
//! edges, vendors with their test results, recent deployments,
//! enhancements, sync health and the feed's cursor at the time.

use serde::Serialize;

use super::Tracker;
use super::configuration::SyncHealth;
use super::exchange::ConflictView;
use crate::error::Result;
use crate::store::query;

/// The most recent deployments the board reads.
const DEPLOYMENTS: i64 = 60;

/// One work item as the board shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardItem {
    pub id: String,
    pub title: String,
    pub item_type: String,
    pub status: String,
    pub priority: i64,
    pub parent_id: Option<String>,
    pub depth: i64,
    /// Open items this one waits for.
    pub open_blockers: i64,
    pub branch_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
    pub archived: bool,
    /// Who holds the item, where someone does: the in-progress column
    /// groups its cards by it. Claims (issue 14) will fill it; until then
    /// no item has a holder.
    pub holder: Option<String>,
}

/// A vendor with its test results (`passing` of `total`, when recorded).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardVendor {
    pub name: String,
    pub status: String,
    pub extractor_version: String,
    pub passing: Option<i64>,
    pub total: Option<i64>,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardDeployment {
    pub deployed_at: String,
    pub commit_hash: String,
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardEnhancement {
    pub title: String,
    pub status: String,
    pub priority: i64,
    pub target_quarter: Option<String>,
}

/// What the board shows, as of one moment (the parts a page asked for;
/// the others empty).
#[derive(Clone, Debug, Serialize)]
pub struct BoardData {
    /// Live items (deleted ones left out; archived ones kept for the charts).
    pub items: Vec<BoardItem>,
    /// Live dependency edges as `(waiter, awaited)`.
    pub waits: Vec<(String, String)>,
    pub vendors: Vec<BoardVendor>,
    /// Newest first.
    pub deployments: Vec<BoardDeployment>,
    pub enhancements: Vec<BoardEnhancement>,
    pub health: SyncHealth,
    pub conflicts: Vec<ConflictView>,
    /// The change feed's cursor these were read at.
    pub cursor: i64,
    /// When the first live lease ends ([`BoardStamp::lease_end`]).
    pub lease_end: Option<i64>,
}

/// Which parts of the store a board page shows; [`Tracker::board_data`]
/// reads only those (the sync health and the cursor always).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardParts {
    /// Work items and their dependency edges.
    pub items: bool,
    pub vendors: bool,
    /// Deployments and enhancements.
    pub plan: bool,
    pub conflicts: bool,
}

/// What a board page depends on in the store: anything that changes what
/// the board shows moves the feed's head (every change applied to a record
/// does) or the sync health (a sync round, an acknowledgement). Equal
/// stamps, equal data.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardStamp {
    pub cursor: i64,
    pub health: SyncHealth,
    /// When the first live lease ends: the clock alone frees its item.
    pub lease_end: Option<i64>,
}

impl BoardData {
    /// The stamp of the store these were read from.
    pub fn stamp(&self) -> BoardStamp {
        BoardStamp {
            cursor: self.cursor,
            health: self.health.clone(),
            lease_end: self.lease_end,
        }
    }
}

impl Tracker {
    /// The stamp of the store as it is now (a few point reads: the feed's
    /// head and the sync health), to tell whether a board page rendered
    /// earlier still shows it.
    pub(crate) fn board_stamp(&self) -> Result<BoardStamp> {
        self.store.read(|conn| {
            Ok(BoardStamp {
                cursor: crate::store::feed::head(conn)?,
                health: super::configuration::sync_health(conn)?,
                lease_end: query::board::next_lease_end(conn)?,
            })
        })
    }

    /// What a board page shows (`parts`; the rest left empty, unread),
    /// read in one transaction.
    pub(crate) fn board_data(&self, parts: BoardParts) -> Result<BoardData> {
        self.store.read(|conn| {
            let cursor = crate::store::feed::head(conn)?;
            let (items, waits) = if parts.items {
                (query::board::items(conn)?, query::board::waits(conn)?)
            } else {
                Default::default()
            };
            let vendors = if parts.vendors {
                query::board::vendors(conn)?
            } else {
                Vec::new()
            };
            let (deployments, enhancements) = if parts.plan {
                (
                    query::board::deployments(conn, DEPLOYMENTS)?,
                    query::board::enhancements(conn)?,
                )
            } else {
                Default::default()
            };
            let health = super::configuration::sync_health(conn)?;
            let conflicts = if parts.conflicts {
                super::exchange::list_conflicts(conn)?
            } else {
                Vec::new()
            };
            Ok(BoardData {
                items,
                waits,
                vendors,
                deployments,
                enhancements,
                health,
                conflicts,
                cursor,
                lease_end: query::board::next_lease_end(conn)?,
            })
        })
    }
}
