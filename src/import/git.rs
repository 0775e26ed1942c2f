//! Import from git history with gix: deployments from PR and deploy
//! commits, work items from branch names, vendor status from
//! `vendor(<name>): ...` subjects, and the configuration's `git_branch` and
//! `git_head_commit` (the conventions of `spec/domain.md`).
//!
//! Incremental: the last HEAD read is kept in the store's local state (never
//! synced), and the next import walks only the commits after it. Idempotent:
//! records take deterministic ids (a deployment from its commit hash, a
//! branch's work item from the branch name, a vendor from its name) and an
//! existing record is left alone or updated, never duplicated. Imported
//! records carry the author `git` and the commit's time, so two replicas that
//! import the same history write the same values.
//!
//! This module reads the repository and never writes to it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use gix::bstr::ByteSlice;
use serde::Serialize;
use serde_json::{Map, Value};

use super::ImportReport;
use crate::domain::ids;
use crate::error::{Error, Result};
use crate::ops::{self, NewDeployment, NewVendor, NewWorkItem, Tracker, VendorUpdate, WorkItemUpdate};
use crate::progress::Progress;
use crate::store::WriteTx;
use crate::time::Timestamp;

/// The author recorded on records imported from git.
pub(crate) const GIT_AUTHOR: &str = "git";

/// The local-state key that remembers the last commit read, per repository.
fn last_commit_key(git_dir: &Path) -> String {
    let dir = std::fs::canonicalize(git_dir).unwrap_or_else(|_| git_dir.to_path_buf());
    format!("import.git.last_commit:{}", dir.display())
}

/// What `import git` did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GitImport {
    #[serde(flatten)]
    pub report: ImportReport,
    /// Commits walked in this import (only the new ones when incremental).
    pub commits_read: usize,
    /// The branch HEAD names; absent when HEAD is detached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit HEAD points at; absent for an unborn HEAD (no commits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    pub detached: bool,
    pub unborn: bool,
    pub shallow: bool,
    /// Whether the walk started after the last commit an earlier import read.
    pub incremental: bool,
}

impl GitImport {
    pub fn to_text(&self) -> String {
        let mut s = self.report.to_text();
        let head = match (&self.head, &self.branch) {
            (None, Some(b)) => format!("HEAD is {b}, which has no commits yet"),
            (None, None) => "HEAD has no commits".into(),
            (Some(h), Some(b)) => format!("HEAD is {b} at {}", first_chars(h, 12)),
            (Some(h), None) => format!("HEAD is detached at {}", first_chars(h, 12)),
        };
        s.push_str(&format!(
            "  {} commits read{}{}; {head}\n",
            self.commits_read,
            if self.incremental {
                " (new since the last import)"
            } else {
                ""
            },
            if self.shallow { ", shallow history" } else { "" },
        ));
        s
    }
}

// ---- the conventions, as pure functions ------------------------------------

/// A deployment described by a commit message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeployCommit {
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
    /// Category -> count.
    pub tests: Map<String, Value>,
    pub compliance: Option<bool>,
    /// The branch a `Merge pull request #n from owner/branch` merged.
    pub branch: Option<String>,
}

