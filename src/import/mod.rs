//! Import and export layers: git history, legacy `.project_status.md` files
//! and session prompt files come in; the status report goes out as
//! markdown. None of this is storage: every record lands through the
//! store's one write path (`Store::write`), under a deterministic id, so that
//! importing the same thing twice, or on two replicas, gives one record.
//!
//! This module never aborts a whole import for one bad entry: what cannot be
//! imported is reported in [`ImportReport::skipped`] with its place (a line
//! number, a commit, a file) and the reason.

pub mod git;
pub mod markdown;
pub mod scope;
pub mod sessions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::Tracker;

/// The name of the exported status report at the repository root.
pub const STATUS_FILE: &str = ".project_status.md";
/// A user's template for the report, in the data directory.
pub const TEMPLATE_FILE: &str = "status.md.j2";

/// What an import did: counts per kind of record, the records written, and
/// every entry it skipped or warned about, with the reason.
///
/// Its JSON (what both faces answer) is bounded whatever the input:
/// `records` keeps the first [`REPORT_RECORDS`], `skipped` and `warnings`
/// the first [`REPORT_ENTRIES`] with their text cut to [`REPORT_TEXT`]
/// characters, each beside its `_total`. An answer never echoes a file back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    /// What was read: a repository, a file, a directory.
    pub source: String,
    /// Records written for the first time, per kind (`work_items`, ...).
    pub created: BTreeMap<String, i64>,
    /// Existing records that this import changed, per kind.
    pub updated: BTreeMap<String, i64>,
    /// Entries whose record was already there and needed no change, per kind.
    pub unchanged: BTreeMap<String, i64>,
    /// Each record created or updated.
    pub records: Vec<ImportedRecord>,
    /// Each entry left out, with why.
    pub skipped: Vec<Skipped>,
    /// Entries imported with a caveat (a malformed value kept raw, ...).
    pub warnings: Vec<Skipped>,
}

/// One record an import created or updated.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ImportedRecord {
    /// `work_item`, `deployment`, `vendor`, `enhancement`, `configuration`.
    pub kind: String,
    pub id: String,
    /// A title, a name or a commit, for a person.
    pub label: String,
    /// `created` or `updated`.
    pub action: String,
    /// Where it came from: `line 12`, `commit 1a2b3c4`, a file name.
    pub at: String,
}

/// An entry an import left out (or imported with a warning), and why.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Skipped {
    /// `line 12`, `commit 1a2b3c4`, a file name.
    pub at: String,
    /// The line number, for line-oriented sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The text that was not imported (cut to 200 characters).
    pub text: String,
    pub reason: String,
}

/// What an export answers: the file it wrote.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Written {
    pub path: String,
}

impl From<PathBuf> for Written {
    fn from(path: PathBuf) -> Written {
        Written {
            path: path.display().to_string(),
        }
    }
}

/// The most records, and skipped or warned entries, an import's JSON lists.
pub const REPORT_RECORDS: usize = 20;
pub const REPORT_ENTRIES: usize = 10;
/// The most characters of a skipped line an import's JSON quotes.
pub const REPORT_TEXT: usize = 40;

impl Serialize for ImportReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let cut = |entries: &[Skipped]| -> Vec<Skipped> {
            entries
                .iter()
                .take(REPORT_ENTRIES)
                .map(|e| {
                    let mut e = e.clone();
                    if let Some((at, _)) = e.text.char_indices().nth(REPORT_TEXT) {
                        e.text.truncate(at);
                        e.text.push('…');
                    }
                    e
                })
                .collect()
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("created", &self.created)?;
        m.serialize_entry("updated", &self.updated)?;
        m.serialize_entry("unchanged", &self.unchanged)?;
        m.serialize_entry("records", &self.records[..self.records.len().min(REPORT_RECORDS)])?;
        m.serialize_entry("records_total", &self.records.len())?;
        m.serialize_entry("skipped", &cut(&self.skipped))?;
        m.serialize_entry("skipped_total", &self.skipped.len())?;
        m.serialize_entry("warnings", &cut(&self.warnings))?;
        m.serialize_entry("warnings_total", &self.warnings.len())?;
        m.end()
    }
}

impl ImportReport {
    pub(crate) fn new(source: impl Into<String>) -> ImportReport {
        ImportReport {
            source: source.into(),
            ..ImportReport::default()
        }
    }

