//! The change feed through the operations: `changes_since` and
//! `wait_for_changes` (the MCP tool, `waymark watch` and the board read the
//! same), over real SQLite stores; pulled changes through the in-memory hub.

use std::time::{Duration, Instant};

use waymark::Tracker;
use waymark::ops::{NewVendor, WaitForChanges, WorkItemUpdate};

use crate::{new_item, tracker};

fn since(t: &Tracker, cursor: &str) -> waymark::ops::Changes {
    t.changes_since(&WaitForChanges {
        cursor: Some(cursor.into()),
        ..Default::default()
    })
    .unwrap()
}

fn ids(c: &waymark::ops::Changes) -> Vec<&str> {
    c.changes.iter().map(|c| c.id.as_str()).collect()
}

#[test]
fn each_changed_record_is_listed_once_after_the_cursor() {
    let (_d, t) = tracker();
    let start = t.changes_since(&WaitForChanges::default()).unwrap();
    assert!(start.changes.is_empty());
    assert_eq!(start.cursor, "0");

    let project = t.create_work_item("a", new_item("project", "P", None)).unwrap();
    let task = t
        .create_work_item("a", new_item("task", "T", Some(&project.id)))
        .unwrap();
    let vendor = t
        .create_vendor(
            "a",
            NewVendor {
                name: "acme".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let after_creates = since(&t, &start.cursor);
    assert_eq!(ids(&after_creates), [&project.id, &task.id, &vendor.id]);
    let first = &after_creates.changes[0];
    assert_eq!(
        (
            first.collection.as_str(),
            first.item_type.as_deref(),
            first.status.as_deref(),
            first.title.as_deref()
        ),
        ("work_items", Some("project"), Some("active"), Some("P"))
    );
    assert_eq!(after_creates.changes[2].collection, "vendors");
    assert!(after_creates.changes[2].item_type.is_none());
    assert!(
        since(&t, &after_creates.cursor).changes.is_empty(),
        "nothing after the head"
    );

    // The project changes twice: listed once, after the vendor, as it is now.
    for (i, title) in ["P1", "P2"].into_iter().enumerate() {
        t.update_work_item(
            "a",
            WorkItemUpdate {
                id: project.id.clone(),
                version: project.version + i as i64,
                title: Some(title.into()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let later = since(&t, &after_creates.cursor);
    assert_eq!(ids(&later), [&project.id]);
    assert_eq!(later.changes[0].title.as_deref(), Some("P2"));
    assert_eq!(ids(&since(&t, &start.cursor)), [&task.id, &vendor.id, &project.id]);

    // The feed holds one row per record, however many changes were written.
    let rows: i64 = t
        .store()
        .read(|c| Ok(c.query_row("SELECT count(*) FROM change_feed", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(rows, 3);

    // Filters: collections, and a subtree.
    let only_vendors = t
        .changes_since(&WaitForChanges {
            cursor: Some(start.cursor.clone()),
            collections: Some(vec!["vendors".into()]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&only_vendors), [&vendor.id]);
    assert_eq!(
        only_vendors.cursor, later.cursor,
        "the cursor passes what the filter left out"
    );
    let other = t.create_work_item("a", new_item("project", "Q", None)).unwrap();
    let under = t
        .changes_since(&WaitForChanges {
            cursor: Some(start.cursor.clone()),
            under: Some(project.id.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&under), [&task.id, &project.id], "not {}", other.id);
}

#[test]
fn a_long_backlog_comes_in_pages() {
    let (_d, t) = tracker();
    for i in 0..250 {
        t.create_work_item("a", new_item("project", &format!("P{i}"), None))
            .unwrap();
    }
    let mut cursor = "0".to_owned();
    let mut seen = Vec::new();
    loop {
        let page = since(&t, &cursor);
        assert!(page.changes.len() <= 100);
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 250);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
}

#[test]
fn bad_requests_are_refused_clearly() {
    let (_d, t) = tracker();
    let ask = |input: WaitForChanges| t.wait_for_changes(&input).unwrap_err().to_string();
    let err = ask(WaitForChanges {
        cursor: Some("abc".into()),
        ..Default::default()
    });
    assert!(err.contains("not a cursor"), "{err}");
    let err = ask(WaitForChanges {
        cursor: Some("99".into()),
        ..Default::default()
    });
    assert!(err.contains("another store"), "{err}");
    for timeout in [61, -1] {
        let err = ask(WaitForChanges {
            cursor: Some("0".into()),
            timeout_s: Some(timeout),
            ..Default::default()
        });
        assert!(err.contains("0 to 60"), "{err}");
    }
    let err = ask(WaitForChanges {
        collections: Some(vec!["widgets".into()]),
        ..Default::default()
    });
    assert!(err.contains("work_items, dependencies"), "{err}");
    let err = ask(WaitForChanges {
        under: Some(uuid_nil()),
        ..Default::default()
    });
    assert!(err.contains("not found") || err.contains("no work item"), "{err}");
}

fn uuid_nil() -> String {
    "00000000-0000-0000-0000-000000000001".into()
}

/// A waiter wakes on a write of its own process at once, and on a write of
/// another process (another store handle on the same file: its own writer
/// and signal) within the poll interval; with nothing written it waits out
/// its timeout.
#[test]
fn a_waiter_wakes_on_a_write_here_or_in_another_process() {
    let (dir, t) = tracker();
    let cursor = t.changes_cursor().unwrap();

    let started = Instant::now();
    let quiet = t
        .wait_for_changes(&WaitForChanges {
            cursor: Some(cursor.clone()),
            timeout_s: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert!(quiet.changes.is_empty());
    assert_eq!(quiet.cursor, cursor);
    assert!(started.elapsed() >= Duration::from_millis(990));

    for other_process in [false, true] {
        let cursor = t.changes_cursor().unwrap();
        let writer = if other_process {
            Tracker::open(dir.path()).unwrap()
        } else {
            t.clone()
        };
        let waiter = {
            let t = t.clone();
            std::thread::spawn(move || {
                let answer = t
                    .wait_for_changes(&WaitForChanges {
                        cursor: Some(cursor),
                        timeout_s: Some(10),
                        ..Default::default()
                    })
                    .unwrap();
                (answer, Instant::now())
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let item = writer.create_work_item("b", new_item("project", "X", None)).unwrap();
        let written = Instant::now();
        let (answer, woke) = waiter.join().unwrap();
        assert_eq!(ids(&answer), [&item.id]);
        let latency = woke.duration_since(written);
        eprintln!("wait_for_changes woke {latency:?} after a write (other process: {other_process})");
        let bound = if other_process { 400 } else { 50 };
        assert!(latency < Duration::from_millis(bound), "{latency:?}");
    }
}

/// Changes pulled from the hub are in the feed like local ones, and wake a
/// waiter.
#[test]
fn pulled_changes_are_in_the_feed() {
    use waymark_sync::memory::MemoryHub;
    use waymark_sync::testing::block_on;
    use waymark_sync::{SyncOptions, sync_round};
    let (a, b, hub) = (
        crate::sync::SqliteReplica::new(),
        crate::sync::SqliteReplica::new(),
        MemoryHub::new(),
    );
    let round = |r: &crate::sync::SqliteReplica| {
        block_on(sync_round(r, &hub, "team", SyncOptions::default())).expect("round");
    };
    let cursor = b.tracker.changes_cursor().unwrap();
    let item = a
        .tracker
        .create_work_item("a", new_item("project", "From A", None))
        .unwrap();
    round(&a);
    let waiter = {
        let t = b.tracker.clone();
        let cursor = cursor.clone();
        std::thread::spawn(move || {
            t.wait_for_changes(&WaitForChanges {
                cursor: Some(cursor),
                timeout_s: Some(10),
                ..Default::default()
            })
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    round(&b);
    let answer = waiter.join().unwrap();
    assert_eq!(ids(&answer), [&item.id]);
    assert_eq!(answer.changes[0].title.as_deref(), Some("From A"));
}
