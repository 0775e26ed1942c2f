//! Each way the real store once wedged or diverged under sync (issue 11),
//! replayed through the built binary against a real Postgres hub.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use waymark_sync::postgres::testing::{TestDatabase, block_on};
use waymark_sync::{Change, Dot, Hlc, ReplicaId, SCHEMA_VERSION, VersionVector};

/// This machine's time, in milliseconds since the epoch.
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A change another build pushes straight to the hub: `dot`'s
/// (replica, counter), made without seeing anything, at `millis`.
fn peer_change(
    dot: (ReplicaId, u64),
    collection: &str,
    record: &str,
    fields: Value,
    millis: u64,
    author: &str,
) -> Change {
    Change {
        collection: collection.into(),
        record_id: record.into(),
        dot: Dot {
            replica: dot.0,
            counter: dot.1,
        },
        context: VersionVector::new(),
        fields: serde_json::from_value(fields).unwrap(),
        hlc: Hlc::from_parts(millis, 0),
        author: author.into(),
        schema_version: SCHEMA_VERSION,
    }
}

/// The binary, pointed at one hub and space.
struct Cli {
    hub: String,
    space: String,
}

impl Cli {
    fn new(db: &TestDatabase, space: &str) -> Cli {
        Cli {
            hub: super::sync::end_to_end::url_of(db),
            space: space.to_owned(),
        }
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        // WAYMARK_TEST_BIN runs these scenarios against another build (an
        // older release, to see each of them fail there).
        let bin = std::env::var_os("WAYMARK_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_waymark").into());
        Command::new(bin)
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("WAYMARK_HUB_URL", &self.hub)
            .env("WAYMARK_SPACE", &self.space)
            .output()
            .expect("run waymark")
    }

    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, dir: &Path, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(dir, args)).expect("JSON")
    }

    /// Sync every store, twice round, then check they print the same export
    /// and the same conflicts; returns the export.
    fn converge(&self, dirs: &[&Path]) -> Value {
        for _ in 0..2 {
            for d in dirs {
                self.ok(d, &["sync"]);
            }
        }
        let exports: Vec<String> = dirs.iter().map(|d| self.ok(d, &["export", "json"])).collect();
        let conflicts: Vec<String> = dirs.iter().map(|d| self.ok(d, &["conflicts", "--json"])).collect();
        for i in 1..dirs.len() {
            assert_eq!(exports[0], exports[i], "store {i} exports differently");
            assert_eq!(conflicts[0], conflicts[i], "store {i} lists other conflicts");
        }
        for d in dirs {
            let verify = self.run(d, &["verify"]);
            assert!(
                verify.status.success(),
                "verify: {}",
                String::from_utf8_lossy(&verify.stdout)
            );
        }
        serde_json::from_str(&exports[0]).unwrap()
    }
}

