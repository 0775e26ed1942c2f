//! The operations: every thing a user can do to the tracker, once.
//!
//! The MCP tools and the CLI commands are thin wrappers over these
//! functions: same validation, same errors, same JSON. An operation checks
//! its input with `crate::domain`, then reads or writes through
//! `crate::store`; it never knows which face called it.

mod archive;
pub(crate) mod board;
mod changes;
pub(crate) mod claims;
pub(crate) mod configuration;
mod dependencies;
pub(crate) mod deployments;
pub(crate) mod enhancements;
mod exchange;
mod history;
mod page;
mod requests;
pub(crate) mod vendors;
pub(crate) mod work_items;

use std::path::Path;

pub use archive::{ArchiveRequest, ArchiveResult};
pub use board::{BoardData, BoardDeployment, BoardEnhancement, BoardItem, BoardParts, BoardStamp, BoardVendor};
pub use changes::{Changed, Changes, MAX_WAIT_S, WaitForChanges};
pub use claims::{ClaimAnswer, ClaimRequest, ClaimView, LostClaim, ReportClaim};
pub use configuration::{Configuration, ConfigurationUpdate, ConfigurationView, SyncHealth};
pub use dependencies::{Dependency, DependencyAction, DependencyChange};
pub use deployments::{Deployment, DeploymentFilter, DeploymentRow, NewDeployment};
pub use enhancements::{
    Enhancement, EnhancementAction, EnhancementFilter, EnhancementRequest, EnhancementUpdate, NewEnhancement,
};
pub use exchange::{ConflictChoice, ConflictList, ConflictQuery, ConflictView, ImportSummary, Resolution};
pub use history::HistoryEntry;
pub use page::{Page, Row, clamp_limit};
pub use requests::{GitImport, MarkdownExport, MarkdownImport, NoArguments, StatusRequest, SyncRequest};
pub use vendors::{NewVendor, Vendor, VendorFilter, VendorQuery, VendorRow, VendorUpdate};
pub use work_items::{
    DependencyLink, ItemDependencies, MAX_DESCENDANTS, NewWorkItem, ReadyQuery, ReadyWork, WorkItem, WorkItemDetail,
    WorkItemFilter, WorkItemQuery, WorkItemRow, WorkItemUpdate,
};

use crate::error::Result;
use crate::store::Store;

/// The author recorded for writes made from the command line.
pub const CLI_AUTHOR: &str = "cli";

/// The project tracker: one store, every operation of the domain.
#[derive(Clone, Debug)]
pub struct Tracker {
    store: Store,
}

impl Tracker {
    /// Open (creating if needed) the tracker whose store is in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Tracker> {
        Ok(Tracker {
            store: Store::open(data_dir)?,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

pub(crate) use configuration::sync_health;
pub(crate) use exchange::list_conflicts as exchange_conflicts;