fn digits_prefix(s: &str) -> Option<(i64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 9 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Read a commit message (subject, then body) as a deployment, when it
/// follows one of the conventions: `Merge pull request #<n> ...`,
/// `PR #<n>: <title>`, `deploy: <title>`, `deployment: <title>`.
pub(crate) fn parse_deployment(message: &str) -> Option<DeployCommit> {
    let mut lines = message.lines();
    let subject = lines.next().unwrap_or("").trim();
    let body: Vec<&str> = lines.collect();
    let mut d = DeployCommit::default();
    if let Some(rest) = strip_prefix_ci(subject, "Merge pull request #") {
        let (n, rest) = digits_prefix(rest)?;
        d.pr_number = Some(n);
        if let Some(from) = strip_prefix_ci(rest.trim_start(), "from ") {
            let from = from.split_whitespace().next().unwrap_or("");
            // `owner/branch`: the branch may hold slashes itself.
            d.branch = from
                .split_once('/')
                .map(|(_, b)| b.to_owned())
                .filter(|b| !b.is_empty());
        }
        // GitHub puts the pull request's title in the first body line.
        d.pr_title = body.iter().map(|l| l.trim()).find(|l| !l.is_empty()).map(str::to_owned);
    } else if let Some(rest) = strip_prefix_ci(subject, "PR #") {
        let (n, rest) = digits_prefix(rest)?;
        d.pr_number = Some(n);
        let title = rest.trim_start_matches([':', ' ', '-']).trim();
        d.pr_title = (!title.is_empty()).then(|| title.to_owned());
    } else if let Some(rest) = strip_prefix_ci(subject, "deployment:").or_else(|| strip_prefix_ci(subject, "deploy:")) {
        let title = rest.trim();
        d.pr_title = (!title.is_empty()).then(|| title.to_owned());
    } else {
        return None;
    }
    if let Some(t) = &d.pr_title
        && t.chars().count() > 200
    {
        d.pr_title = Some(t.chars().take(200).collect::<String>().trim().to_owned());
    }
    for line in &body {
        if let Some((k, n)) = test_count(line) {
            d.tests.insert(k, n.into());
        }
    }
    d.compliance = compliance(message);
    Some(d)
}

/// `unit: 150`, `- integration tests: 30`, `45/50 tests passing`.
fn test_count(line: &str) -> Option<(String, i64)> {
    let l = line.trim().trim_start_matches(['-', '*', ' ']).trim();
    if let Some((a, rest)) = l.split_once('/') {
        let (passing, _) = digits_prefix(a.trim()).filter(|(_, r)| r.is_empty())?;
        let (total, rest) = digits_prefix(rest.trim_start())?;
        let rest = rest.trim().to_ascii_lowercase();
        if rest.starts_with("tests passing") || rest.starts_with("passing") || rest.starts_with("tests pass") {
            return (passing <= total).then(|| ("passing".into(), passing));
        }
        return None;
    }
    let (key, value) = l.split_once(':')?;
    let key = key.trim().to_ascii_lowercase();
    let key = key.strip_suffix(" tests").unwrap_or(&key).trim();
    let (n, rest) = digits_prefix(value.trim())?;
    if !rest.trim().is_empty() && !rest.trim().eq_ignore_ascii_case("tests") {
        return None;
    }
    let is_word = !key.is_empty()
        && key.len() <= 30
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-' || c == ' ');
    const NOT_TESTS: &[&str] = &["pr", "version", "issue", "closes", "fixes", "refs"];
    (is_word && !NOT_TESTS.contains(&key)).then(|| (key.replace(' ', "_"), n))
}

fn compliance(message: &str) -> Option<bool> {
    let lower = message.to_lowercase();
    if lower.contains("[non-compliant]") || lower.contains("❌") || lower.contains("constitutional compliance: no") {
        return Some(false);
    }
    (lower.contains("constitutional compliance") || message.contains('✅') || lower.contains("[compliant]"))
        .then_some(true)
}

/// Every test count in a message, with `45/50 tests passing` giving both
/// `passing` and `total`.
fn tests_of(message: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for line in message.lines().skip(1) {
        let l = line.trim().trim_start_matches(['-', '*', ' ']).trim();
        if let Some((k, n)) = test_count(line) {
            if k == "passing"
                && let Some((_, rest)) = l.split_once('/')
                && let Some((total, _)) = digits_prefix(rest.trim_start())
            {
                m.insert("total".into(), total.into());
            }
            m.insert(k, n.into());
        }
    }
    m
}

/// A vendor status subject: `vendor(<name>): operational|broken`, with an
/// optional `version: X.Y.Z` anywhere in the message.
pub(crate) fn parse_vendor(message: &str) -> Option<(String, String, Option<String>)> {
    let subject = message.lines().next()?.trim();
    let rest = strip_prefix_ci(subject, "vendor(")?;
    let (name, rest) = rest.split_once(')')?;
    let rest = rest.trim_start().strip_prefix(':')?.trim();
    let status = rest.split(|c: char| !c.is_alphabetic()).next()?.to_ascii_lowercase();
    if status != "operational" && status != "broken" {
        return None;
    }
    let version = message.lines().find_map(|l| {
        let l = l.trim();
        let i = l.to_ascii_lowercase().find("version:")?;
        let v = l[i + "version:".len()..].split_whitespace().next()?;
        let v = v.trim_start_matches('v').trim_end_matches([',', '.', ';', ')']);
        let ok = v.split('.').count() >= 2
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| v.to_owned())
    });
    Some((name.trim().to_owned(), status, version))
}