/// Copy a store directory as a person would (`cp -r`).
fn copy_store(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Put a snapshot of a store back in place, as a machine snapshot restores
/// it: the files it holds overwritten where they are (same inodes), the
/// files it did not hold gone.
fn restore_in_place(snapshot: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !snapshot.join(entry.file_name()).exists() {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    copy_store(snapshot, dir);
}

fn created_id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn title_of(export: &Value, id: &str) -> String {
    export["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .map(|w| w["title"].as_str().unwrap().to_owned())
        .expect("the item")
}

/// A store copied with an unpushed change, the same field then written in
/// the copy (the original writes another field): both push the shared
/// change as the same bytes, nothing is refused, and the stores converge,
/// the copy's later title over the shared one, the original's priority
/// beside it.
#[test]
fn a_copied_store_with_unpushed_changes_keeps_syncing() {
    let db = block_on(TestDatabase::create("wedge_copy"));
    let cli = Cli::new(&db, "copy");
    let (a, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, c) = (a.path(), c.path());
    let id = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    cli.ok(a, &["sync"]);
    cli.ok(a, &["item", "update", &id, "--version", "1", "--title", "unpushed"]);
    copy_store(a, c);
    cli.ok(
        c,
        &["item", "update", &id, "--version", "2", "--title", "from the copy"],
    );
    cli.ok(a, &["item", "update", &id, "--version", "2", "--priority", "0"]);
    cli.ok(c, &["sync"]);
    cli.ok(a, &["sync"]);
    let export = cli.converge(&[a, c]);
    assert_eq!(title_of(&export, &id), "from the copy");
    let item = export["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(item["priority"], 0);
    // Both then edit the title apart: the one true conflict.
    for (d, title) in [(a, "again here"), (c, "again there")] {
        let version = cli.json(d, &["item", "show", &id, "--json"])["item"]["version"].to_string();
        cli.ok(d, &["item", "update", &id, "--version", &version, "--title", title]);
    }
    cli.converge(&[a, c]);
    let conflicts = cli.ok(a, &["conflicts", "--json"]);
    assert!(
        conflicts.contains("again here") && conflicts.contains("again there"),
        "{conflicts}"
    );
}

/// A store that synced with one space, pointed at another (`init --space`,
/// or a store restored and reused elsewhere): it takes a new replica id and
/// publishes its whole state there, conflicts included, with no manual step.
#[test]
fn a_store_pointed_at_a_new_space_publishes_its_state_there() {
    let db = block_on(TestDatabase::create("wedge_space"));
    let (one, two) = (Cli::new(&db, "one"), Cli::new(&db, "two"));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let [a, b, c] = [dirs[0].path(), dirs[1].path(), dirs[2].path()];
    let id = created_id(&one.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    one.ok(a, &["sync"]);
    one.ok(b, &["sync"]);
    one.ok(a, &["item", "update", &id, "--version", "1", "--title", "from a"]);
    one.ok(b, &["item", "update", &id, "--version", "1", "--title", "from b"]);
    one.converge(&[a, b]);
    one.ok(a, &["vendor", "create", "EPSON"]);
    let before = one.ok(a, &["export", "json"]);

    // Now the other space: a publishes there, c (new) receives all of it.
    two.ok(a, &["sync"]);
    two.ok(c, &["sync"]);
    let export = two.converge(&[a, c]);
    assert_eq!(
        two.ok(a, &["export", "json"]),
        before,
        "moving changed nothing in the store"
    );
    assert_eq!(export["vendors"].as_array().unwrap().len(), 1);
    let conflicts = two.ok(c, &["conflicts", "--json"]);
    assert!(
        conflicts.contains("from a") && conflicts.contains("from b"),
        "the conflict came along: {conflicts}"
    );
    // Back in the first space, a's new writes still reach b.
    let version = two.json(a, &["item", "show", &id, "--json"])["item"]["version"].to_string();
    two.ok(a, &["item", "update", &id, "--version", &version, "--title", "settled"]);
    one.ok(a, &["sync"]);
    let export = one.converge(&[a, b]);
    assert_eq!(title_of(&export, &id), "settled");
}

/// A store restored from a backup at its own path (a new file there): it
/// takes a new replica id, so its next changes never collide with those the
/// store made after the backup, which it receives from the hub instead.
#[test]
fn a_store_restored_from_a_backup_keeps_syncing() {
    let db = block_on(TestDatabase::create("wedge_restore"));
    let cli = Cli::new(&db, "restore");
    let (a, b, backup) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b, backup) = (a.path(), b.path(), backup.path());
    let id = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    cli.ok(a, &["sync"]);
    copy_store(a, backup);
    cli.ok(
        a,
        &["item", "update", &id, "--version", "1", "--title", "after the backup"],
    );
    cli.ok(a, &["sync"]);
    // Restored: the files are replaced by the backup's.
    for entry in std::fs::read_dir(a).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    copy_store(backup, a);
    cli.ok(a, &["item", "create", "--type", "task", "--title", "after the restore"]);
    cli.ok(a, &["sync"]);
    let export = cli.converge(&[a, b]);
    assert_eq!(title_of(&export, &id), "after the backup");
    assert_eq!(export["work_items"].as_array().unwrap().len(), 2);
}

/// Changes a newer build pushes — a collection this build does not know, a
/// field it does not know, a status word it does not know — and floats that
/// need all 17 digits: every store keeps syncing, keeps them (the unknown
/// collection opaque), and stores converge byte for byte.
#[test]
fn changes_from_a_newer_build_never_stop_a_store() {
    use waymark_sync::Hub;
    let db = block_on(TestDatabase::create("wedge_newer"));
    let cli = Cli::new(&db, "newer");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let id = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    cli.ok(
        a,
        &[
            "vendor",
            "create",
            "EPSON",
            "--metadata",
            r#"{"ratio":0.30000000000000004,"tiny":1.0000000000000002e-7}"#,
        ],
    );
    cli.ok(a, &["sync"]);
    let newer = ReplicaId::mint();
    let change = |counter, collection, record: &str, fields, at| {
        peer_change((newer, counter), collection, record, fields, at, "newer build")
    };
    let then = 1_700_000_000_000;
    let pushed = vec![
        change(1, "labels", "l1", json!({"name": "urgent", "color": "red"}), then),
        change(2, "work_items", &id, json!({"x_future": {"nested": [1, 2.5]}}), then),
        // Concurrent with the item's creation, and later: it wins the register.
        change(3, "work_items", &id, json!({"status": "bogus"}), now_millis()),
    ];
    block_on(async { db.hub().await.push("newer", &pushed).await }).expect("push as a newer build");
    cli.ok(a, &["sync"]);
    cli.ok(b, &["sync"]);
    let export = cli.converge(&[a, b]);
    let text = export.to_string();
    assert!(
        text.contains("0.30000000000000004") && text.contains("1.0000000000000002e-7"),
        "{text}"
    );
    // The stores still answer every list, and keep writing and syncing.
    for d in [a, b] {
        cli.ok(d, &["item", "list"]);
        cli.ok(d, &["ready"]);
        cli.ok(d, &["status"]);
    }
    // The unknown status word is kept, and flagged until a known one is set.
    let conflicts = cli.ok(a, &["conflicts", "--json"]);
    assert!(
        conflicts.contains("unknown_value") && conflicts.contains("bogus"),
        "{conflicts}"
    );
    let version = cli.json(b, &["item", "show", &id, "--json"])["item"]["version"].to_string();
    cli.ok(b, &["item", "update", &id, "--version", &version, "--status", "active"]);
    cli.ok(b, &["item", "create", "--type", "task", "--title", "still syncing"]);
    let export = cli.converge(&[a, b]);
    assert_eq!(export["work_items"].as_array().unwrap().len(), 2);
    assert!(!cli.ok(a, &["conflicts", "--json"]).contains("unknown_value"));
    for d in [a, b] {
        assert!(cli.run(d, &["verify"]).status.success(), "verify finds nothing");
    }
}

/// A peer whose clock is ten years ahead: its changes merge, but this
/// store's clock does not follow it, so every later local write still
/// carries this machine's time (and old work can still be archived); the
/// sync health names the peer.
#[test]
fn a_peer_years_ahead_does_not_pin_this_store_in_the_future() {
    use waymark_sync::Hub;
    let db = block_on(TestDatabase::create("wedge_clock"));
    let cli = Cli::new(&db, "clock");
    let a = tempfile::tempdir().unwrap();
    let a = a.path();
    let id = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    cli.ok(a, &["sync"]);
    let ten_years = 10 * 365 * 86_400_000u64;
    let future = peer_change(
        (ReplicaId::mint(), 1),
        "work_items",
        &id,
        json!({"description": "from the future"}),
        now_millis() + ten_years,
        "laptop with a dead battery",
    );
    block_on(async { db.hub().await.push("clock", &[future]).await }).expect("push");
    cli.ok(a, &["sync"]);
    let fresh = cli.json(a, &["item", "create", "--type", "task", "--title", "after", "--json"]);
    let year = |t: &Value| t.as_str().unwrap()[..4].parse::<i32>().unwrap();
    let this_year = year(&cli.json(a, &["item", "show", &id, "--json"])["item"]["created_at"]);
    assert!(
        year(&fresh["updated_at"]) <= this_year + 1,
        "a new write is stamped {}",
        fresh["updated_at"]
    );
    let health = cli.json(a, &["config", "show", "--json"]);
    let warning = health["sync"]["clock_warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("laptop with a dead battery") && warning.contains("years"),
        "{health}"
    );
}

/// Two stores change an item's type and its metadata apart, each valid
/// (one makes a task a project, the other gives the task a
/// `target_quarter` no project would take): the merged record is a project
/// with a malformed quarter. It still takes every update that leaves type
/// and metadata alone, and an update of its metadata must make it whole.
#[test]
fn a_record_merged_invalid_still_takes_updates() {
    let db = block_on(TestDatabase::create("wedge_type"));
    let cli = Cli::new(&db, "type");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let id = created_id(&cli.json(
        a,
        &[
            "item",
            "create",
            "--type",
            "task",
            "--title",
            "t",
            "--metadata",
            r#"{"description":"d"}"#,
            "--json",
        ],
    ));
    cli.ok(a, &["sync"]);
    cli.ok(b, &["sync"]);
    cli.ok(a, &["item", "update", &id, "--version", "1", "--type", "project"]);
    cli.ok(
        b,
        &[
            "item",
            "update",
            &id,
            "--version",
            "1",
            "--metadata",
            r#"{"target_quarter":"soon"}"#,
        ],
    );
    cli.converge(&[a, b]);
    let item = cli.json(a, &["item", "show", &id, "--json"])["item"].clone();
    assert_eq!(item["item_type"], "project");
    assert_eq!(item["metadata"]["target_quarter"], "soon");
    let version = item["version"].to_string();
    cli.ok(
        a,
        &[
            "item",
            "update",
            &id,
            "--version",
            &version,
            "--title",
            "still editable",
        ],
    );
    let version = (item["version"].as_i64().unwrap() + 1).to_string();
    let refused = cli.run(
        a,
        &[
            "item",
            "update",
            &id,
            "--version",
            &version,
            "--metadata",
            r#"{"owner":"x"}"#,
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("target_quarter"));
    cli.ok(
        a,
        &[
            "item",
            "update",
            &id,
            "--version",
            &version,
            "--metadata",
            r#"{"target_quarter":"2027-Q1"}"#,
        ],
    );
}

/// A machine restored from a snapshot: the store file is put back in place
/// (same path, same file, same machine), so nothing local tells it apart.
/// Its next change reuses a dot the hub holds from before the restore; the
/// hub refuses it, the store moves its changes since to a new replica id
/// and syncs on; the write made before the restore and the one made after
/// are kept as the concurrent edits they are.
#[test]
fn a_store_restored_in_place_from_a_snapshot_keeps_syncing() {
    let db = block_on(TestDatabase::create("wedge_snapshot"));
    let cli = Cli::new(&db, "snapshot");
    let (a, b, snapshot) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b, snapshot) = (a.path(), b.path(), snapshot.path());
    let id = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "first", "--json"]));
    let other = created_id(&cli.json(a, &["item", "create", "--type", "task", "--title", "other", "--json"]));
    cli.ok(a, &["sync"]);
    copy_store(a, snapshot);
    cli.ok(
        a,
        &["item", "update", &id, "--version", "1", "--title", "before the restore"],
    );
    cli.ok(a, &["sync"]);
    // Put back in place: the same files, overwritten (same inodes).
    restore_in_place(snapshot, a);
    cli.ok(
        a,
        &["item", "update", &id, "--version", "1", "--title", "after the restore"],
    );
    cli.ok(a, &["item", "update", &other, "--version", "1", "--priority", "0"]);
    cli.ok(a, &["sync"]);
    let export = cli.converge(&[a, b]);
    let conflicts = cli.ok(b, &["conflicts", "--json"]);
    assert!(
        conflicts.contains("before the restore") && conflicts.contains("after the restore"),
        "{conflicts}"
    );
    let other_item = export["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == other)
        .cloned();
    assert_eq!(other_item.unwrap()["priority"], 0);

    // Restored again, and this time it syncs before writing: it sees its own
    // id's later changes on the hub and takes a new id before it writes.
    restore_in_place(snapshot, a);
    cli.ok(a, &["sync"]);
    cli.ok(
        a,
        &[
            "item",
            "create",
            "--type",
            "task",
            "--title",
            "after the second restore",
        ],
    );
    cli.ok(a, &["sync"]);
    let export = cli.converge(&[a, b]);
    assert_eq!(export["work_items"].as_array().unwrap().len(), 3);
}
