//! Import and export speed, each beside a floor measured in the same run:
//! a git import of 10,000 commits (floor: `git log` printing the same
//! fields), a second import with nothing new (floors: `git rev-parse HEAD`,
//! and gix opening the repository and reading HEAD), parsing a 1 MB legacy
//! status file (floor: reading it and splitting its lines), and exporting
//! the report for 1,200 work items (floors: the report's data without
//! rendering, and the raw reads it makes).
//!
//! `CARGO_TARGET_DIR=/root/.cache/waymark/target cargo bench --bench import -j2`

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;
use waymark::Tracker;
use waymark::ops::NewWorkItem;
use waymark::store::id::get_id;

fn main() {
    divan::main();
}

const COMMITS: usize = 10_000;

/// A repository of 10,000 commits on main, every tenth a `PR #n` commit,
/// built with `git fast-import`.
fn repo() -> &'static Path {
    static REPO: OnceLock<TempDir> = OnceLock::new();
    REPO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .current_dir(dir.path())
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        let mut stream = String::new();
        for i in 1..=COMMITS {
            let msg = if i % 10 == 0 {
                format!("PR #{i}: Change number {i}\n\nunit: {i}\nintegration: 3\n")
            } else {
                format!("commit {i}\n")
            };
            stream.push_str(&format!(
                "commit refs/heads/main\nmark :{i}\ncommitter T <t@example.com> {} +0000\ndata {}\n{msg}",
                1_700_000_000 + i * 60,
                msg.len()
            ));
            if i > 1 {
                stream.push_str(&format!("from :{}\n", i - 1));
            }
            stream.push('\n');
        }
        let mut child = Command::new("git")
            .current_dir(dir.path())
            .args(["fast-import", "--quiet"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        dir
    })
    .path()
}

#[divan::bench(sample_count = 5)]
fn git_log_floor_10k_commits() {
    let out = Command::new("git")
        .current_dir(repo())
        .args(["log", "--format=%H%x00%ct%x00%B%x00"])
        .output()
        .unwrap();
    divan::black_box(out.stdout.len());
}

#[divan::bench(sample_count = 5)]
fn import_git_10k_commits(bencher: divan::Bencher) {
    bencher
        .with_inputs(|| {
            let dir = tempfile::tempdir().unwrap();
            let t = Tracker::open(dir.path()).unwrap();
            (dir, t)
        })
        .bench_local_values(|(dir, t)| {
            let r = t.import_git("bench", repo()).unwrap();
            assert_eq!(r.commits_read, COMMITS);
            (dir, t)
        });
}

#[divan::bench(sample_count = 20)]
fn floor_git_rev_parse_head() {
    let out = Command::new("git")
        .current_dir(repo())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    divan::black_box(out.stdout.len());
}

#[divan::bench(sample_count = 20)]
fn floor_gix_open_read_head() {
    let repo = gix::discover(repo()).unwrap();
    let head = repo.head().unwrap();
    divan::black_box(head.id().map(|id| id.detach()));
}

#[divan::bench(sample_count = 20)]
fn import_git_nothing_new(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let t = Tracker::open(dir.path()).unwrap();
    t.import_git("bench", repo()).unwrap();
    bencher.bench_local(|| {
        let r = t.import_git("bench", repo()).unwrap();
        assert_eq!(r.commits_read, 0);
    });
}

fn legacy_file(bytes: usize) -> String {
    let mut s = String::from("# Project Status - 2025-10-10T12:00:00Z\n\n## Active Work Items (many)\n");
    let mut i = 0;
    while s.len() < bytes {
        i += 1;
        s.push_str(&format!(
            "### Task number {i} (task)\n- **Status**: active\n- **Created**: 2025-09-01 09:00:00 UTC\n- **Branch**: 1{i}-task\n\nSome prose between entries.\n"
        ));
    }
    s
}

#[divan::bench(sample_count = 20)]
fn parse_legacy_1mb(bencher: divan::Bencher) {
    let text = legacy_file(1 << 20);
    bencher.bench(|| divan::black_box(waymark::import::markdown::parse_report(&text).0));
}

#[divan::bench(sample_count = 20)]
fn floor_read_lines_1mb(bencher: divan::Bencher) {
    let text = legacy_file(1 << 20);
    bencher.bench(|| divan::black_box(text.lines().filter(|l| l.starts_with("###")).count()));
}

/// The file read from disk, then split: what any parser pays first.
#[divan::bench(sample_count = 20)]
fn floor_read_file_and_lines_1mb(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.md");
    std::fs::write(&path, legacy_file(1 << 20)).unwrap();
    bencher.bench(|| {
        let text = std::fs::read_to_string(&path).unwrap();
        divan::black_box(text.lines().filter(|l| l.starts_with("###")).count())
    });
}

/// A store of 1,200 work items: 40 research items of 29 tasks each.
fn report_store() -> &'static (TempDir, Tracker) {
    static STORE: OnceLock<(TempDir, Tracker)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let t = Tracker::open(dir.path()).unwrap();
        for p in 0..40 {
            let project = t
                .create_work_item(
                    "bench",
                    NewWorkItem {
                        item_type: "research".into(),
                        title: format!("Area {p}"),
                        ..Default::default()
                    },
                )
                .unwrap();
            for k in 0..29 {
                t.create_work_item(
                    "bench",
                    NewWorkItem {
                        item_type: "task".into(),
                        title: format!("Task {p}.{k}"),
                        parent_id: Some(project.id.clone()),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
        }
        (dir, t)
    })
}

#[divan::bench(sample_count = 20)]
fn export_report_1200_items(bencher: divan::Bencher) {
    let (dir, t) = report_store();
    let out = dir.path().join(".project_status.md");
    bencher.bench(|| divan::black_box(t.export_markdown(None, &out).unwrap()));
}

/// The same report rendered to a string, not written.
#[divan::bench(sample_count = 20)]
fn render_report_1200_items(bencher: divan::Bencher) {
    let (_, t) = report_store();
    bencher.bench(|| divan::black_box(t.status_markdown(None).unwrap().len()));
}

/// The report's data, gathered but not rendered.
#[divan::bench(sample_count = 20)]
fn floor_report_data_1200_items(bencher: divan::Bencher) {
    let (_, t) = report_store();
    bencher.bench(|| divan::black_box(t.status_report().unwrap().work_items.len()));
}

/// The raw reads the report needs, each row's columns read and dropped:
/// nothing built, sorted or rendered.
#[divan::bench(sample_count = 20)]
fn floor_report_raw_reads_1200_items(bencher: divan::Bencher) {
    let (_, t) = report_store();
    bencher.bench(|| {
        t.store()
            .read(|tx| {
                let mut n = 0usize;
                let mut stmt = tx.prepare_cached(
                    "SELECT w.id, w.title, w.item_type, w.status, w.depth, w.created_at, w.branch_name, w.path
                     FROM work_items w
                     WHERE w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL
                     ORDER BY w.path",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    n += get_id(r, 0)?.len() + r.get_ref(1)?.as_str().map_or(0, str::len);
                }
                let mut stmt = tx.prepare_cached(
                    "SELECT name, status, metadata FROM vendors WHERE deleted_at IS NULL ORDER BY name_key",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    n += r.get_ref(0)?.as_str().map_or(0, str::len);
                }
                let mut stmt = tx.prepare_cached(
                    "SELECT id, deployed_at, metadata FROM deployments WHERE deleted_at IS NULL
                     ORDER BY deployed_at DESC, id DESC LIMIT 10",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    n += get_id(r, 0)?.len();
                }
                Ok(divan::black_box(n))
            })
            .unwrap()
    });
}