    pub(crate) fn record(&mut self, kind: &str, id: &str, label: &str, created: bool, at: &str) {
        let counts = if created { &mut self.created } else { &mut self.updated };
        *counts.entry(plural(kind)).or_default() += 1;
        self.records.push(ImportedRecord {
            kind: kind.into(),
            id: id.into(),
            label: label.into(),
            action: if created { "created" } else { "updated" }.into(),
            at: at.into(),
        });
    }

    pub(crate) fn unchanged(&mut self, kind: &str) {
        *self.unchanged.entry(plural(kind)).or_default() += 1;
    }

    pub(crate) fn skip(&mut self, at: &str, line: Option<usize>, text: &str, reason: impl Into<String>) {
        self.skipped.push(entry(at, line, text, reason.into()));
    }

    pub(crate) fn warn(&mut self, at: &str, line: Option<usize>, text: &str, reason: impl Into<String>) {
        self.warnings.push(entry(at, line, text, reason.into()));
    }

    /// How many records were created, over every kind.
    pub fn created_total(&self) -> i64 {
        self.created.values().sum()
    }

    /// How many records were updated, over every kind.
    pub fn updated_total(&self) -> i64 {
        self.updated.values().sum()
    }

    /// A person's summary: counts, then each record, warning and skipped
    /// entry on its own line.
    pub fn to_text(&self) -> String {
        let counts = |m: &BTreeMap<String, i64>| {
            if m.is_empty() {
                "nothing".to_owned()
            } else {
                m.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
            }
        };
        let mut s = format!(
            "imported from {}: created {}; updated {}; unchanged {}; skipped {}; warnings {}\n",
            self.source,
            counts(&self.created),
            counts(&self.updated),
            counts(&self.unchanged),
            self.skipped.len(),
            self.warnings.len()
        );
        for r in &self.records {
            s.push_str(&format!(
                "  {} {} {} ({}) [{}]\n",
                r.action, r.kind, r.label, r.id, r.at
            ));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {}: {} ({})\n", w.at, w.reason, w.text));
        }
        for k in &self.skipped {
            s.push_str(&format!("  skipped: {}: {} ({})\n", k.at, k.reason, k.text));
        }
        s
    }
}

fn plural(kind: &str) -> String {
    format!("{kind}s")
}

fn entry(at: &str, line: Option<usize>, text: &str, reason: String) -> Skipped {
    let text = text.trim();
    let text = if text.chars().count() > 200 {
        text.chars().take(199).chain(['…']).collect()
    } else {
        text.to_owned()
    };
    Skipped {
        at: at.into(),
        line,
        text,
        reason,
    }
}

/// The report template a user put in the data directory, if any.
pub fn user_template(data_dir: &Path) -> Result<Option<String>> {
    let path = data_dir.join(TEMPLATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::invalid(
            "template",
            format!("cannot read {}: {e}; fix its permissions or remove it", path.display()),
        )),
    }
}

impl Tracker {
    /// The status report as markdown, with `data_dir`'s `status.md.j2` as
    /// the template when there is one (the legacy layout otherwise).
    pub fn status_markdown(&self, data_dir: Option<&Path>) -> Result<String> {
        let template = match data_dir {
            Some(d) => user_template(d)?,
            None => None,
        };
        crate::report::render_markdown(&self.status_report()?, template.as_deref())
    }

    /// Write the status report to `out` (atomically: a temporary file
    /// renamed over it) and return the path written.
    pub fn export_markdown(&self, data_dir: Option<&Path>, out: &Path) -> Result<PathBuf> {
        let text = self.status_markdown(data_dir)?;
        write_atomically(out, text.as_bytes())?;
        Ok(out.to_path_buf())
    }
}

/// Where the report goes by default: `.project_status.md` at the root of
/// the repository holding `from` (or in `from` outside git).
pub fn default_status_path(from: &Path) -> PathBuf {
    let root = from.ancestors().find(|a| a.join(".git").exists()).unwrap_or(from);
    root.join(STATUS_FILE)
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let cant = |e: std::io::Error| Error::invalid("out", format!("cannot write {}: {e}", path.display()));
    std::fs::write(&tmp, bytes).map_err(cant)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cant(e)
    })
}
