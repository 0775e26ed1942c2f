//! The built binary, driven as a user would: commands, exit codes, errors on
//! stderr, and several processes on one store.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn waymark(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAYMARK_DATA_DIR")
        .output()
        .expect("run waymark")
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = waymark(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = waymark(dir, args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "a failure prints nothing on stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one sentence: {err}");
    err
}

#[test]
fn a_session_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let out = waymark(dir, &["init"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Initialized Waymark"));
    assert!(waymark(dir, &["init"]).status.success(), "init is idempotent");

    let p = ok_json(
        dir,
        &[
            "item",
            "create",
            "--type",
            "project",
            "--title",
            "Tracker",
            "--metadata",
            r#"{"description":"d"}"#,
            "--json",
        ],
    );
    let pid = p["id"].as_str().unwrap();
    assert_eq!(p["created_by"], "cli");
    let t = ok_json(
        dir,
        &[
            "item", "create", "--type", "task", "--title", "Store", "--parent", pid, "--json",
        ],
    );
    let tid = t["id"].as_str().unwrap();
    let u = ok_json(
        dir,
        &["item", "update", tid, "--version", "1", "--status", "blocked", "--json"],
    );
    assert_eq!(
        (u["status"].as_str(), u["version"].as_i64()),
        (Some("blocked"), Some(2))
    );
    let err = fails(dir, &["item", "update", tid, "--version", "1", "--title", "stale"]);
    assert!(err.contains("version 1") && err.contains("version 2"), "{err}");

    let shown = ok_json(dir, &["item", "show", pid, "--json"]);
    assert_eq!(shown["descendants"][0]["id"], tid);
    let listed = ok_json(dir, &["item", "list", "--type", "task", "--json"]);
    assert_eq!(listed["total_count"], 1);
    let ready = ok_json(dir, &["ready", "--json"]);
    assert_eq!(
        ready["rows"].as_array().unwrap().len(),
        1,
        "the blocked task is not ready"
    );

    ok_json(dir, &["vendor", "create", "EPSON", "--json"]);
    let v = ok_json(dir, &["vendor", "show", "epson", "--json"]);
    assert_eq!(v["status"], "broken");
    let v = ok_json(
        dir,
        &[
            "vendor",
            "update",
            "Epson",
            "--version",
            "1",
            "--status",
            "operational",
            "--json",
        ],
    );
    assert_eq!(v["version"], 2);
    let d1 = ok_json(
        dir,
        &[
            "deploy",
            "record",
            "--commit",
            &"c".repeat(40),
            "--pr",
            "3",
            "--title",
            "Ship",
            "--tests",
            "unit=5,integration=2",
            "--vendor",
            "epson",
            "--item",
            tid,
            "--json",
        ],
    );
    assert_eq!(d1["metadata"]["test_summary"]["unit"], 5);
    ok_json(dir, &["dep", "add", tid, pid, "--json"]);
    ok_json(dir, &["config", "set", "--context", "maintenance", "--json"]);
    ok_json(
        dir,
        &[
            "enhancement",
            "create",
            "--title",
            "Sync",
            "--quarter",
            "2027-Q1",
            "--json",
        ],
    );

    let status = waymark(dir, &["status"]);
    let md = String::from_utf8(status.stdout).unwrap();
    assert!(
        md.contains("## Operational Vendors (1/1)") && md.contains("PR #3"),
        "{md}"
    );
    let summary = ok_json(dir, &["status", "--json"]);
    assert_eq!(summary["format"], "json");
    assert_eq!(summary["summary"]["vendors"]["operational"], 1);
    let report = ok_json(dir, &["status", "--json", "--format", "markdown"]);
    assert!(
        report["markdown"]
            .as_str()
            .unwrap()
            .contains("## Operational Vendors (1/1)"),
        "{report}"
    );
    assert!(
        !waymark(dir, &["status", "--format", "markdown"]).status.success(),
        "--format needs --json"
    );

    // Export, import into a new store, export again: the same bytes.
    let exported = waymark(dir, &["export", "json"]).stdout;
    let file = d.path().join("export.json");
    std::fs::write(&file, &exported).unwrap();
    let other = tempfile::tempdir().unwrap();
    let out = waymark(other.path(), &["import", "json", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(waymark(other.path(), &["export", "json"]).stdout, exported);
}

#[test]
fn bad_input_is_one_sentence_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    waymark(dir, &["init"]);
    let before = waymark(dir, &["export", "json"]).stdout;
    let nil = uuid::Uuid::nil().to_string();
    for (args, needle) in [
        (
            vec!["item", "create", "--type", "epic", "--title", "x"],
            "invalid --type",
        ),
        (vec!["item", "create", "--type", "task", "--title", " "], "title"),
        (
            vec![
                "item",
                "create",
                "--type",
                "task",
                "--title",
                "x",
                "--metadata",
                "{not json",
            ],
            "metadata",
        ),
        (
            vec!["item", "create", "--type", "task", "--title", "x", "--metadata", "[1]"],
            "metadata",
        ),
        (vec!["item", "show", &nil], "not found"),
        (vec!["item", "show", "zzz"], "not a UUID"),
        (vec!["vendor", "show", "nobody"], "not found"),
        (vec!["vendor", "create", "no/slash"], "name"),
        (vec!["deploy", "record", "--commit", "xyz"], "invalid --commit"),
        (
            vec!["deploy", "record", "--commit", &"a".repeat(40), "--tests", "unit=lots"],
            "tests",
        ),
        (vec!["dep", "add", &nil, &nil], "itself"),
        (vec!["import", "json", "/nonexistent/file.json"], "cannot read"),
        (vec!["item", "list", "--limit", "1000"], "limit"),
    ] {
        let err = fails(dir, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A huge input is quoted short: the error never echoes it back.
    let huge = "x".repeat(100_000);
    for args in [
        vec!["item", "show", huge.as_str()],
        vec!["item", "create", "--type", huge.as_str(), "--title", "x"],
        vec!["vendor", "show", huge.as_str()],
    ] {
        let err = fails(dir, &args);
        assert!(err.len() < 1_200, "{} bytes: {}", err.len(), &err[..200]);
    }
    assert_eq!(waymark(dir, &["export", "json"]).stdout, before);
}

#[test]
fn reading_a_missing_store_says_how_to_make_one() {
    let d = tempfile::tempdir().unwrap();
    let err = fails(&d.path().join("nowhere"), &["status"]);
    assert!(err.contains("waymark init"), "{err}");
    assert!(!d.path().join("nowhere").exists(), "a read creates nothing");
}

#[test]
fn the_store_is_found_walking_up_and_kept_out_of_git() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(repo)
            .status()
            .unwrap()
            .success()
    );
    let sub = repo.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let run = |cwd: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(args)
            .current_dir(cwd)
            .env_remove("WAYMARK_DATA_DIR")
            .output()
            .unwrap()
    };
    assert!(run(&sub, &["init"]).status.success());
    assert!(
        repo.join(".waymark/waymark.db").exists(),
        "init in a subdirectory uses the git root"
    );
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|l| l == ".waymark/"));
    assert!(
        run(&sub, &["item", "create", "--type", "task", "--title", "found"])
            .status
            .success()
    );
    let listed = run(repo, &["item", "list", "--json"]);
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v["total_count"], 1);
}

