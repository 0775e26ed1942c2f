//! Git import over real repositories built with the git CLI in a temporary
//! directory: merges, branches, tags, an unborn HEAD, a detached HEAD, a
//! shallow clone, no repository at all; and the watcher.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;
use waymark::Tracker;
use waymark::domain::ids;
use waymark::ops::{DeploymentFilter, WorkItemFilter};

use super::tracker;

/// A git repository in a temporary directory, whose commits get fixed,
/// increasing times (a minute apart from 2025-10-01 12:00 UTC).
pub struct Repo {
    dir: TempDir,
    clock: Cell<i64>,
}

const START: i64 = 1_759_320_000;

impl Repo {
    pub fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("temp dir"),
            clock: Cell::new(START),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git_in(dir: &Path, at: i64, args: &[&str]) -> String {
        let date = format!("@{at} +0000");
        let out = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(["-c", "tag.gpgsign=false", "-c", "protocol.file.allow=always"])
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.clock.set(self.clock.get() + 60);
        Repo::git_in(self.path(), self.clock.get(), args)
    }

    /// An empty commit with `message`; returns its hash.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The time of the last git command, as stored (RFC 3339, micros).
    pub fn time_of(&self, commit: &str) -> String {
        let secs: i64 = self.git(&["show", "-s", "--format=%ct", commit]).parse().unwrap();
        waymark::time::Timestamp(secs * 1_000_000).to_string()
    }
}

/// main: init, a PR merged from `003-database-backed-project`, a tag, a
/// `PR #13` commit, a deploy commit, two vendor commits; plus unmerged
/// branches `feature/120-search` and `bugfix/150-crash-on-start`.
fn project_history() -> (Repo, Vec<String>) {
    let r = Repo::new();
    let mut c = vec![r.commit("Initial commit")];
    r.git(&["checkout", "-q", "-b", "003-database-backed-project"]);
    r.commit("Store work items in SQLite");
    r.git(&["checkout", "-q", "main"]);
    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "003-database-backed-project",
        "-m",
        "Merge pull request #12 from acme/003-database-backed-project",
        "-m",
        "Database backed project\n\nunit: 150\nintegration: 30\n✅ constitutional compliance",
    ]);
    c.push(r.git(&["rev-parse", "HEAD"]));
    r.git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    c.push(r.commit("PR #13: Add the Epson parser\n\n45/50 tests passing"));
    c.push(r.commit("fix: a typo in the README"));
    c.push(r.commit("deploy: friday release\n\n[COMPLIANT]"));
    c.push(r.commit("vendor(Epson): operational\n\nversion: 1.2.3"));
    c.push(r.commit("vendor(epson): broken\n\nThe new statements fail."));
    r.git(&["branch", "feature/120-search"]);
    r.git(&["branch", "bugfix/150-crash-on-start"]);
    (r, c)
}

