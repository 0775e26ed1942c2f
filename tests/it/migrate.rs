//! A store written by an earlier schema opens under this build: migrated in
//! place, with the same content, the same conflicts and the same pending
//! changes. `fixtures/stores/v1.db` was written by schema 1
//! (`fixtures/stores/make-v1.sh` says how).

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::Value;
use waymark::Tracker;
use waymark::ops::{WorkItemFilter, WorkItemUpdate};
use waymark_sync::{Change, Dot, Hlc, Replica, ReplicaId, VersionVector};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stores").join(name)
}

fn json_file(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).expect("fixture")).expect("fixture JSON")
}

/// The outbox of a schema-1 store, decoded the way schema 1 stored it:
/// `[collection, record, context, fields, hlc, author, schema]` with
/// replicas and authors interned.
fn schema_1_outbox(db: &Path) -> Vec<Change> {
    let conn = Connection::open(db).expect("open the fixture");
    let name = |table: &str, idx: i64| -> String {
        conn.query_row(&format!("SELECT name FROM {table} WHERE idx = ?1"), [idx], |r| r.get(0))
            .expect("interned name")
    };
    let rows: Vec<(String, i64, String)> = conn
        .prepare("SELECT replica_id, counter, change FROM outbox ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.into_iter()
        .map(|(replica, counter, text)| {
            let doc: Value = serde_json::from_str(&text).unwrap();
            let mut context = VersionVector::new();
            for pair in doc[2].as_array().unwrap() {
                context.insert(Dot {
                    replica: name("replicas", pair[0].as_i64().unwrap()).parse().unwrap(),
                    counter: pair[1].as_u64().unwrap(),
                });
            }
            Change {
                collection: doc[0].as_str().unwrap().to_owned(),
                record_id: doc[1].as_str().unwrap().to_owned(),
                dot: Dot {
                    replica: replica.parse::<ReplicaId>().unwrap(),
                    counter: counter as u64,
                },
                context,
                fields: serde_json::from_value(doc[3].clone()).unwrap(),
                hlc: Hlc(doc[4].as_u64().unwrap()),
                author: name("authors", doc[5].as_i64().unwrap()),
                schema_version: doc[6].as_u64().unwrap() as u32,
            }
        })
        .collect()
}

#[test]
fn a_schema_1_store_migrates_with_its_content_conflicts_and_pending_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(waymark::store::DB_FILE);
    std::fs::copy(fixture("v1.db"), &db).unwrap();
    let pending = schema_1_outbox(&db);
    assert_eq!(pending.len(), 3, "the fixture has unpushed changes");
    assert!(
        pending[0].fields.contains_key("title") && pending[1].fields.contains_key("title"),
        "the second pending change overwrote the first's title"
    );

    let t = Tracker::open(dir.path()).expect("the migration runs");
    let version: i64 = Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, waymark::store::schema_version());

    assert_eq!(
        t.export_json().unwrap(),
        json_file("v1.export.json"),
        "the same content"
    );
    assert_eq!(
        {
            // Each value's dot is new since the fixture was made.
            let mut listed = serde_json::to_value(t.list_conflicts().unwrap()).unwrap();
            for c in listed.as_array_mut().unwrap() {
                for v in c["values"].as_array_mut().unwrap() {
                    assert!(v.as_object_mut().unwrap().remove("dot").is_some());
                }
            }
            listed
        },
        json_file("v1.conflicts.json"),
        "the same conflicts"
    );
    assert_eq!(
        t.store().outbox(100).unwrap(),
        pending,
        "the pending changes are pushed as they were written"
    );
    // Every id is now stored as its 16 bytes (the fixture's are canonical).
    let conn = Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    for (table, column) in [
        ("work_items", "id"),
        ("work_items", "parent_id"),
        ("dependencies", "id"),
        ("dependencies", "source_id"),
        ("dependencies", "target_id"),
        ("vendors", "id"),
        ("deployments", "id"),
        ("deployment_links", "id"),
        ("deployment_links", "deployment_id"),
        ("deployment_links", "target_id"),
        ("enhancements", "id"),
        ("configuration", "id"),
        ("configuration", "current_session_id"),
    ] {
        let texts = count(&format!("SELECT count(*) FROM {table} WHERE typeof({column}) = 'text'"));
        assert_eq!(texts, 0, "{table}.{column} still holds text ids");
    }
    assert_eq!(
        count("SELECT count(*) FROM work_items WHERE typeof(id) = 'blob' AND length(id) = 16"),
        count("SELECT count(*) FROM work_items"),
    );
    let states = t.store().record_states().unwrap();
    assert_eq!(states.len(), 13, "every record's state reads");

    // The migrated tree answers subtree queries, and full-text search still
    // finds the old rows.
    let exported = json_file("v1.export.json");
    let project = exported["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["item_type"] == "project")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = t.query_work_item(&project, true, false).unwrap();
    assert_eq!(detail.descendant_count, 6, "every item lives under the project");
    let found = t
        .list_work_items(WorkItemFilter {
            text: Some("ledger".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.items.len(), 1);

    // And it keeps working: an update of a migrated record that overwrites a
    // pending change's value leaves that change intact.
    let renamed = exported["work_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["title"] == "Not pushed, renamed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let current = t.query_work_item(&renamed, false, false).unwrap().item;
    t.update_work_item(
        "test",
        WorkItemUpdate {
            id: renamed.clone(),
            version: current.version,
            title: Some("Renamed again".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let outbox = t.store().outbox(100).unwrap();
    assert_eq!(outbox.len(), 4);
    assert_eq!(outbox[..3], pending[..], "earlier pending changes are unchanged");
    assert_eq!(outbox[3].fields["title"], "Renamed again");
    assert_ne!(
        outbox[3].dot.replica, pending[0].dot.replica,
        "the copied store writes under a new replica id"
    );
}