/// A work item named by a branch.
#[derive(Clone, Debug, PartialEq)]
pub struct BranchItem {
    pub branch: String,
    pub number: i64,
    pub title: String,
    /// `project` (a `feature/` branch, or a number below 100) or `task`.
    pub item_type: &'static str,
}

/// `NNN-name`, `feature/NNN-name`, `bugfix/NNN-name`: `003-database-backed-project`
/// becomes the project "database backed project".
pub fn parse_branch(branch: &str) -> Option<BranchItem> {
    let branch = branch.trim();
    let (prefix, rest) = match branch.split_once('/') {
        Some((p @ ("feature" | "bugfix"), rest)) => (Some(p), rest),
        Some(_) => return None,
        None => (None, branch),
    };
    let (number, name) = digits_prefix(rest)?;
    let name = name.strip_prefix('-')?;
    let title = name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if title.is_empty() {
        return None;
    }
    let item_type = if prefix == Some("feature") || number < 100 {
        "project"
    } else {
        "task"
    };
    Some(BranchItem {
        branch: branch.to_owned(),
        number,
        title,
        item_type,
    })
}

/// A branch named in a merge subject: `Merge branch 'x'`, or the branch of a
/// `Merge pull request #n from owner/x`.
fn merged_branch(message: &str) -> Option<String> {
    let subject = message.lines().next()?.trim();
    let rest = strip_prefix_ci(subject, "Merge branch '")?;
    rest.split_once('\'').map(|(b, _)| b.to_owned())
}

/// What the importer reads in one commit message, by every convention at
/// once: the pure part of the git import, which needs no repository (the
/// fuzz tests feed it arbitrary messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitMessage {
    /// Whether the subject's first bytes can start a convention (the walk
    /// keeps only these commits).
    pub interesting: bool,
    pub deployment: Option<DeployCommit>,
    /// A deployment's test counts (`45/50 tests passing` gives `passing`
    /// and `total`); empty for other commits.
    pub tests: Map<String, Value>,
    /// The branch a `Merge branch '<name>'` subject names.
    pub merged_branch: Option<String>,
    /// A vendor status subject: (name, status, version).
    pub vendor: Option<(String, String, Option<String>)>,
}

/// Read a commit message by every convention (see [`CommitMessage`]).
pub fn parse_commit_message(message: &str) -> CommitMessage {
    let deployment = parse_deployment(message);
    CommitMessage {
        interesting: interesting(message.as_bytes()),
        tests: if deployment.is_some() {
            tests_of(message)
        } else {
            Map::new()
        },
        deployment,
        merged_branch: merged_branch(message),
        vendor: parse_vendor(message),
    }
}

// ---- reading the repository --------------------------------------------------

/// One commit of interest, read out of the repository.
#[derive(Clone, Debug)]
struct CommitFacts {
    id: String,
    time: Timestamp,
    message: String,
}

struct RepoFacts {
    git_dir: std::path::PathBuf,
    branch: Option<String>,
    head: Option<String>,
    detached: bool,
    unborn: bool,
    shallow: bool,
    incremental: bool,
    commits_read: usize,
    /// Oldest first.
    commits: Vec<CommitFacts>,
    /// Local and remote-tracking branch names with their tip's time.
    branches: Vec<(String, Timestamp)>,
}