#[test]
fn a_history_gives_deployments_branch_items_vendors_and_git_state() {
    let (repo, c) = project_history();
    let (_d, t) = tracker();
    let result = t.import_git("cli", repo.path()).unwrap();
    assert_eq!(result.commits_read, 8);
    assert!(!result.incremental && !result.shallow && !result.detached && !result.unborn);
    assert_eq!(result.report.created["deployments"], 3);
    assert_eq!(result.report.created["work_items"], 3);
    assert_eq!(result.report.created["vendors"], 1);
    assert!(result.report.skipped.is_empty(), "{:?}", result.report.skipped);

    // The merged PR, field by field.
    let merge = t.get_deployment(&ids::deployment_from_commit(&c[1])).unwrap();
    assert_eq!(merge.commit_hash, c[1]);
    assert_eq!(merge.deployed_at, repo.time_of(&c[1]));
    assert_eq!(
        merge.metadata,
        json!({"pr_number": 12, "pr_title": "Database backed project",
               "test_summary": {"unit": 150, "integration": 30}, "constitutional_compliance": true})
    );
    let project_id = ids::work_item_from_branch("003-database-backed-project");
    assert_eq!(merge.work_item_ids, vec![project_id.clone()]);
    assert_eq!(merge.created_by, "git");

    let pr13 = t.get_deployment(&ids::deployment_from_commit(&c[2])).unwrap();
    assert_eq!(
        pr13.metadata,
        json!({"pr_number": 13, "pr_title": "Add the Epson parser", "test_summary": {"passing": 45, "total": 50}})
    );
    let deploy = t.get_deployment(&ids::deployment_from_commit(&c[4])).unwrap();
    assert_eq!(
        deploy.metadata,
        json!({"pr_title": "friday release", "constitutional_compliance": true})
    );
    assert!(
        t.get_deployment(&ids::deployment_from_commit(&c[3])).is_err(),
        "a plain commit is no deployment"
    );
    let listed = t.list_deployments(DeploymentFilter::default()).unwrap();
    assert_eq!(
        listed.items.iter().map(|d| d.commit_hash.as_str()).collect::<Vec<_>>(),
        [&c[4], &c[2], &c[1]]
    );

    // Branch work items.
    let project = t.get_work_item(&project_id).unwrap();
    assert_eq!(
        (
            project.item_type.as_str(),
            project.title.as_str(),
            project.status.as_str()
        ),
        ("project", "database backed project", "completed")
    );
    assert_eq!(project.branch_name.as_deref(), Some("003-database-backed-project"));
    assert_eq!(project.pr_number, Some(12));
    assert_eq!(project.commit_hash.as_deref(), Some(c[1].as_str()));
    assert_eq!(project.metadata, json!({"branch_number": 3}));
    let search = t
        .get_work_item(&ids::work_item_from_branch("feature/120-search"))
        .unwrap();
    assert_eq!(
        (search.item_type.as_str(), search.title.as_str(), search.status.as_str()),
        ("project", "search", "active")
    );
    let crash = t
        .get_work_item(&ids::work_item_from_branch("bugfix/150-crash-on-start"))
        .unwrap();
    assert_eq!(
        (crash.item_type.as_str(), crash.title.as_str()),
        ("task", "crash on start")
    );

    // The last vendor commit wins; the version came from the first.
    let epson = t.query_vendor_status("EPSON").unwrap();
    assert_eq!(
        (
            epson.name.as_str(),
            epson.status.as_str(),
            epson.extractor_version.as_str()
        ),
        ("Epson", "broken", "1.2.3")
    );

    let (config, _) = t.get_project_configuration().unwrap();
    assert_eq!(config.git_branch.as_deref(), Some("main"));
    assert_eq!(config.git_head_commit.as_deref(), Some(c[6].as_str()));
}

#[test]
fn a_second_import_reads_only_new_commits_and_duplicates_nothing() {
    let (repo, _) = project_history();
    let (_d, t) = tracker();
    t.import_git("cli", repo.path()).unwrap();
    let before = t.store().pending_changes().unwrap();

    let again = t.import_git("cli", repo.path()).unwrap();
    assert_eq!(again.commits_read, 0);
    assert!(again.incremental);
    assert_eq!(again.report.created_total() + again.report.updated_total(), 0);
    assert_eq!(t.store().pending_changes().unwrap(), before, "nothing was written");

    let c = repo.commit("PR #14: Canon parser\n\nunit: 20");
    let next = t.import_git("cli", repo.path()).unwrap();
    assert_eq!(next.commits_read, 1);
    assert_eq!(next.report.created["deployments"], 1);
    assert_eq!(t.list_deployments(DeploymentFilter::default()).unwrap().total_count, 4);
    assert_eq!(t.get_project_configuration().unwrap().0.git_head_commit, Some(c));

    // Forgetting where it stopped (a new replica, a wiped local state) reads
    // everything again and still creates nothing twice.
    let (_d2, t2) = tracker();
    t2.import_git("cli", repo.path()).unwrap();
    let doc = |t: &Tracker| {
        let mut d = t.export_json().unwrap();
        d.as_object_mut().unwrap().remove("configuration");
        d["deployments"].clone()
    };
    assert_eq!(
        doc(&t),
        doc(&t2),
        "two replicas import the same records under the same ids"
    );
}

#[test]
fn the_same_merge_seen_after_its_branch_completes_the_branch_item() {
    let r = Repo::new();
    r.commit("init");
    r.git(&["checkout", "-q", "-b", "210-export"]);
    r.commit("export work");
    r.git(&["checkout", "-q", "main"]);
    let (_d, t) = tracker();
    t.import_git("cli", r.path()).unwrap();
    let id = ids::work_item_from_branch("210-export");
    let item = t.get_work_item(&id).unwrap();
    assert_eq!((item.item_type.as_str(), item.status.as_str()), ("task", "active"));

    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "210-export",
        "-m",
        "Merge branch '210-export'",
    ]);
    let result = t.import_git("cli", r.path()).unwrap();
    assert_eq!(result.report.updated["work_items"], 1);
    assert_eq!(t.get_work_item(&id).unwrap().status, "completed");
    let all = t.list_work_items(WorkItemFilter::default()).unwrap();
    assert_eq!(all.total_count, 1, "updated, not duplicated");
}