#[test]
fn a_store_made_by_its_first_write_is_kept_out_of_git_too() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(repo)
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["item", "create", "--type", "task", "--title", "first"])
        .current_dir(repo)
        .env_remove("WAYMARK_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|l| l == ".waymark/"), "{exclude}");
}

/// Two processes creating 500 work items each, at once, on one store: all
/// 1,000 land, none is lost, and nobody sees "database is locked".
#[test]
fn two_processes_write_one_store_at_once() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    waymark(&dir, &["init"]);
    // Published to a hub: every write goes to the outbox.
    crate::publish(&waymark::Tracker::open(&dir).unwrap());
    let script = |tag: &str| {
        format!(
            "for i in $(seq 1 500); do {bin} --data-dir {dir} item create --type task --title \"{tag} $i\" >/dev/null || exit 1; done",
            bin = env!("CARGO_BIN_EXE_waymark"),
            dir = dir.display()
        )
    };
    let children: Vec<_> = ["left", "right"]
        .iter()
        .map(|tag| {
            Command::new("sh")
                .arg("-c")
                .arg(script(tag))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("locked"),
            "a writer failed: {err}"
        );
    }
    let listed = ok_json(&dir, &["item", "list", "--limit", "1", "--json"]);
    assert_eq!(listed["total_count"], 1000);
    let ready = ok_json(&dir, &["ready", "--limit", "1", "--json"]);
    assert_eq!(ready["total_count"], 1000);
    // Every write reached the outbox with a distinct, dense counter.
    let conn = rusqlite::Connection::open(dir.join("waymark.db")).unwrap();
    let (n, max): (i64, i64) = conn
        .query_row("SELECT count(*), max(counter) FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, max), (1000, 1000));
}

