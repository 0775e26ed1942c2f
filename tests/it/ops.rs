//! The operations, through the library: every rule and error path, and
//! that a refused request changes nothing.

use serde_json::json;
use waymark::Error;
use waymark::ops::*;

use crate::{new_item, tracker};

const A: &str = "test";

fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    v.as_object().cloned()
}

/// The store's whole exported state, to prove a refusal changed nothing.
fn snapshot(t: &waymark::Tracker) -> serde_json::Value {
    t.export_json().unwrap()
}

#[test]
fn a_work_item_is_created_with_identity_and_defaults() {
    let (_d, t) = tracker();
    let p = t
        .create_work_item("claude-code", new_item("project", "  Waymark  ", None))
        .unwrap();
    assert_eq!(p.title, "Waymark");
    assert_eq!((p.status.as_str(), p.priority, p.depth, p.version), ("active", 2, 0, 1));
    assert_eq!(p.path, format!("/{}", p.id));
    assert_eq!(
        (p.created_by.as_str(), p.updated_by.as_str()),
        ("claude-code", "claude-code")
    );
    assert!(uuid::Uuid::parse_str(&p.id).is_ok());
    assert!(waymark::time::Timestamp::parse(&p.created_at).is_some());
    let s = t.create_work_item(A, new_item("session", "s", Some(&p.id))).unwrap();
    assert_eq!((s.depth, s.path.clone()), (1, format!("/{}/{}", p.id, s.id)));
    assert_eq!(s.parent_id.as_deref(), Some(p.id.as_str()));
}

#[test]
fn invalid_work_items_are_refused_with_the_field_named() {
    let (_d, t) = tracker();
    let before = snapshot(&t);
    let cases: Vec<(NewWorkItem, &str)> = vec![
        (
            NewWorkItem {
                item_type: "epic".into(),
                title: "x".into(),
                ..Default::default()
            },
            "item_type",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "  ".into(),
                ..Default::default()
            },
            "title",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".repeat(201),
                ..Default::default()
            },
            "title",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                description: Some("d".repeat(10_001)),
                ..Default::default()
            },
            "description",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                status: Some("doing".into()),
                ..Default::default()
            },
            "status",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                priority: Some(5),
                ..Default::default()
            },
            "priority",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                branch_name: Some("b".repeat(101)),
                ..Default::default()
            },
            "branch_name",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                commit_hash: Some("abc1234".into()),
                ..Default::default()
            },
            "commit_hash",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                pr_number: Some(0),
                ..Default::default()
            },
            "pr_number",
        ),
        (
            NewWorkItem {
                item_type: "project".into(),
                title: "x".into(),
                ..Default::default()
            },
            "metadata.description",
        ),
        (
            NewWorkItem {
                item_type: "session".into(),
                title: "x".into(),
                metadata: obj(json!({"token_budget": 10})),
                ..Default::default()
            },
            "metadata.token_budget",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                parent_id: Some("not-a-uuid".into()),
                ..Default::default()
            },
            "parent_id",
        ),
        (
            NewWorkItem {
                item_type: "task".into(),
                title: "x".into(),
                parent_id: Some(uuid::Uuid::nil().to_string()),
                ..Default::default()
            },
            "parent_id",
        ),
    ];
    for (input, field) in cases {
        match t.create_work_item(A, input) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&t), before, "refused requests change nothing");
}

#[test]
fn legacy_status_words_map_to_the_current_ones() {
    let (_d, t) = tracker();
    for (word, status) in [
        ("need to be done", "active"),
        ("in-progress", "active"),
        ("complete", "completed"),
    ] {
        let i = t
            .create_work_item(
                A,
                NewWorkItem {
                    status: Some(word.into()),
                    ..new_item("task", word, None)
                },
            )
            .unwrap();
        assert_eq!(i.status, status);
    }
}

#[test]
fn the_depth_limit_is_six_levels() {
    let (_d, t) = tracker();
    let mut parent = t.create_work_item(A, new_item("project", "root", None)).unwrap();
    for depth in 1..=5 {
        parent = t
            .create_work_item(A, new_item("task", &format!("level {depth}"), Some(&parent.id)))
            .unwrap();
        assert_eq!(parent.depth, depth);
    }
    let err = t
        .create_work_item(A, new_item("task", "too deep", Some(&parent.id)))
        .unwrap_err();
    assert!(matches!(err, Error::DepthLimit { depth: 6, max: 5, .. }), "{err}");
    assert!(err.to_string().contains("depth 6"), "{err}");
}

#[test]
fn moves_rederive_the_whole_subtree_and_refuse_cycles_and_depth() {
    let (_d, t) = tracker();
    let a = t.create_work_item(A, new_item("project", "a", None)).unwrap();
    let b = t.create_work_item(A, new_item("project", "b", None)).unwrap();
    let c = t.create_work_item(A, new_item("task", "c", Some(&a.id))).unwrap();
    let d = t.create_work_item(A, new_item("task", "d", Some(&c.id))).unwrap();
    // Move c (with d) under b.
    let moved = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: c.id.clone(),
                version: c.version,
                parent_id: Some(b.id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(moved.path, format!("/{}/{}", b.id, c.id));
    let d2 = t.get_work_item(&d.id).unwrap();
    assert_eq!((d2.path.clone(), d2.depth), (format!("/{}/{}/{}", b.id, c.id, d.id), 2));
    // A cycle: b under its grandchild d.
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: b.id.clone(),
                version: b.version,
                parent_id: Some(d.id.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cycle(_)), "{err}");
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: b.id.clone(),
                version: b.version,
                parent_id: Some(b.id.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cycle(_)), "{err}");
    // To the root with "".
    let root = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: c.id.clone(),
                version: moved.version,
                parent_id: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((root.depth, root.parent_id), (0, None));
    assert_eq!(t.get_work_item(&d.id).unwrap().depth, 1);
    // Depth: a chain of 4 under a 2-deep node would reach 6.
    let mut chain = t.create_work_item(A, new_item("task", "chain", None)).unwrap();
    let top = chain.clone();
    for i in 0..4 {
        chain = t
            .create_work_item(A, new_item("task", &format!("chain {i}"), Some(&chain.id)))
            .unwrap();
    }
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: top.id.clone(),
                version: top.version,
                parent_id: Some(d.id.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::DepthLimit { depth: 6, .. }), "{err}");
}