#[test]
fn an_unborn_head_imports_the_branch_and_nothing_else() {
    let r = Repo::new();
    let (_d, t) = tracker();
    let result = t.import_git("cli", r.path()).unwrap();
    assert!(result.unborn);
    assert_eq!((result.commits_read, result.head.as_deref()), (0, None));
    assert_eq!(result.branch.as_deref(), Some("main"));
    let (config, _) = t.get_project_configuration().unwrap();
    assert_eq!(config.git_branch.as_deref(), Some("main"));
    assert_eq!(config.git_head_commit, None);

    let c = r.commit("PR #1: first");
    let result = t.import_git("cli", r.path()).unwrap();
    assert_eq!(result.report.created["deployments"], 1);
    assert_eq!(t.get_project_configuration().unwrap().0.git_head_commit, Some(c));
}

#[test]
fn a_detached_head_has_no_branch() {
    let (repo, c) = project_history();
    repo.git(&["checkout", "-q", "--detach", &c[2]]);
    let (_d, t) = tracker();
    let result = t.import_git("cli", repo.path()).unwrap();
    assert!(result.detached);
    assert_eq!(result.branch, None);
    assert_eq!(result.report.created["deployments"], 2, "only what HEAD reaches");
    let (config, _) = t.get_project_configuration().unwrap();
    assert_eq!(config.git_branch, None);
    assert_eq!(config.git_head_commit.as_deref(), Some(c[2].as_str()));
}

#[test]
fn a_shallow_clone_imports_the_history_it_has() {
    let (repo, c) = project_history();
    let parent = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    Repo::git_in(parent.path(), START, &["clone", "-q", "--depth", "3", &url, "clone"]);
    let clone: PathBuf = parent.path().join("clone");
    let (_d, t) = tracker();
    let result = t.import_git("cli", &clone).unwrap();
    assert!(result.shallow);
    assert_eq!(result.commits_read, 3);
    assert_eq!(
        result.report.created["deployments"], 1,
        "the deploy commit; the PRs are past the cut"
    );
    assert!(t.get_deployment(&ids::deployment_from_commit(&c[4])).is_ok());
    assert_eq!(t.query_vendor_status("epson").unwrap().status, "broken");
}

#[test]
fn outside_git_the_import_says_so_and_changes_nothing() {
    let (_d, t) = tracker();
    let nowhere = tempfile::tempdir().unwrap();
    let e = t.import_git("cli", nowhere.path()).unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert!(e.to_string().contains("not inside a git repository"), "{e}");
    assert!(e.to_string().contains("--repo"), "{e}");
    assert_eq!(t.store().pending_changes().unwrap(), 0);
}

