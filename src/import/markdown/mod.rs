//! Import of legacy `.project_status.md` files (the earlier tracker's
//! report, and ours: `export markdown` writes the same layout).
//!
//! Two steps: [`parse`] reads the text into a [`Document`] (pure: no store,
//! no IO, fuzzed on arbitrary input), then `apply` writes the document
//! through the operations, in one transaction. Every line that is not
//! imported is reported with its number and the reason; one bad entry never
//! aborts the import; a bad value does not cost the entry that holds it (it
//! is kept raw in the metadata, with a warning). Nothing is invented: a value
//! the file does not give is left to the domain's default.
//!
//! Ids are deterministic (UUID v5 over stable keys: a work item from its
//! parent's key, type, title and created time; a deployment from its commit;
//! a vendor from its name; an enhancement from its title), and an entry whose
//! record exists is left unchanged, so importing a file twice changes
//! nothing.

mod apply;
pub mod parse;

use std::path::Path;

pub use parse::{DeploymentEntry, Document, EnhancementEntry, ItemEntry, Note, VendorEntry, parse};

use super::ImportReport;
use crate::error::{Error, Result};
use crate::ops::Tracker;
use crate::progress::Progress;

impl Tracker {
    /// Import a legacy `.project_status.md` file.
    pub fn import_markdown(&self, author: &str, path: &Path) -> Result<ImportReport> {
        self.import_markdown_with(author, path, &Progress::none())
    }

    /// [`Tracker::import_markdown`], telling `progress` the entries imported.
    pub fn import_markdown_with(&self, author: &str, path: &Path, progress: &Progress) -> Result<ImportReport> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "file",
                format!(
                    "cannot read {}: {e}; give the path of a .project_status.md file",
                    path.display()
                ),
            )
        })?;
        self.import_markdown_text_with(author, &text, &path.display().to_string(), progress)
    }

    /// Import the text of a legacy status file; `source` names it in the
    /// report.
    pub fn import_markdown_text(&self, author: &str, text: &str, source: &str) -> Result<ImportReport> {
        self.import_markdown_text_with(author, text, source, &Progress::none())
    }

    /// [`Tracker::import_markdown_text`], telling `progress` the entries
    /// imported.
    pub(crate) fn import_markdown_text_with(
        &self,
        author: &str,
        text: &str,
        source: &str,
        progress: &Progress,
    ) -> Result<ImportReport> {
        let doc = parse(text);
        let report = ImportReport::new(source);
        let progress = progress.clone();
        let mut report = self
            .store()
            .write(author, move |tx| apply::apply(tx, doc, report, &progress))?;
        report.skipped.sort_by_key(|s| s.line);
        report.warnings.sort_by_key(|s| s.line);
        Ok(report)
    }
}

/// Parse a status file without writing anything: the report lists the
/// lines that would be skipped and the entries found (a dry run, and the
/// parser alone for benchmarks).
pub fn parse_report(text: &str) -> (usize, ImportReport) {
    let mut report = ImportReport::new("(parse only)");
    let doc = parse(text);
    apply::notes_into(&doc, &mut report);
    (doc.entries(), report)
}