fn git_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        "repo",
        format!("cannot read the git repository at {}: {e}", path.display()),
    )
}

fn read_repo(
    path: &Path,
    last: impl FnOnce(&Path) -> Result<Option<String>>,
    progress: &Progress,
) -> Result<RepoFacts> {
    let mut repo = gix::discover(path).map_err(|e| {
        Error::invalid(
            "repo",
            format!(
                "{} is not inside a git repository ({e}); run the import in a repository or pass --repo PATH",
                path.display()
            ),
        )
    })?;
    repo.object_cache_size_if_unset(4 * 1024 * 1024);
    let git_dir = repo.git_dir().to_path_buf();
    let head = repo.head().map_err(|e| git_error(path, e))?;
    let detached = head.is_detached();
    let unborn = head.is_unborn();
    let branch = head.referent_name().map(|n| n.shorten().to_str_lossy().into_owned());
    let head_id = head.id().map(|id| id.detach());
    let shallow = repo.is_shallow().unwrap_or(false);

    let mut facts = RepoFacts {
        git_dir: git_dir.clone(),
        branch,
        head: head_id.map(|id| id.to_string()),
        detached,
        unborn,
        shallow,
        incremental: false,
        commits_read: 0,
        commits: Vec::new(),
        branches: Vec::new(),
    };

    // Branch names: local ones as they are, remote-tracking ones without the
    // remote's name.
    if let Ok(refs) = repo.references() {
        for (iter, remote) in [(refs.local_branches(), false), (refs.remote_branches(), true)] {
            let Ok(iter) = iter else { continue };
            for r in iter.flatten() {
                let mut r = r;
                let short = r.name().shorten().to_str_lossy().into_owned();
                let name = if remote {
                    match short.split_once('/') {
                        Some((_, b)) if b != "HEAD" => b.to_owned(),
                        _ => continue,
                    }
                } else {
                    short
                };
                if parse_branch(&name).is_none() {
                    continue;
                }
                let time = r
                    .peel_to_id()
                    .ok()
                    .and_then(|id| id.object().ok())
                    .and_then(|o| o.try_into_commit().ok())
                    .and_then(|c| c.time().ok())
                    .map(|t| Timestamp(t.seconds * 1_000_000))
                    .unwrap_or_else(Timestamp::now);
                facts.branches.push((name, time));
            }
        }
    }

    let Some(head_id) = head_id else {
        return Ok(facts);
    };
    let previous = last(&git_dir)?
        .and_then(|h| gix::ObjectId::from_hex(h.as_bytes()).ok())
        .filter(|id| repo.find_object(*id).is_ok());
    if previous == Some(head_id) {
        facts.incremental = true;
        return Ok(facts);
    }
    let mut walk = repo
        .rev_walk([head_id])
        .sorting(gix::revision::walk::Sorting::ByCommitTime(
            gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
        ));
    if let Some(p) = previous {
        walk = walk.with_hidden([p]);
        facts.incremental = true;
    }
    let walk = walk.all().map_err(|e| git_error(path, e))?;
    for info in walk {
        let info = info.map_err(|e| git_error(path, e))?;
        facts.commits_read += 1;
        progress.step(facts.commits_read as u64, None, "commits read");
        progress.check()?;
        let commit = info.object().map_err(|e| git_error(path, e))?;
        let message = commit.message_raw_sloppy();
        if !interesting(message) {
            continue;
        }
        let seconds = match info.commit_time {
            Some(s) => s,
            None => commit.time().map_err(|e| git_error(path, e))?.seconds,
        };
        facts.commits.push(CommitFacts {
            id: info.id.to_string(),
            time: Timestamp(seconds * 1_000_000),
            message: message.to_str_lossy().into_owned(),
        });
    }
    facts.commits.reverse();
    Ok(facts)
}