#[test]
fn a_stale_version_names_expected_current_and_writer() {
    let (_d, t) = tracker();
    let i = t.create_work_item("alice", new_item("task", "x", None)).unwrap();
    t.update_work_item(
        "bob",
        WorkItemUpdate {
            id: i.id.clone(),
            version: 1,
            title: Some("y".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let err = t
        .update_work_item(
            "carol",
            WorkItemUpdate {
                id: i.id.clone(),
                version: 1,
                title: Some("z".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    match &err {
        Error::StaleVersion {
            expected,
            current,
            updated_by,
            ..
        } => {
            assert_eq!((*expected, *current, updated_by.as_str()), (1, 2, "bob"));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("version 1") && msg.contains("version 2") && msg.contains("bob"),
        "{msg}"
    );
    assert_eq!(t.get_work_item(&i.id).unwrap().title, "y");
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    let (_d, t) = crate::published_tracker();
    let i = t.create_work_item(A, new_item("task", "x", None)).unwrap();
    let same = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 1,
                title: Some(" x ".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(same.version, 1);
    assert_eq!(t.store().pending_changes().unwrap(), 1);
}

#[test]
fn metadata_is_merged_and_validated_by_type() {
    let (_d, t) = tracker();
    let i = t
        .create_work_item(
            A,
            NewWorkItem {
                metadata: obj(json!({"estimated_hours": 3, "custom": "kept"})),
                ..new_item("task", "x", None)
            },
        )
        .unwrap();
    let u = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 1,
                metadata: obj(json!({"actual_hours": 2, "custom": null})),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(u.metadata, json!({"estimated_hours": 3, "actual_hours": 2}));
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 2,
                metadata: obj(json!({"actual_hours": 5000})),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "metadata.actual_hours"),
        "{err}"
    );
    // A type change revalidates the metadata for the new type.
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 2,
                item_type: Some("research".into()),
                metadata: obj(json!({"references": "one"})),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "metadata.references"),
        "{err}"
    );
}

#[test]
fn soft_delete_hides_and_restore_brings_back() {
    let (_d, t) = tracker();
    let i = t.create_work_item(A, new_item("task", "doomed", None)).unwrap();
    let del = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 1,
                deleted: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(del.deleted_at.is_some());
    assert_eq!(t.list_work_items(WorkItemFilter::default()).unwrap().total_count, 0);
    assert_eq!(
        t.list_work_items(WorkItemFilter {
            include_deleted: true,
            ..Default::default()
        })
        .unwrap()
        .total_count,
        1
    );
    assert!(
        t.create_work_item(A, new_item("task", "child", Some(&i.id))).is_err(),
        "no children under a deleted item"
    );
    let back = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: i.id.clone(),
                version: 2,
                deleted: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(back.deleted_at.is_none());
}

#[test]
fn unknown_ids_are_not_found_with_a_hint() {
    let (_d, t) = tracker();
    let nil = uuid::Uuid::nil().to_string();
    let err = t.query_work_item(&nil, true, true).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(err.to_string().contains("list_work_items"), "{err}");
    assert!(matches!(t.get_work_item("nope"), Err(Error::Invalid { .. })));
    let err = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: nil,
                version: 1,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
}

#[test]
fn query_returns_ancestors_descendants_and_dependencies() {
    let (_d, t) = tracker();
    let p = t.create_work_item(A, new_item("project", "p", None)).unwrap();
    let s = t.create_work_item(A, new_item("session", "s", Some(&p.id))).unwrap();
    let x = t.create_work_item(A, new_item("task", "x", Some(&s.id))).unwrap();
    let y = t.create_work_item(A, new_item("task", "y", Some(&s.id))).unwrap();
    t.manage_dependency(
        A,
        DependencyChange {
            action: DependencyAction::Add,
            source_id: y.id.clone(),
            target_id: x.id.clone(),
            dependency_type: "depends_on".into(),
        },
    )
    .unwrap();
    let d = t.query_work_item(&s.id, true, true).unwrap();
    assert_eq!(
        d.ancestors.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [p.id.as_str()]
    );
    assert_eq!(d.descendant_count, 2);
    let dx = t.query_work_item(&x.id, true, true).unwrap();
    assert_eq!(
        dx.ancestors.iter().map(|r| r.title.as_str()).collect::<Vec<_>>(),
        ["p", "s"]
    );
    let deps = dx.dependencies.unwrap();
    assert_eq!(deps.blocks.len(), 1);
    assert_eq!(deps.blocks[0].item.id, y.id);
    let dy = t.query_work_item(&y.id, false, true).unwrap();
    assert_eq!(dy.dependencies.unwrap().depends_on[0].item.id, x.id);
    assert!(dy.descendants.is_empty());

    // The answer holds at most MAX_DESCENDANTS rows; the count is exact on
    // both sides of that limit.
    let max = MAX_DESCENDANTS as usize;
    for i in 3..max {
        t.create_work_item(A, new_item("task", &format!("t{i}"), Some(&s.id)))
            .unwrap();
    }
    let d = t.query_work_item(&p.id, true, false).unwrap();
    assert_eq!((d.descendants.len(), d.descendant_count), (max, max as i64));
    t.create_work_item(A, new_item("task", "one more", Some(&s.id)))
        .unwrap();
    t.create_work_item(A, new_item("task", "and another", Some(&x.id)))
        .unwrap();
    let d = t.query_work_item(&p.id, true, false).unwrap();
    assert_eq!((d.descendants.len(), d.descendant_count), (max, max as i64 + 2));
    assert_eq!(d.descendants[0].id, s.id, "tree order: the session first");

    // The rest come by cursor, in the same tree order, each once.
    let cursor = d.next_cursor.clone().expect("more descendants follow");
    let page = |cursor: Option<String>| {
        t.query_work_item_with(WorkItemQuery {
            id: p.id.clone(),
            cursor,
            ..Default::default()
        })
        .unwrap()
    };
    let rest = page(Some(cursor));
    assert_eq!((rest.descendants.len(), rest.descendant_count), (2, max as i64 + 2));
    assert_eq!(rest.next_cursor, None, "the last page");
    let mut seen: Vec<String> = d
        .descendants
        .iter()
        .chain(&rest.descendants)
        .map(|r| r.id.clone())
        .collect();
    let all = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "no descendant shown twice");
    assert_eq!(all, max + 2, "every descendant shown");
    let ordered = t.query_work_item(&p.id, true, false).unwrap();
    assert_eq!(
        ordered.descendants, d.descendants,
        "the first page is the same without a cursor"
    );
    // A cursor needs the descendants, and must be one this answer gave.
    let err = t
        .query_work_item_with(WorkItemQuery {
            id: p.id.clone(),
            include_children: Some(false),
            cursor: d.next_cursor.clone(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("include_children"), "{err}");
    let err = t
        .query_work_item_with(WorkItemQuery {
            id: p.id.clone(),
            cursor: Some("zz".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("cursor"), "{err}");
}

#[test]
fn lists_filter_search_and_page_with_cursors() {
    let (_d, t) = tracker();
    let p = t
        .create_work_item(A, new_item("project", "Parser project", None))
        .unwrap();
    for i in 0..7 {
        let mut item = new_item("task", &format!("task {i}"), Some(&p.id));
        if i == 3 {
            item.description = Some("rewrite the tokenizer".into());
        }
        t.create_work_item(A, item).unwrap();
    }
    let tasks = t
        .list_work_items(WorkItemFilter {
            item_type: Some("task".into()),
            limit: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((tasks.items.len(), tasks.total_count), (3, 7));
    let mut seen: Vec<String> = tasks.items.iter().map(|r| r.title.clone()).collect();
    let mut cursor = tasks.next_cursor.clone();
    while let Some(c) = cursor {
        let page = t
            .list_work_items(WorkItemFilter {
                item_type: Some("task".into()),
                limit: Some(3),
                cursor: Some(c),
                ..Default::default()
            })
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.title.clone()));
        cursor = page.next_cursor;
    }
    assert_eq!(seen, (0..7).map(|i| format!("task {i}")).collect::<Vec<_>>());
    // A search pages too, in the order the matches were recorded.
    let search = |cursor: Option<String>| {
        t.list_work_items(WorkItemFilter {
            text: Some("task".into()),
            limit: Some(3),
            cursor,
            ..Default::default()
        })
        .unwrap()
    };
    let (mut found_all, mut cursor) = (Vec::new(), None);
    loop {
        let page = search(cursor);
        assert_eq!(page.total_count, 7);
        found_all.extend(page.items.into_iter().map(|r| r.title));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(found_all, (0..7).map(|i| format!("task {i}")).collect::<Vec<_>>());
    // Every list of work items pages in the same order (the store's), so a
    // cursor is a place in it: a plain list goes on from a search's page.
    let page_one = search(None);
    let after = t
        .list_work_items(WorkItemFilter {
            cursor: page_one.next_cursor,
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(after.items[0].title, "task 3");
    let found = t
        .list_work_items(WorkItemFilter {
            text: Some("tokeniz".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        found.items.iter().map(|r| r.title.as_str()).collect::<Vec<_>>(),
        ["task 3"]
    );
    let found = t
        .list_work_items(WorkItemFilter {
            text: Some("PARSER \"); DROP".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.total_count, 0, "operators in the text are words, not syntax");
    let found = t
        .list_work_items(WorkItemFilter {
            text: Some("parser".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.total_count, 1);
    assert_eq!(
        t.list_work_items(WorkItemFilter {
            parent_id: Some(p.id.clone()),
            ..Default::default()
        })
        .unwrap()
        .total_count,
        7
    );
    assert!(matches!(
        t.list_work_items(WorkItemFilter {
            cursor: Some("garbage".into()),
            ..Default::default()
        }),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        t.list_work_items(WorkItemFilter {
            limit: Some(101),
            ..Default::default()
        }),
        Err(Error::Invalid { .. })
    ));
}

/// How many work items a full-text search finds.
fn search_count(t: &waymark::Tracker, text: &str) -> i64 {
    t.list_work_items(WorkItemFilter {
        text: Some(text.into()),
        ..Default::default()
    })
    .unwrap()
    .total_count
}

/// FTS5's own check that the index holds exactly the rows' text.
fn assert_search_index_matches_rows(t: &waymark::Tracker) {
    let integrity: Result<(), waymark::Error> = t.store().read(|tx| {
        tx.execute(
            "INSERT INTO work_items_fts (work_items_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )?;
        Ok(())
    });
    integrity.expect("the full-text index matches the rows");
}

#[test]
fn search_follows_edits_of_titles_and_descriptions() {
    let (_d, t) = tracker();
    let count = |text: &str| search_count(&t, text);
    let p = t.create_work_item(A, new_item("project", "Ledger", None)).unwrap();
    let mut item = new_item("task", "parse invoices", Some(&p.id));
    item.description = Some("from the scanner".into());
    let task = t.create_work_item(A, item).unwrap();
    assert_eq!((count("invoices"), count("scanner")), (1, 1));

    let task = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: task.id.clone(),
                version: task.version,
                title: Some("parse receipts".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((count("invoices"), count("receipts"), count("scanner")), (0, 1, 1));
    let task = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: task.id.clone(),
                version: task.version,
                description: Some("from the mailbox".into()),
                priority: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((count("scanner"), count("mailbox"), count("receipts")), (0, 1, 1));
    // A write that leaves the text alone leaves the index alone.
    t.update_work_item(
        A,
        WorkItemUpdate {
            id: task.id.clone(),
            version: task.version,
            status: Some("completed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((count("mailbox"), count("receipts")), (1, 1));
    assert_search_index_matches_rows(&t);
}

#[test]
fn search_sees_every_committed_write_while_the_index_catches_up_in_batches() {
    let (d, t) = tracker();
    let other = waymark::Tracker::open(d.path()).unwrap();
    let noted = |t: &waymark::Tracker| -> i64 {
        t.store()
            .read(|tx| Ok(tx.query_row("SELECT count(*) FROM search_pending", [], |r| r.get(0))?))
            .unwrap()
    };
    let count = search_count;
    // A burst of writes: the index catches up every few hundred items, not
    // on every write.
    let p = t.create_work_item(A, new_item("project", "Harbor", None)).unwrap();
    let mut last = p.clone();
    for i in 0..300 {
        last = t
            .create_work_item(A, new_item("task", &format!("crane {i}"), Some(&p.id)))
            .unwrap();
    }
    let v = t
        .update_work_item(
            A,
            WorkItemUpdate {
                id: last.id.clone(),
                version: last.version,
                title: Some("gantry".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .version;
    t.update_work_item(
        A,
        WorkItemUpdate {
            id: last.id.clone(),
            version: v,
            title: Some("winch".into()),
            ..Default::default()
        },
    )
    .unwrap();
    // Another process's search sees every write at once: the notes are in
    // the store, and a search brings the index up to date first.
    assert_eq!(
        (count(&other, "crane"), count(&other, "gantry"), count(&other, "winch")),
        (299, 0, 1)
    );
    assert_eq!(noted(&t), 0);
    // A store left idle brings its index up to date by itself.
    t.create_work_item(A, new_item("task", "bollard", Some(&p.id))).unwrap();
    let started = std::time::Instant::now();
    while noted(&t) > 0 {
        assert!(started.elapsed().as_secs() < 10, "the idle writer never caught up");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(count(&t, "bollard"), 1);
    assert_search_index_matches_rows(&t);
}

#[test]
fn dependencies_refuse_self_edges_and_cycles_through_both_types() {
    let (_d, t) = tracker();
    let [a, b, c] = ["a", "b", "c"].map(|n| t.create_work_item(A, new_item("task", n, None)).unwrap());
    let add = |s: &str, tg: &str, ty: &str| {
        t.manage_dependency(
            A,
            DependencyChange {
                action: DependencyAction::Add,
                source_id: s.into(),
                target_id: tg.into(),
                dependency_type: ty.into(),
            },
        )
    };
    assert!(matches!(add(&a.id, &a.id, "blocks"), Err(Error::Invalid { .. })));
    add(&a.id, &b.id, "depends_on").unwrap(); // a waits for b
    add(&c.id, &b.id, "blocks").unwrap(); // b waits for c
    // c depends_on a would close a -> b -> c -> a.
    let err = add(&c.id, &a.id, "depends_on").unwrap_err();
    assert!(matches!(err, Error::Cycle(_)), "{err}");
    // a blocks c is the same cycle.
    assert!(matches!(add(&a.id, &c.id, "blocks"), Err(Error::Cycle(_))));
    // Idempotent add; remove; remove again is not found.
    let again = add(&a.id, &b.id, "depends_on").unwrap();
    assert_eq!(again.version, 1);
    let rm = |s: &str, tg: &str, ty: &str| {
        t.manage_dependency(
            A,
            DependencyChange {
                action: DependencyAction::Remove,
                source_id: s.into(),
                target_id: tg.into(),
                dependency_type: ty.into(),
            },
        )
    };
    rm(&a.id, &b.id, "depends_on").unwrap();
    assert!(matches!(rm(&a.id, &b.id, "depends_on"), Err(Error::NotFound { .. })));
    // With the edge gone, the former cycle is allowed.
    add(&c.id, &a.id, "depends_on").unwrap();
    assert!(matches!(add(&a.id, &b.id, "sometimes"), Err(Error::Invalid { .. })));
}

#[test]
fn ready_work_waits_for_open_dependencies_in_priority_order() {
    let (_d, t) = tracker();
    let mk = |title: &str, priority: i64| {
        t.create_work_item(
            A,
            NewWorkItem {
                priority: Some(priority),
                ..new_item("task", title, None)
            },
        )
        .unwrap()
    };
    let low = mk("low", 3);
    let high = mk("high", 0);
    let waiting = mk("waiting", 0);
    let blocked_by = mk("blocker", 1);
    let dep = |s: &str, tg: &str, ty: &str| {
        t.manage_dependency(
            A,
            DependencyChange {
                action: DependencyAction::Add,
                source_id: s.into(),
                target_id: tg.into(),
                dependency_type: ty.into(),
            },
        )
        .unwrap();
    };
    dep(&waiting.id, &low.id, "depends_on");
    dep(&blocked_by.id, &high.id, "blocks");
    let ready = |t: &waymark::Tracker| {
        t.ready_work(ReadyQuery::default())
            .unwrap()
            .items
            .iter()
            .map(|r| r.title.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ready(&t), ["blocker", "low"]);
    t.update_work_item(
        A,
        WorkItemUpdate {
            id: blocked_by.id.clone(),
            version: 1,
            status: Some("completed".into()),
            ..Default::default()
        },
    )
    .unwrap();
    t.update_work_item(
        A,
        WorkItemUpdate {
            id: low.id.clone(),
            version: 1,
            deleted: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ready(&t), ["high", "waiting"]);
    let page = t
        .ready_work(ReadyQuery {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total_count, 2);
    let next = t
        .ready_work(ReadyQuery {
            limit: Some(1),
            cursor: page.next_cursor,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(next.items[0].title, "waiting");
    assert!(
        t.ready_work(ReadyQuery {
            item_type: Some("project".into()),
            ..Default::default()
        })
        .unwrap()
        .items
        .is_empty()
    );
}

#[test]
fn vendors_are_unique_in_any_case_and_merge_metadata() {
    let (_d, t) = tracker();
    let v = t
        .create_vendor(
            "alice",
            NewVendor {
                name: "EPSON".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (v.status.as_str(), v.extractor_version.as_str(), v.version),
        ("broken", "0.0.0", 1)
    );
    assert_eq!(v.id, waymark::domain::ids::vendor("epson"));
    let err = t
        .create_vendor(
            A,
            NewVendor {
                name: " epson ".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(matches!(
        t.create_vendor(
            A,
            NewVendor {
                name: "bad/name".into(),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(t.query_vendor_status("Epson").unwrap().id, v.id);
    assert!(matches!(t.query_vendor_status("canon"), Err(Error::NotFound { .. })));

    let upd = |version, metadata: serde_json::Value| {
        t.update_vendor_status(
            "bob",
            VendorUpdate {
                name: "epson".into(),
                version,
                status: None,
                extractor_version: None,
                metadata: obj(metadata),
            },
        )
    };
    let v2 = upd(
        1,
        json!({"test_results": {"passing": 8, "total": 10, "skipped": 1}, "format_support": {"csv": true}}),
    )
    .unwrap();
    let v3 = upd(2, json!({"notes": "flaky ocr"})).unwrap();
    assert_eq!(
        v3.metadata["test_results"]["passing"], 8,
        "keys merge into what is stored"
    );
    assert_eq!(v3.metadata["notes"], "flaky ocr");
    let err = upd(3, json!({"test_results": {"passing": 9, "total": 10, "skipped": 2}})).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(matches!(
        upd(v2.version, json!({"notes": "x"})),
        Err(Error::StaleVersion { .. })
    ));
    let v4 = t
        .update_vendor_status(
            A,
            VendorUpdate {
                name: "EPSON".into(),
                version: 3,
                status: Some("operational".into()),
                extractor_version: Some("1.2.0".into()),
                metadata: None,
            },
        )
        .unwrap();
    assert_eq!(
        (v4.status.as_str(), v4.extractor_version.as_str()),
        ("operational", "1.2.0")
    );
    assert!(matches!(
        t.update_vendor_status(
            A,
            VendorUpdate {
                name: "EPSON".into(),
                version: 4,
                status: Some("sideways".into()),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    let page = t
        .list_vendors(VendorFilter {
            status: Some("operational".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items[0].tests.as_deref(), Some("8/10"));
}

#[test]
fn deployments_link_existing_vendors_and_items_and_list_newest_first() {
    let (_d, t) = tracker();
    t.create_vendor(
        A,
        NewVendor {
            name: "Canon".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let item = t.create_work_item(A, new_item("task", "ship", None)).unwrap();
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let d = t
        .record_deployment(
            A,
            NewDeployment {
                commit_hash: hash.into(),
                deployed_at: Some("2026-01-02T03:04:05Z".into()),
                pr_number: Some(42),
                pr_title: Some("Add parser".into()),
                test_summary: obj(json!({"unit": 150, "integration": 30})),
                constitutional_compliance: Some(true),
                vendor_ids: vec!["canon".into()],
                work_item_ids: vec![item.id.clone()],
            },
        )
        .unwrap();
    assert_eq!(d.vendor_ids, [waymark::domain::ids::vendor("Canon")]);
    assert_eq!(d.work_item_ids, [item.id.as_str()]);
    assert_eq!(d.metadata["pr_number"], 42);
    let later = t
        .record_deployment(
            A,
            NewDeployment {
                commit_hash: hash.to_uppercase(),
                deployed_at: Some("2026-02-01T00:00:00+01:00".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let page = t.list_deployments(DeploymentFilter::default()).unwrap();
    assert_eq!(
        page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [later.id.as_str(), d.id.as_str()]
    );
    assert_eq!(
        t.list_deployments(DeploymentFilter {
            vendor: Some("CANON".into()),
            ..Default::default()
        })
        .unwrap()
        .total_count,
        1
    );
    let before = snapshot(&t);
    let bad = [
        NewDeployment {
            commit_hash: "abc".into(),
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            deployed_at: Some("last tuesday".into()),
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            pr_number: Some(0),
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            pr_title: Some(String::new()),
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            test_summary: obj(json!({"unit": -1})),
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            vendor_ids: vec!["nobody".into()],
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            vendor_ids: vec!["canon".into(), "CANON".into()],
            ..Default::default()
        },
        NewDeployment {
            commit_hash: hash.into(),
            work_item_ids: vec![uuid::Uuid::nil().to_string()],
            ..Default::default()
        },
    ];
    for input in bad {
        assert!(t.record_deployment(A, input.clone()).is_err(), "{input:?}");
    }
    assert_eq!(snapshot(&t), before);
}

#[test]
fn configuration_has_defaults_and_optimistic_locking() {
    let (_d, t) = tracker();
    let (c, health) = t.get_project_configuration().unwrap();
    assert_eq!(
        (c.active_context_type.as_str(), c.default_token_budget, c.version),
        ("feature", 200_000, 0)
    );
    assert_eq!(health.pending_changes, 0);
    let session = t.create_work_item(A, new_item("session", "s1", None)).unwrap();
    let task = t.create_work_item(A, new_item("task", "t", None)).unwrap();
    let c1 = t
        .update_project_configuration(
            A,
            ConfigurationUpdate {
                current_session_id: Some(session.id.clone()),
                active_context_type: Some("research".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (c1.version, c1.current_session_id.as_deref()),
        (1, Some(session.id.as_str()))
    );
    assert!(matches!(
        t.update_project_configuration(
            A,
            ConfigurationUpdate {
                current_session_id: Some(task.id),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        t.update_project_configuration(
            A,
            ConfigurationUpdate {
                version: Some(0),
                git_branch: Some("x".into()),
                ..Default::default()
            }
        ),
        Err(Error::StaleVersion { .. })
    ));
    assert!(matches!(
        t.update_project_configuration(
            A,
            ConfigurationUpdate {
                default_token_budget: Some(10),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        t.update_project_configuration(
            A,
            ConfigurationUpdate {
                git_head_commit: Some("xyz".into()),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        t.update_project_configuration(
            A,
            ConfigurationUpdate {
                active_context_type: Some("party".into()),
                ..Default::default()
            }
        ),
        Err(Error::Invalid { .. })
    ));
    let c2 = t
        .update_project_configuration(
            A,
            ConfigurationUpdate {
                version: Some(1),
                git_branch: Some("main".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (c2.version, c2.git_branch.as_deref(), c2.active_context_type.as_str()),
        (2, Some("main"), "research")
    );
}

#[test]
fn enhancements_filter_by_priority_status_and_quarter() {
    let (_d, t) = tracker();
    let e1 = t
        .create_enhancement(
            A,
            NewEnhancement {
                title: "Sync".into(),
                priority: Some(1),
                target_quarter: Some("2027-Q1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (e1.status.as_str(), e1.requires_constitutional_approval),
        ("planned", false)
    );
    let e2 = t
        .create_enhancement(
            A,
            NewEnhancement {
                title: "Web UI".into(),
                priority: Some(4),
                depends_on: Some(vec![e1.id.clone()]),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e2.depends_on, [e1.id.as_str()]);
    assert!(
        t.create_enhancement(
            A,
            NewEnhancement {
                title: "x".into(),
                priority: Some(6),
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        t.create_enhancement(
            A,
            NewEnhancement {
                title: "x".into(),
                target_quarter: Some("2027Q1".into()),
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        t.create_enhancement(
            A,
            NewEnhancement {
                title: "x".into(),
                depends_on: Some(vec![uuid::Uuid::nil().to_string()]),
                ..Default::default()
            }
        )
        .is_err()
    );
    let e1b = t
        .update_enhancement(
            A,
            EnhancementUpdate {
                id: e1.id.clone(),
                version: 1,
                status: Some("approved".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e1b.status, "approved");
    assert!(matches!(
        t.update_enhancement(
            A,
            EnhancementUpdate {
                id: e1.id.clone(),
                version: 1,
                ..Default::default()
            }
        ),
        Err(Error::StaleVersion { .. })
    ));
    assert!(
        t.update_enhancement(
            A,
            EnhancementUpdate {
                id: e1.id.clone(),
                version: 2,
                depends_on: Some(vec![e1.id.clone()]),
                ..Default::default()
            }
        )
        .is_err()
    );
    let titles = |f: EnhancementFilter| {
        t.list_enhancements(f)
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.title)
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(EnhancementFilter::default()), ["Sync", "Web UI"]);
    assert_eq!(
        titles(EnhancementFilter {
            priority: Some(4),
            ..Default::default()
        }),
        ["Web UI"]
    );
    assert_eq!(
        titles(EnhancementFilter {
            status: Some("approved".into()),
            ..Default::default()
        }),
        ["Sync"]
    );
    assert_eq!(
        titles(EnhancementFilter {
            target_quarter: Some("2027-Q1".into()),
            ..Default::default()
        }),
        ["Sync"]
    );
}

#[test]
fn archive_moves_old_finished_subtrees_and_keeps_them_queryable() {
    let (_d, t) = tracker();
    // Import records last touched two years ago: the archive threshold is by updated_at.
    let old = "2024-01-01T00:00:00.000000Z";
    let p = uuid::Uuid::now_v7().to_string();
    let c = uuid::Uuid::now_v7().to_string();
    let open = uuid::Uuid::now_v7().to_string();
    let q = uuid::Uuid::now_v7().to_string();
    let rec = |id: &str, title: &str, status: &str, parent: Option<&str>, depth: i64| {
        let mut r = json!({"id": id, "item_type": "task", "title": title, "status": status, "priority": 2,
            "metadata": {}, "created_at": old, "created_by": "old", "updated_at": old, "updated_by": "old", "depth": depth});
        if let Some(p) = parent {
            r["parent_id"] = json!(p);
        }
        r
    };
    t.import_json(
        A,
        json!({"work_items": [
            rec(&p, "finished parent", "completed", None, 0),
            rec(&c, "finished child", "completed", Some(&p), 1),
            rec(&q, "finished, open child", "completed", None, 0),
            rec(&open, "still open", "active", Some(&q), 1),
        ]}),
    )
    .unwrap();
    let dry = t
        .archive_work_items(
            A,
            ArchiveRequest {
                older_than_days: Some(365),
                dry_run: true,
            },
        )
        .unwrap();
    assert_eq!(dry.count, 2);
    assert_eq!(
        t.list_work_items(WorkItemFilter {
            archived: true,
            ..Default::default()
        })
        .unwrap()
        .total_count,
        0,
        "a dry run writes nothing"
    );
    let done = t
        .archive_work_items(
            A,
            ArchiveRequest {
                older_than_days: None,
                dry_run: false,
            },
        )
        .unwrap();
    assert_eq!(done.count, 2);
    let listed: Vec<String> = t
        .list_work_items(WorkItemFilter::default())
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.title)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(!listed.contains(&"finished parent".to_string()));
    let archived = t
        .list_work_items(WorkItemFilter {
            archived: true,
            text: Some("child".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        archived.items.iter().map(|r| r.title.as_str()).collect::<Vec<_>>(),
        ["finished child"]
    );
    assert!(
        t.get_work_item(&p).unwrap().archived_at.is_some(),
        "every field is kept"
    );
    assert_eq!(
        t.archive_work_items(A, ArchiveRequest::default()).unwrap().count,
        0,
        "archiving twice does nothing"
    );
    assert!(
        t.archive_work_items(
            A,
            ArchiveRequest {
                older_than_days: Some(-1),
                dry_run: true
            }
        )
        .is_err()
    );
    let doc = t.export_json().unwrap();
    assert_eq!(doc["archived_work_items"].as_array().unwrap().len(), 2);
}

/// A page of a list as the ids of its rows, and its cursor.
type IdPage = (Vec<String>, Option<String>);

fn ids<T>(page: Page<T>, id: impl Fn(T) -> String) -> IdPage {
    (page.items.into_iter().map(id).collect(), page.next_cursor)
}

/// The ids of every row of a list, fetched `limit` at a time by following
/// its cursor (at most 100 pages: a cursor that does not advance fails the
/// test).
fn all_pages(limit: i64, page: &dyn Fn(Option<i64>, Option<String>) -> IdPage) -> Vec<String> {
    let (mut rows, mut cursor) = (Vec::new(), None);
    for _ in 0..100 {
        let (items, next) = page(Some(limit), cursor);
        rows.extend(items);
        cursor = next;
        if cursor.is_none() {
            return rows;
        }
    }
    panic!("the cursor never reached the end of the list");
}

/// Lists that order by a time (or a priority and a time) break ties by id,
/// and their cursors carry that id: rows with one time page through whole.
#[test]
fn lists_page_past_rows_that_tie_on_time_by_id() {
    let (_s, source) = tracker();
    for n in 0..5 {
        source
            .create_work_item(A, new_item("task", &format!("ready {n}"), None))
            .unwrap();
        source
            .create_work_item(A, new_item("task", &format!("done {n}"), None))
            .unwrap();
        let enhancement = NewEnhancement {
            title: format!("enhancement {n}"),
            priority: Some(2),
            ..Default::default()
        };
        source.create_enhancement(A, enhancement).unwrap();
        let deployment = NewDeployment {
            commit_hash: format!("{n:040x}"),
            deployed_at: Some("2026-01-02T03:04:05Z".into()),
            ..Default::default()
        };
        source.record_deployment(A, deployment).unwrap();
    }
    // One time for every record (two years ago), and half the items done.
    let old = "2024-01-01T00:00:00.000000Z";
    let mut doc = source.export_json().unwrap();
    for list in ["work_items", "enhancements"] {
        for r in doc[list].as_array_mut().unwrap() {
            r["created_at"] = json!(old);
            r["updated_at"] = json!(old);
            if r["title"].as_str().unwrap().starts_with("done") {
                r["status"] = json!("completed");
            }
        }
    }
    let (_d, t) = tracker();
    t.import_json(A, doc).unwrap();
    let archived = t
        .archive_work_items(
            A,
            ArchiveRequest {
                older_than_days: Some(365),
                dry_run: false,
            },
        )
        .unwrap();
    assert_eq!(archived.count, 5);

    let check = |what: &str, page: &dyn Fn(Option<i64>, Option<String>) -> IdPage| {
        let (paged, whole) = (all_pages(2, page), all_pages(50, page));
        let mut unique = paged.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "{what}: {paged:?}");
        assert_eq!(paged, whole, "{what}: pages of 2 against one page");
    };
    check("ready work", &|limit, cursor| {
        ids(
            t.ready_work(ReadyQuery {
                limit,
                cursor,
                ..Default::default()
            })
            .unwrap(),
            |r| r.id,
        )
    });
    check("archived work items", &|limit, cursor| {
        let query = WorkItemFilter {
            archived: true,
            limit,
            cursor,
            ..Default::default()
        };
        ids(t.list_work_items(query).unwrap(), |r| r.id)
    });
    check("enhancements", &|limit, cursor| {
        let filter = EnhancementFilter {
            limit,
            cursor,
            ..Default::default()
        };
        ids(t.list_enhancements(filter).unwrap(), |r| r.id)
    });
    check("deployments", &|limit, cursor| {
        let filter = DeploymentFilter {
            limit,
            cursor,
            ..Default::default()
        };
        ids(t.list_deployments(filter).unwrap(), |r| r.id)
    });
}

#[test]
fn every_write_lands_in_the_outbox_with_a_dense_counter() {
    let (_d, t) = crate::published_tracker();
    let p = t.create_work_item(A, new_item("project", "p", None)).unwrap();
    t.update_work_item(
        A,
        WorkItemUpdate {
            id: p.id.clone(),
            version: 1,
            title: Some("p2".into()),
            ..Default::default()
        },
    )
    .unwrap();
    t.create_vendor(
        A,
        NewVendor {
            name: "v".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let replica = t.store().replica_id().unwrap().to_string();
    let outbox = waymark_sync::Replica::outbox(t.store(), 10).unwrap();
    let rows: Vec<(String, i64, serde_json::Value)> = outbox
        .iter()
        .map(|c| {
            (
                c.dot.replica.to_string(),
                c.dot.counter as i64,
                serde_json::to_value(c).unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(rows.iter().all(|r| r.0 == replica));
    let update = &rows[1].2;
    assert_eq!(
        update["fields"],
        json!({"title": "p2"}),
        "a change carries only the fields it wrote"
    );
    assert_eq!(
        update["context"][&replica], 1,
        "its context is the version vector it saw"
    );
    assert!(update["hlc"].as_u64().unwrap() > rows[0].2["hlc"].as_u64().unwrap());
}

#[test]
fn a_store_from_a_newer_waymark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(waymark::Tracker::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("waymark.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = waymark::Tracker::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::StoreTooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("upgrade Waymark"), "{err}");
}

#[test]
fn a_copied_store_takes_a_new_replica_id() {
    let dir = tempfile::tempdir().unwrap();
    let t = waymark::Tracker::open(dir.path()).unwrap();
    t.create_work_item(A, new_item("task", "before the copy", None))
        .unwrap();
    let original = t.store().replica_id().unwrap();
    drop(t);
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("waymark.db"), copy.path().join("waymark.db")).unwrap();
    let c = waymark::Tracker::open(copy.path()).unwrap();
    assert_ne!(c.store().replica_id().unwrap(), original);
    c.create_work_item(A, new_item("task", "after the copy", None)).unwrap();
    assert_eq!(
        waymark::Tracker::open(dir.path())
            .unwrap()
            .store()
            .replica_id()
            .unwrap(),
        original
    );
}

#[test]
fn export_import_round_trips_byte_for_byte() {
    let (_d, t) = tracker();
    let p = t.create_work_item("alice", new_item("project", "p", None)).unwrap();
    let x = t
        .create_work_item(
            "bob",
            NewWorkItem {
                description: Some("desc".into()),
                ..new_item("task", "x", Some(&p.id))
            },
        )
        .unwrap();
    let y = t.create_work_item("bob", new_item("task", "y", Some(&p.id))).unwrap();
    t.manage_dependency(
        A,
        DependencyChange {
            action: DependencyAction::Add,
            source_id: y.id.clone(),
            target_id: x.id.clone(),
            dependency_type: "depends_on".into(),
        },
    )
    .unwrap();
    t.create_vendor(
        A,
        NewVendor {
            name: "Ricoh".into(),
            metadata: obj(json!({"notes": "n"})),
            ..Default::default()
        },
    )
    .unwrap();
    t.record_deployment(
        A,
        NewDeployment {
            commit_hash: "a".repeat(40),
            vendor_ids: vec!["ricoh".into()],
            work_item_ids: vec![x.id.clone()],
            ..Default::default()
        },
    )
    .unwrap();
    t.create_enhancement(
        A,
        NewEnhancement {
            title: "e".into(),
            ..Default::default()
        },
    )
    .unwrap();
    t.update_project_configuration(
        A,
        ConfigurationUpdate {
            git_branch: Some("main".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let doc = t.export_json().unwrap();
    let (_d2, t2) = tracker();
    let summary = t2.import_json("importer", doc.clone()).unwrap();
    assert_eq!(
        (
            summary.work_items,
            summary.dependencies,
            summary.vendors,
            summary.deployments,
            summary.enhancements
        ),
        (3, 1, 1, 1, 1)
    );
    let again = t2.export_json().unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&again).unwrap(),
        serde_json::to_string_pretty(&doc).unwrap()
    );
    // Only into an empty store.
    assert!(matches!(t2.import_json(A, doc), Err(Error::Conflict(_))));
    // A malformed document changes nothing.
    let (_d3, t3) = tracker();
    let bad = json!({"work_items": [{"id": uuid::Uuid::now_v7().to_string(), "item_type": "task", "title": "ok", "status": "active"},
                                    {"id": "x", "item_type": "task", "title": "bad id", "status": "active"}]});
    assert!(t3.import_json(A, bad).is_err());
    assert_eq!(t3.list_work_items(WorkItemFilter::default()).unwrap().total_count, 0);
}

#[test]
fn the_status_report_shows_the_legacy_sections() {
    let (_d, t) = tracker();
    let p = t.create_work_item(A, new_item("project", "Tracker", None)).unwrap();
    t.create_work_item(
        A,
        NewWorkItem {
            branch_name: Some("003-store".into()),
            ..new_item("task", "Store", Some(&p.id))
        },
    )
    .unwrap();
    t.create_vendor(
        A,
        NewVendor {
            name: "EPSON".into(),
            metadata: obj(
                json!({"format_support": {"pdf": true, "csv": true}, "test_results": {"passing": 4, "total": 5}}),
            ),
            ..Default::default()
        },
    )
    .unwrap();
    t.record_deployment(
        A,
        NewDeployment {
            commit_hash: "b".repeat(40),
            pr_number: Some(7),
            pr_title: Some("Store".into()),
            test_summary: obj(json!({"unit": 3})),
            constitutional_compliance: Some(false),
            vendor_ids: vec!["epson".into()],
            ..Default::default()
        },
    )
    .unwrap();
    t.create_enhancement(
        A,
        NewEnhancement {
            title: "Hub".into(),
            priority: Some(2),
            target_quarter: Some("2027-Q2".into()),
            description: Some("Postgres".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let md = waymark::report::render_markdown(&t.status_report().unwrap(), None).unwrap();
    for needle in [
        "# Project Status - ",
        "## Operational Vendors (0/1)",
        "- **EPSON**: broken (4/5 tests) [csv, pdf]",
        "## Active Work Items (2)",
        "### Tracker (project)",
        "  ### Store (task)",
        "  - **Branch**: 003-store",
        "  - **Parent**: Tracker",
        "## Recent Deployments (Last 1)",
        " UTC - PR #7",
        "- **Title**: Store",
        "- **Commit**: `bbbbbbb`",
        "- **Tests**: unit: 3",
        "- **Constitutional Compliance**: ✗",
        "- **Vendors**: EPSON",
        "## Future Enhancements (1)",
        "### Hub (Priority: 2)",
        "- **Target**: Q2 2027",
        "- **Description**: Postgres",
        "*Generated at ",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
}