#[test]
fn the_watcher_imports_a_new_commit_within_seconds() {
    let r = Repo::new();
    r.commit("init");
    let (d, t) = tracker();
    std::fs::write(d.path().join("config.toml"), "auto_export_markdown = true\n").unwrap();
    let handle = waymark::watch::spawn_watcher(t.clone(), r.path(), d.path());
    assert!(handle.is_active());
    let c = r.commit("PR #77: Watched release\n\nunit: 3");
    let id = ids::deployment_from_commit(&c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.get_deployment(&id).is_err() {
        assert!(Instant::now() < deadline, "the deployment did not appear within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The markdown follows.
    let status = r.path().join(".project_status.md");
    while !std::fs::read_to_string(&status).unwrap_or_default().contains("PR #77") {
        assert!(Instant::now() < deadline, "the status report was not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.stop();

    // Outside git the watcher does not run, and says nothing on stdout.
    let nowhere = tempfile::tempdir().unwrap();
    assert!(!waymark::watch::spawn_watcher(t, nowhere.path(), d.path()).is_active());
}

/// The release binary's `serve`, started inside a repository, spoken to in
/// raw JSON-RPC over its stdin and stdout, its stderr (logs) collected.
struct Served {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    next_id: i64,
}

impl Served {
    fn start(repo: &Path) -> Served {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("--data-dir")
            .arg(repo.join(".waymark"))
            .args(["serve", "--toolset", "all"])
            .current_dir(repo)
            .env("RUST_LOG", "waymark=debug")
            .env_remove("WAYMARK_AUTO_EXPORT_MARKDOWN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the waymark binary starts");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(|l| l.ok()) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut s = Served {
            child,
            stdin: Some(stdin),
            lines,
            logs,
            next_id: 1,
        };
        let init = s.call(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "watch-test", "version": "1"}}),
        );
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, message: &serde_json::Value) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the session is open");
        writeln!(stdin, "{message}").expect("write to the server");
        stdin.flush().unwrap();
    }

    /// A request and its response (notifications in between are passed over).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {method} ({e}); logs: {:#?}", self.logs()));
            let v: serde_json::Value = serde_json::from_str(&line).expect("stdout carries only JSON-RPC");
            if v["id"] == json!(id) {
                return v;
            }
        }
    }

    /// The commit hashes `list_deployments` shows.
    fn deployments(&mut self) -> Vec<String> {
        let v = self.call(
            "tools/call",
            json!({"name": "list_deployments", "arguments": {"limit": 100}}),
        );
        // A page is columns and rows (`structuredContent`).
        let page = &v["result"]["structuredContent"];
        let columns = page["columns"].as_array().unwrap_or_else(|| panic!("{v}"));
        let at = columns
            .iter()
            .position(|c| c == "commit_hash")
            .unwrap_or_else(|| panic!("{v}"));
        page["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|row| row[at].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Poll `list_deployments` until `commit` shows, for at most `within`.
    fn wait_for_deployment(&mut self, commit: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.deployments().iter().any(|c| c == commit) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the deployment of {commit} did not appear within {within:?}; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// How many imports the watcher logged.
    fn imports(&self) -> usize {
        self.logs()
            .iter()
            .filter(|l| l.contains("imported git history"))
            .count()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Closing stdin ends the session; kill the server if it lingers.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 5's proof: a commit made in a repository while `serve` runs there
/// shows through the MCP tools within seconds; a burst of 20 commits is
/// imported a few times, not 20.
#[test]
fn serve_imports_a_new_commit_and_folds_a_burst() {
    let r = Repo::new();
    r.commit("init");
    let mut s = Served::start(r.path());
    // The watcher's first import (of what was there before it started).
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.imports() == 0 {
        assert!(Instant::now() < deadline, "no first import; logs: {:#?}", s.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.deployments().is_empty());

    let c = r.commit("PR #81: Served release\n\nunit: 5");
    let took = s.wait_for_deployment(&c, Duration::from_secs(10));
    eprintln!("the deployment showed {took:?} after the commit");

    // A burst: 20 commits from one shell loop, as fast as git makes them.
    // An idle repository is not imported again (reading a ref is no change).
    std::thread::sleep(Duration::from_millis(1500));
    let before = s.imports();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.imports(), before, "imports while idle; logs: {:#?}", s.logs());
    let script = "for i in $(seq 1 20); do git -c user.name=Test -c user.email=test@example.com \
                  -c commit.gpgsign=false commit -q --allow-empty -m \"PR #$((100 + i)): Burst $i\" || exit 1; done";
    let burst_started = Instant::now();
    let out = Command::new("sh")
        .current_dir(r.path())
        .args(["-c", script])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let burst_took = burst_started.elapsed();
    let last = r.git(&["rev-parse", "HEAD"]);
    s.wait_for_deployment(&last, Duration::from_secs(15));
    assert_eq!(s.deployments().len(), 21);
    // Let any import still pending finish, then count.
    std::thread::sleep(Duration::from_millis(1500));
    let burst = s.imports() - before;
    eprintln!("20 commits in {burst_took:?} gave {burst} imports");
    // A gap of more than 400 ms between two commits ends a burst; on a
    // machine so loaded that 20 commits take seconds, allow a few more.
    let most = if burst_took < Duration::from_secs(4) { 5 } else { 10 };
    assert!(
        (1..=most).contains(&burst),
        "20 commits in {burst_took:?} gave {burst} imports; logs: {:#?}",
        s.logs()
    );

    // Closing stdin ends the session, and the server exits cleanly.
    s.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit after stdin closed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; logs: {:#?}", s.logs());
}