/// Whether a commit message can follow one of the conventions (a cheap
/// check on the subject's first bytes, before decoding it).
fn interesting(message: &[u8]) -> bool {
    let head = &message[..message.len().min(24)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    [
        "merge pull request #",
        "merge branch '",
        "pr #",
        "deploy:",
        "deployment:",
        "vendor(",
    ]
    .iter()
    .any(|p| lower.starts_with(p.as_bytes()))
}

impl Tracker {
    /// Import what the git repository holding `repo_path` says: deployments,
    /// branch work items, vendor status, the branch and HEAD. Only commits
    /// after the last import are read.
    pub fn import_git(&self, author: &str, repo_path: &Path) -> Result<GitImport> {
        self.import_git_with(author, repo_path, &Progress::none())
    }

    /// [`Tracker::import_git`], telling `progress` the commits read, then
    /// the records written.
    pub fn import_git_with(&self, author: &str, repo_path: &Path, progress: &Progress) -> Result<GitImport> {
        let store = self.store().clone();
        let facts = read_repo(
            repo_path,
            |git_dir| store.local_get(&last_commit_key(git_dir)),
            progress,
        )?;
        progress.done(facts.commits_read as u64, None, "commits read");
        let mut report = ImportReport::new(repo_path.display().to_string());
        let commits = facts.commits.clone();
        let branches = facts.branches.clone();
        if !commits.is_empty() || !branches.is_empty() {
            let progress = progress.clone();
            report = self
                .store()
                .write(author, move |tx| write_git(tx, report, &commits, &branches, &progress))?;
        }

        // The configuration follows HEAD.
        let (config, _) = self.get_project_configuration()?;
        let branch = facts.branch.clone().unwrap_or_default();
        let head = facts.head.clone().unwrap_or_default();
        if config.git_branch.as_deref().unwrap_or("") != branch
            || config.git_head_commit.as_deref().unwrap_or("") != head
        {
            let branch = if branch.chars().count() > 100 {
                String::new()
            } else {
                branch
            };
            let c = self.update_project_configuration(
                author,
                ops::ConfigurationUpdate {
                    git_branch: Some(branch),
                    git_head_commit: Some(head),
                    ..Default::default()
                },
            )?;
            report.record("configuration", &c.id, "git branch and HEAD", c.version == 1, "HEAD");
        }
        if let Some(h) = &facts.head {
            self.store().local_set(&last_commit_key(&facts.git_dir), h)?;
        }
        let written = report.records.len() as u64;
        progress.done(written, Some(written), "records written");
        Ok(GitImport {
            report,
            commits_read: facts.commits_read,
            branch: if facts.detached { None } else { facts.branch },
            head: facts.head,
            detached: facts.detached,
            unborn: facts.unborn,
            shallow: facts.shallow,
            incremental: facts.incremental,
        })
    }
}

/// The first `n` characters of `s` (all of it when shorter), cut where a
/// character starts: never a byte offset that may fall inside one.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn short(id: &str) -> &str {
    first_chars(id, 7)
}

/// The merge commit that merged a branch, with its PR number.
type Merge<'a> = (&'a CommitFacts, Option<i64>);

