//! The errors every operation can return. Each message is one sentence a
//! user (or a model) can act on: what was wrong and what to do next.

use std::fmt;

/// What kind of record an error is about, with the tool that lists its ids.
///
/// Messages speak the MCP face (tool and argument names); the CLI renders
/// the same error with its commands and flags (`src/cli/render.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    WorkItem,
    Vendor,
    Deployment,
    Dependency,
    Enhancement,
    Configuration,
}

impl Kind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::WorkItem => "work item",
            Kind::Vendor => "vendor",
            Kind::Deployment => "deployment",
            Kind::Dependency => "dependency",
            Kind::Enhancement => "enhancement",
            Kind::Configuration => "project configuration",
        }
    }

    fn lister(self) -> &'static str {
        match self {
            Kind::WorkItem => "list_work_items shows the ids",
            Kind::Vendor => "list_vendors shows the names",
            Kind::Deployment => "list_deployments shows the ids",
            Kind::Dependency => "query_work_item shows an item's dependencies",
            Kind::Enhancement => "manage_enhancement with action list shows the ids",
            Kind::Configuration => "get_project_configuration shows it",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {id} not found; {}", kind.lister())]
    NotFound { kind: Kind, id: String },

    /// A value broke a rule of the domain.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },

    #[error(
        "{kind} {id} has changed: you sent version {expected}, but it is at version {current} \
         (last written by {updated_by}); read it again and retry with version {current}"
    )]
    StaleVersion {
        kind: Kind,
        id: String,
        expected: i64,
        current: i64,
        updated_by: String,
    },

    #[error(
        "moving or creating {what} would put a work item at depth {depth}, past the limit of {max} \
         (six levels, 0 to {max}); attach it higher in the tree"
    )]
    DepthLimit { what: String, depth: i64, max: i64 },

    #[error("{0}")]
    Cycle(String),

    /// The request conflicts with what is stored (not a sync conflict).
    #[error("{0}")]
    Conflict(String),

    #[error(
        "the store at {path} was written by a newer Waymark (schema {found}, this build knows up to \
         {supported}); upgrade Waymark to use it"
    )]
    StoreTooNew { path: String, found: i64, supported: i64 },

    #[error("the store at {path} could not be opened: {message}")]
    Open { path: String, message: String },

    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("store corrupt: {0}")]
    Corrupt(String),

    /// A write job panicked on the store's writer thread (a bug): its
    /// transaction was rolled back and the writer keeps serving.
    #[error(
        "the write failed on an internal error ({0}); nothing of it was saved and the store keeps working; \
         please report this as a bug"
    )]
    WriterPanicked(String),

    #[error("{0}")]
    Io(#[from] std::io::Error),

    /// The asker cancelled the request; its transaction was rolled back.
    #[error("cancelled by the client before it finished; nothing of it was saved")]
    Cancelled,
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(kind: Kind, id: impl Into<String>) -> Error {
        Error::NotFound { kind, id: id.into() }
    }

    /// A stable code for machines: `not_found`, `invalid`, `stale_version`, ...
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Invalid { .. } => "invalid",
            Error::StaleVersion { .. } => "stale_version",
            Error::DepthLimit { .. } => "depth_limit",
            Error::Cycle(_) => "cycle",
            Error::Conflict(_) => "conflict",
            Error::StoreTooNew { .. } => "store_too_new",
            Error::Open { .. } => "store_open",
            Error::Sqlite(_) | Error::Corrupt(_) => "store",
            Error::WriterPanicked(_) => "internal",
            Error::Io(_) => "io",
            Error::Cancelled => "cancelled",
        }
    }

    /// Whether the caller sent something wrong (as opposed to the store failing).
    pub(crate) fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::Sqlite(_) | Error::Corrupt(_) | Error::Io(_) | Error::Open { .. } | Error::WriterPanicked(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The most of a bad input an error message quotes, in characters.
pub(crate) const QUOTE_MAX: usize = 64;

/// The longest error message either face says, in characters.
pub(crate) const MAX_MESSAGE: usize = 1_000;

/// `message` cut to [`MAX_MESSAGE`] characters: an error never echoes a
/// whole input back, whichever face says it.
pub fn bound_message(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

/// `text` quoted for an error message: at most [`QUOTE_MAX`] characters,
/// then `…` (a 1 MB id must not make a 1 MB error).
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}