/// Two processes update one item with the same version at the same moment:
/// exactly one wins, the other gets the version error.
#[test]
fn concurrent_updates_with_one_version_let_exactly_one_win() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    for round in 0..10 {
        let item = ok_json(
            &dir,
            &[
                "item",
                "create",
                "--type",
                "task",
                "--title",
                &format!("contested {round}"),
                "--json",
            ],
        );
        let id = item["id"].as_str().unwrap().to_owned();
        let spawned: Vec<_> = ["one", "two"]
            .iter()
            .map(|title| {
                Command::new(env!("CARGO_BIN_EXE_waymark"))
                    .arg("--data-dir")
                    .arg(&dir)
                    .args(["item", "update", &id, "--version", "1", "--title", title])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outcomes: Vec<Output> = spawned.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let wins = outcomes.iter().filter(|o| o.status.success()).count();
        assert_eq!(wins, 1, "round {round}: exactly one update wins");
        let loser = outcomes.iter().find(|o| !o.status.success()).unwrap();
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(err.contains("you sent version 1, but it is at version 2"), "{err}");
        let now = ok_json(&dir, &["item", "show", &id, "--json"]);
        assert_eq!(now["item"]["version"], 2);
    }
}

/// `waymark verify` rebuilds the projection from the registers: a store
/// written through the tools agrees (exit 0); a row changed behind the
/// store's back is named, and the command exits 1 (`--json` too).
#[test]
fn verify_finds_a_row_that_differs_from_its_registers() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let parent = ok_json(
        dir,
        &["item", "create", "--type", "task", "--title", "parent", "--json"],
    );
    let pid = parent["id"].as_str().unwrap();
    let child = ok_json(
        dir,
        &[
            "item", "create", "--type", "task", "--title", "child", "--parent", pid, "--json",
        ],
    );
    let cid = child["id"].as_str().unwrap();
    let out = waymark(dir, &["verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("agrees"));
    assert_eq!(
        ok_json(dir, &["verify", "--json"])["differences"],
        serde_json::json!([])
    );

    // Changed with raw SQL: the child's depth, the parent's blocker count,
    // a conflict nobody derived, and a title behind the full-text index's
    // back (the row is the title's register, so only the index disagrees).
    let conn = rusqlite::Connection::open(dir.join("waymark.db")).unwrap();
    conn.execute_batch(
        "UPDATE work_items SET depth = 3 WHERE depth = 1;
         UPDATE work_items SET open_blockers = 2 WHERE depth = 0;
         INSERT INTO conflicts (collection, record_id, field, kind) VALUES ('work_items', 'nobody', 'title', 'value');",
    )
    .unwrap();
    // Index the items first (verify would index what is noted as pending).
    assert_eq!(
        ok_json(dir, &["item", "list", "--text", "parent", "--json"])["total_count"],
        1
    );
    conn.execute("UPDATE work_items SET title = 'renamed' WHERE title = 'parent'", [])
        .unwrap();
    drop(conn);
    let out = waymark(dir, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("work_items/{cid}: depth is 3 here, 1 rebuilt")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("work_items/{pid}: open_blockers is 2 here, 0 rebuilt")),
        "{printed}"
    );
    assert!(printed.contains("work_items/nobody/title (value)"), "{printed}");
    assert!(
        printed.contains("work_items_fts: the full-text index differs"),
        "{printed}"
    );
    assert_eq!(printed.trim_end().lines().count(), 4, "{printed}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: 4 difference(s)"));
    let out = waymark(dir, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["differences"].as_array().unwrap().len(), 4, "{doc:#}");
}

/// `config.toml` can hold the hub password: `init` writes it readable by
/// its owner only, and a command that loads a readable copy makes it so.
#[test]
fn the_config_file_holding_the_hub_password_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let config = dir.join("config.toml");
    let mode = || std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    let out = waymark(
        dir,
        &[
            "init",
            "--hub",
            "postgres://u:hunter2@127.0.0.1:1/db",
            "--space",
            "team",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
    assert_eq!(mode(), 0o600);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = waymark(dir, &["init"]);
    assert!(out.status.success());
    assert_eq!(mode(), 0o600, "a readable config is tightened when loaded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0600") && !stderr.contains("hunter2"), "{stderr}");
}

