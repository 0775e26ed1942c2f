//! The status report as an answer (tool `get_project_status`, resource
//! `waymark://status`, `waymark status --json`): as JSON (the default), the
//! summary of `summary.rs`; as markdown, the report of `crate::report`,
//! bounded so that no answer grows with the store. Each list of the report
//! keeps its first rows and says how many it left out and which tool pages
//! through them.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::{StatusRequest, Tracker};
use crate::report::{self, StatusReport, StatusSummary};

/// What `get_project_status` answers: the summary as JSON, or the bounded
/// report as markdown.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum StatusAnswer {
    Json { summary: Box<StatusSummary> },
    Markdown { markdown: String },
}

impl Tracker {
    /// The status in the format `request` names.
    pub fn project_status(&self, request: &StatusRequest) -> Result<StatusAnswer> {
        match request
            .format
            .as_deref()
            .map(|f| f.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("json") => Ok(StatusAnswer::Json {
                summary: Box::new(self.status_summary()?),
            }),
            Some("markdown") => Ok(StatusAnswer::Markdown {
                markdown: markdown(self)?,
            }),
            Some(_) => Err(Error::invalid(
                "format",
                format!(
                    "{:?} is not one of json, markdown",
                    request.format.as_deref().unwrap_or_default()
                ),
            )),
        }
    }
}

/// The most rows of each list an answer carries.
const MAX_WORK_ITEMS: usize = 100;
const MAX_VENDORS: usize = 50;
const MAX_ENHANCEMENTS: usize = 20;
const MAX_CONFLICTS: usize = 20;
const MAX_CLAIMS: usize = 20;
/// Enhancement descriptions are cut to this many characters.
const MAX_DESCRIPTION: usize = 280;

/// What a bounded report left out: (list, rows left out, how to see them).
type Omitted = Vec<(&'static str, usize, &'static str)>;

fn cut<T>(list: &mut Vec<T>, max: usize) -> usize {
    let dropped = list.len().saturating_sub(max);
    list.truncate(max);
    dropped
}

fn bounded(tracker: &Tracker) -> Result<(StatusReport, Omitted)> {
    let mut r = tracker.status_report()?;
    let mut omitted = Omitted::new();
    for (name, dropped, hint) in [
        ("work_items", cut(&mut r.work_items, MAX_WORK_ITEMS), "list_work_items"),
        ("vendors", cut(&mut r.vendors.list, MAX_VENDORS), "list_vendors"),
        (
            "enhancements",
            cut(&mut r.enhancements, MAX_ENHANCEMENTS),
            "manage_enhancement with action list",
        ),
        ("conflicts", cut(&mut r.conflicts, MAX_CONFLICTS), "`waymark conflicts`"),
        ("claims", cut(&mut r.claims, MAX_CLAIMS), "list_work_items"),
    ] {
        if dropped > 0 {
            omitted.push((name, dropped, hint));
        }
    }
    for e in &mut r.enhancements {
        if let Some(d) = &mut e.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            *d = d.chars().take(MAX_DESCRIPTION).chain(['…']).collect();
        }
    }
    Ok((r, omitted))
}

/// The bounded report as markdown, with a closing note on what was left out.
pub fn markdown(tracker: &Tracker) -> Result<String> {
    let (r, omitted) = bounded(tracker)?;
    let mut md = report::render_markdown(&r, None)?;
    for (name, n, hint) in omitted {
        md.push_str(&format!(
            "\n_{n} more {} not shown; {hint} shows them._\n",
            name.replace('_', " ")
        ));
    }
    Ok(md)
}