fn write_git(
    tx: &mut WriteTx<'_>,
    mut report: ImportReport,
    commits: &[CommitFacts],
    branches: &[(String, Timestamp)],
    progress: &Progress,
) -> Result<ImportReport> {
    tx.set_author(GIT_AUTHOR.into());
    let parsed: Vec<(&CommitFacts, CommitMessage)> =
        commits.iter().map(|c| (c, parse_commit_message(&c.message))).collect();
    // Branches merged in this history, with the merge that did it.
    let mut merged: BTreeMap<String, Merge<'_>> = BTreeMap::new();
    for (c, p) in &parsed {
        if let Some(d) = &p.deployment
            && let Some(b) = &d.branch
        {
            merged.insert(b.clone(), (c, d.pr_number));
        } else if let Some(b) = &p.merged_branch {
            merged.insert(b.clone(), (c, None));
        }
    }
    // Work items from branch names: merged ones first (their merge gives a
    // time, a PR and a commit), then the branches that exist.
    let mut seen = HashSet::new();
    let mut items: Vec<(String, Timestamp, Option<Merge<'_>>)> = Vec::new();
    for (b, (c, pr)) in &merged {
        if parse_branch(b).is_some() && seen.insert(b.clone()) {
            items.push((b.clone(), c.time, Some((c, *pr))));
        }
    }
    for (b, time) in branches {
        if seen.insert(b.clone()) {
            items.push((b.clone(), *time, None));
        }
    }
    for (branch, time, merge) in items {
        progress.check()?;
        let Some(parsed) = parse_branch(&branch) else { continue };
        let id = ids::work_item_from_branch(&branch);
        let at = format!("branch {branch}");
        tx.set_time(Some(time));
        match ops::work_items::load(tx.conn(), &id)? {
            None => {
                let mut metadata = Map::new();
                metadata.insert("branch_number".into(), parsed.number.into());
                let input = NewWorkItem {
                    item_type: parsed.item_type.into(),
                    title: parsed.title.clone(),
                    status: merge.map(|_| "completed".to_owned()),
                    branch_name: Some(branch.clone()),
                    commit_hash: merge.map(|(c, _)| c.id.clone()),
                    pr_number: merge.and_then(|(_, pr)| pr),
                    metadata: Some(metadata),
                    ..Default::default()
                };
                match ops::work_items::create_in(tx, &id, input, false) {
                    Ok(item) => report.record("work_item", &item.id, &item.title, true, &at),
                    Err(e) => report.skip(&at, None, &branch, e.to_string()),
                }
            }
            Some(item) => match merge {
                Some((c, pr)) if item.status != "completed" => {
                    let update = WorkItemUpdate {
                        id: item.id.clone(),
                        version: item.version,
                        status: Some("completed".into()),
                        commit_hash: item.commit_hash.is_none().then(|| c.id.clone()),
                        pr_number: if item.pr_number.is_none() { pr } else { None },
                        ..Default::default()
                    };
                    match ops::work_items::update_in(tx, update) {
                        Ok(item) => report.record("work_item", &item.id, &item.title, false, &at),
                        Err(e) => report.skip(&at, None, &branch, e.to_string()),
                    }
                }
                _ => report.unchanged("work_item"),
            },
        }
    }

    for (c, p) in parsed {
        progress.check()?;
        let at = format!("commit {}", short(&c.id));
        let subject = c.message.lines().next().unwrap_or("");
        tx.set_time(Some(c.time));
        if let Some(d) = p.deployment {
            let id = ids::deployment_from_commit(&c.id);
            if ops::deployments::load(tx.conn(), &id)?.is_some() {
                report.unchanged("deployment");
                continue;
            }
            let mut work_item_ids = Vec::new();
            if let Some(b) = d.branch.as_deref().or(p.merged_branch.as_deref())
                && parse_branch(b).is_some()
            {
                let wid = ids::work_item_from_branch(b);
                if ops::work_items::load(tx.conn(), &wid)?.is_some() {
                    work_item_ids.push(wid);
                }
            }
            let tests = p.tests;
            let input = NewDeployment {
                commit_hash: c.id.clone(),
                deployed_at: Some(c.time.to_string()),
                pr_number: d.pr_number,
                pr_title: d.pr_title.clone(),
                test_summary: (!tests.is_empty()).then_some(tests),
                constitutional_compliance: d.compliance,
                vendor_ids: Vec::new(),
                work_item_ids,
            };
            match ops::deployments::record_in(tx, &id, input, true) {
                Ok(dep) => report.record("deployment", &dep.id, &format!("{} {subject}", short(&c.id)), true, &at),
                Err(e) => report.skip(&at, None, subject, e.to_string()),
            }
        } else if let Some((name, status, version)) = p.vendor {
            let existing = ops::vendors::find(tx.conn(), &name)?;
            let created = existing.is_none();
            let before = existing.as_ref().map(|v| v.version);
            if created
                && let Err(e) = ops::vendors::create_in(
                    tx,
                    NewVendor {
                        name: name.clone(),
                        extractor_version: version.clone(),
                        metadata: None,
                    },
                )
            {
                report.skip(&at, None, subject, e.to_string());
                continue;
            }
            let update = VendorUpdate {
                name: name.clone(),
                version: 0,
                status: Some(status),
                extractor_version: version,
                metadata: None,
            };
            match ops::vendors::update_in(tx, update, false) {
                Ok(v) if created || Some(v.version) != before => report.record("vendor", &v.id, &v.name, created, &at),
                Ok(_) => report.unchanged("vendor"),
                Err(e) => report.skip(&at, None, subject, e.to_string()),
            }
        }
    }
    tx.set_time(None);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_subjects() {
        let d = parse_deployment(
            "Merge pull request #42 from acme/003-database-backed-project\n\nDatabase backed project\n\nunit: 150\nintegration: 30\n✅ constitutional compliance",
        )
        .unwrap();
        assert_eq!(d.pr_number, Some(42));
        assert_eq!(d.pr_title.as_deref(), Some("Database backed project"));
        assert_eq!(d.branch.as_deref(), Some("003-database-backed-project"));
        assert_eq!(d.compliance, Some(true));
        let d = parse_deployment("PR #7: Add the parser\n\n45/50 tests passing").unwrap();
        assert_eq!((d.pr_number, d.pr_title.as_deref()), (Some(7), Some("Add the parser")));
        assert_eq!(
            tests_of("PR #7: x\n\n45/50 tests passing"),
            serde_json::json!({"passing": 45, "total": 50})
                .as_object()
                .unwrap()
                .clone()
        );
        let d = parse_deployment("deploy: friday release\n[COMPLIANT]").unwrap();
        assert_eq!(
            (d.pr_number, d.pr_title.as_deref(), d.compliance),
            (None, Some("friday release"), Some(true))
        );
        assert!(parse_deployment("fix: a typo").is_none());
        assert!(parse_deployment("PR #x: nothing").is_none());
        assert!(test_count("version: 1.2.3").is_none());
        assert!(test_count("PR: 12").is_none());
        assert_eq!(test_count("- unit tests: 12"), Some(("unit".into(), 12)));
    }

    #[test]
    fn vendor_subjects() {
        assert_eq!(
            parse_vendor("vendor(Epson): operational\n\nversion: 1.4.2"),
            Some(("Epson".into(), "operational".into(), Some("1.4.2".into())))
        );
        assert_eq!(
            parse_vendor("vendor(canon): broken"),
            Some(("canon".into(), "broken".into(), None))
        );
        assert_eq!(parse_vendor("vendor(canon): fixed"), None);
    }

    #[test]
    fn branch_names() {
        let b = parse_branch("003-database-backed-project").unwrap();
        assert_eq!(
            (b.number, b.title.as_str(), b.item_type),
            (3, "database backed project", "project")
        );
        assert_eq!(parse_branch("feature/120-search").unwrap().item_type, "project");
        assert_eq!(parse_branch("bugfix/120-crash-on-start").unwrap().item_type, "task");
        assert_eq!(parse_branch("120-crash").unwrap().item_type, "task");
        assert!(parse_branch("main").is_none());
        assert!(parse_branch("hotfix/120-x").is_none());
        assert!(parse_branch("120").is_none());
    }

    #[test]
    fn short_forms_cut_at_characters() {
        assert_eq!(short("1a2b3c4d5e6f"), "1a2b3c4");
        assert_eq!(short("1a2"), "1a2");
        assert_eq!(short("ééééééééé"), "ééééééé");
        assert_eq!(first_chars("aé", 1), "a");
    }
}