/// The command line is a person's own: it reads and writes the paths it is
/// given, inside the repository or not (the MCP tools are confined).
#[test]
fn the_command_line_exports_where_it_is_told() {
    let d = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out_file = elsewhere.path().join("report.md");
    assert!(waymark(d.path(), &["init"]).status.success());
    let out = waymark(d.path(), &["export", "markdown", "--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out_file.is_file());
}

/// `waymark watch` prints a JSON line per change made by another process,
/// the same answer as `wait_for_changes`; `--once` stops after the first;
/// `--once --timeout` prints an empty answer when nothing changed; a bad
/// cursor is one sentence.
#[test]
fn watch_prints_changes_as_json_lines() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok_json(d, &["vendor", "create", "First", "--json"]);
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data-dir")
        .arg(d)
        .args(["watch", "--collections", "vendors"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok_json(
        d,
        &[
            "item",
            "create",
            "--type",
            "project",
            "--title",
            "Filtered out",
            "--metadata",
            r#"{"description":"d"}"#,
            "--json",
        ],
    );
    let second = ok_json(d, &["vendor", "create", "Second", "--json"]);
    let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line["changes"].as_array().unwrap().len(), 1, "{line}");
    assert_eq!(line["changes"][0]["id"], second["id"]);
    assert_eq!(line["changes"][0]["collection"], "vendors");
    let third = ok_json(d, &["vendor", "create", "Third", "--json"]);
    let line2: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line2["changes"][0]["id"], third["id"]);
    assert!(
        line2["cursor"].as_str().unwrap().parse::<i64>().unwrap()
            > line["cursor"].as_str().unwrap().parse::<i64>().unwrap()
    );
    let _ = watcher.kill();
    let _ = watcher.wait();

    // From a cursor with changes after it: at once, and stop.
    let cursor = line["cursor"].as_str().unwrap();
    let once = ok_json(d, &["watch", "--cursor", cursor, "--once"]);
    assert_eq!(once["changes"][0]["id"], third["id"]);
    let quiet = ok_json(
        d,
        &[
            "watch",
            "--cursor",
            once["cursor"].as_str().unwrap(),
            "--once",
            "--timeout",
            "0",
        ],
    );
    assert_eq!(quiet["changes"], serde_json::json!([]));
    let err = fails(d, &["watch", "--cursor", "yesterday"]);
    assert!(err.contains("cursor"), "{err}");
}

/// `waymark board` prints the board's URL on a free loopback port and
/// serves it there; it refuses a non-loopback address.
#[test]
fn board_prints_its_url_and_serves_it() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = ok_json(
        d,
        &[
            "item",
            "create",
            "--type",
            "project",
            "--title",
            "On the board",
            "--metadata",
            r#"{"description":"d"}"#,
            "--json",
        ],
    );
    let err = fails(d, &["board", "--addr", "0.0.0.0:0"]);
    assert!(err.contains("loopback"), "{err}");
    let mut board = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data-dir")
        .arg(d)
        .arg("board")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(board.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let addr = url
        .trim()
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("a URL: {url:?}"))
        .to_owned();
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        let status: u16 = page.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, page)
    };
    let (status, page) = get("/tree");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("On the board"), "{page}");
    // One item's tree, and addresses that name none: refused, not echoed.
    let id = project["id"].as_str().unwrap();
    let (status, page) = get(&format!("/tree?root={id}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("whole tree") && page.contains("On the board"), "{page}");
    for (path, expected) in [
        ("/tree?root=%3Cscript%3Ealert(1)%3C/script%3E", 404),
        ("/tree?root=00000000-0000-0000-0000-000000000000", 404),
        ("/tree?from=-1", 400),
        ("/tree?from=99999999999999999999999", 400),
    ] {
        let (status, page) = get(path);
        assert_eq!(status, expected, "{path}: {page}");
        let body = page.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert!(!body.contains("script") && !body.contains("00000000"), "{path}: {page}");
    }
    let (status, page) = get("/tree?from=5");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No more top-level items"), "{page}");
    let _ = board.kill();
    let _ = board.wait();
}
