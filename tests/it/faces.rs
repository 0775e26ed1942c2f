//! Both faces, one contract: every tool called over MCP and the matching
//! command run with `--json`, on one store, answer the same JSON.
//!
//! Reads are compared exactly. Writes are made twice, once through each
//! face, on twin records, and compared with what must differ masked: ids,
//! times and the author (`cli` or the MCP client's name). Imports are
//! compared by their shape (the second import of the same source finds
//! nothing new).

use std::path::{Path, PathBuf};
use std::process::Command;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use waymark::Tracker;
use waymark::mcp::{ServeContext, ServeOptions, Toolset, WaymarkServer};
use waymark_sync::memory::MemoryHub;
use waymark_sync::testing::block_on;
use waymark_sync::{SyncOptions, sync_round};

const BIN: &str = env!("CARGO_BIN_EXE_waymark");
const CLIENT: &str = "faces-test";

struct Faces {
    runtime: tokio::runtime::Runtime,
    client: RunningService<RoleClient, ClientConfig>,
    root: PathBuf,
    data: PathBuf,
}

impl Faces {
    /// An MCP server and the CLI on the store `root/.waymark`, served from
    /// the repository `root`.
    fn new(root: &Path) -> Faces {
        let data = root.join(".waymark");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = WaymarkServer::new(
            Tracker::open(&data).unwrap(),
            ServeOptions {
                toolset: Toolset::All,
                read_only: false,
            },
        )
        .with_context(ServeContext {
            data_dir: Some(data.clone()),
            repo_root: Some(root.to_path_buf()),
            ..ServeContext::default()
        });
        let client = runtime.block_on(async {
            let (server_io, client_io) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                if let Ok(running) = server.serve(server_io).await {
                    let _ = running.waiting().await;
                }
            });
            ClientConfig::new(ClientCapabilities::default(), Implementation::new(CLIENT, "1.0.0"))
                .serve(client_io)
                .await
                .unwrap()
        });
        Faces {
            runtime,
            client,
            root: root.to_path_buf(),
            data,
        }
    }

    /// The tool's structured answer (it must succeed).
    fn tool(&self, name: &str, args: Value) -> Value {
        let Value::Object(args) = args else {
            panic!("arguments are an object")
        };
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
        let result = self.runtime.block_on(self.client.call_tool(params)).unwrap();
        assert_ne!(result.is_error, Some(true), "{name} failed: {result:?}");
        result.structured_content.expect("structured content")
    }

    /// The command's `--json` output (it must succeed).
    fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .arg("--json")
            .current_dir(&self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "waymark {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("waymark {args:?} printed no JSON: {e}"))
    }

    /// A read: both faces answer exactly the same.
    fn same(&self, tool: &str, args: Value, cli: &[&str]) -> Value {
        let over_mcp = self.tool(tool, args);
        let on_cli = self.cli(cli);
        assert_eq!(over_mcp, on_cli, "{tool} and `waymark {}` differ", cli.join(" "));
        over_mcp
    }

    /// A write made through each face: the same answer but for ids, times
    /// and authors.
    fn alike(&self, tool: &str, args: Value, cli: &[&str]) -> (Value, Value) {
        let over_mcp = self.tool(tool, args);
        let on_cli = self.cli(cli);
        assert_eq!(
            masked(&over_mcp),
            masked(&on_cli),
            "{tool} and `waymark {}` differ beyond ids, times and authors",
            cli.join(" ")
        );
        (over_mcp, on_cli)
    }
}

/// `value` with ids (also inside paths), times and authors replaced by
/// placeholders.
fn masked(value: &Value) -> Value {
    let is_id = |s: &str| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;
    match value {
        Value::String(s) if s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' => json!("<time>"),
        Value::String(s) if s == "cli" || s == CLIENT => json!("<author>"),
        Value::String(s) => Value::String(
            s.split('/')
                .map(|part| if is_id(part) { "<id>" } else { part })
                .collect::<Vec<_>>()
                .join("/"),
        ),
        Value::Array(list) => Value::Array(list.iter().map(masked).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), masked(v))).collect()),
        other => other.clone(),
    }
}

/// The keys of an object, as a shape to compare.
fn shape(value: &Value) -> Vec<&String> {
    value.as_object().expect("an object").keys().collect()
}

/// Two stores edit two titles offline and sync through a hub: `store` ends
/// with two open value conflicts, whose ids are returned.
fn make_conflicts(store: &Tracker) -> [String; 2] {
    let other_dir = tempfile::tempdir().unwrap();
    let other = Tracker::open(other_dir.path()).unwrap();
    crate::publish(store);
    crate::publish(&other);
    let hub = MemoryHub::new();
    let round = |t: &Tracker| block_on(sync_round(t.store(), &hub, "faces", SyncOptions::default())).unwrap();
    let items = ["Contested one", "Contested two"].map(|title| {
        store
            .create_work_item("a", crate::new_item("task", title, None))
            .unwrap()
            .id
    });
    round(store);
    round(&other);
    for (t, title) in [(store, "mine"), (&other, "theirs")] {
        for id in &items {
            t.update_work_item(
                "a",
                waymark::ops::WorkItemUpdate {
                    id: id.clone(),
                    version: t.query_work_item(id, false, false).unwrap().item.version,
                    title: Some(title.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        }
    }
    round(store);
    round(&other);
    round(store);
    items.map(|id| format!("work_items/{id}/title"))
}

#[test]
fn every_tool_and_its_command_answer_the_same_json() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    let [first, second] = make_conflicts(&Tracker::open(&root.join(".waymark")).unwrap());
    let f = Faces::new(root);

    // Work items.
    let (p1, p2) = f.alike(
        "create_work_item",
        json!({"item_type": "task", "title": "Twin", "priority": 1, "description": "d", "branch_name": "b"}),
        &[
            "item",
            "create",
            "--type",
            "task",
            "--title",
            "Twin",
            "--priority",
            "1",
            "--description",
            "d",
            "--branch",
            "b",
        ],
    );
    let (a, b) = (p1["id"].as_str().unwrap(), p2["id"].as_str().unwrap());
    f.alike(
        "update_work_item",
        json!({"id": a, "version": 1, "status": "blocked", "metadata": {"blocked_reason": "waiting"}}),
        &[
            "item",
            "update",
            b,
            "--version",
            "1",
            "--status",
            "blocked",
            "--metadata",
            r#"{"blocked_reason":"waiting"}"#,
        ],
    );
    f.same("query_work_item", json!({"id": a}), &["item", "show", a]);
    f.same("list_work_items", json!({}), &["item", "list"]);
    f.same(
        "list_work_items",
        json!({"status": "blocked", "limit": 1}),
        &["item", "list", "--status", "blocked", "--limit", "1"],
    );
    f.same(
        "list_work_items",
        json!({"text": "Twin"}),
        &["item", "list", "--text", "Twin"],
    );
    f.same("list_ready_work", json!({}), &["ready"]);
    f.same(
        "list_ready_work",
        json!({"item_type": "task"}),
        &["ready", "--type", "task"],
    );

    // Dependencies: each face adds one edge.
    let (c, d) = (
        f.tool("create_work_item", json!({"item_type": "task", "title": "C"}))["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        f.tool("create_work_item", json!({"item_type": "task", "title": "D"}))["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    f.alike(
        "manage_dependency",
        json!({"action": "add", "source_id": a, "target_id": c, "dependency_type": "depends_on"}),
        &["dep", "add", b, &d, "--type", "depends_on"],
    );
    f.same("list_ready_work", json!({}), &["ready"]);

    // Claims: the CLI claims as the MCP client (`--as`), so ready work,
    // which leaves out others' claims, reads the same on both faces.
    let twins = [0, 1].map(|_| {
        f.tool(
            "create_work_item",
            json!({"item_type": "task", "title": "Claimed", "priority": 0}),
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let (claimed, _) = f.alike(
        "claim_work_item",
        json!({"id": twins[0], "minutes": 45}),
        &["claim", &twins[1], "--minutes", "45", "--as", CLIENT],
    );
    assert_eq!(claimed["claim"]["state"], "tentative");
    assert_eq!(claimed["claim"]["holder"], CLIENT);
    f.same("list_ready_work", json!({}), &["ready", "--as", CLIENT]);
    f.same("query_work_item", json!({"id": twins[0]}), &["item", "show", &twins[0]]);
    f.same("list_work_items", json!({}), &["item", "list"]);
    f.alike(
        "claim_work_item",
        json!({"next": true, "item_type": "task"}),
        &["claim", "next", "--type", "task", "--as", CLIENT],
    );
    let with_history = f.tool("query_work_item", json!({"id": twins[0], "history": true}));
    assert_eq!(with_history["history"], f.cli(&["history", &twins[0]]));
    let (released, _) = f.alike(
        "claim_work_item",
        json!({"id": twins[0], "release": true}),
        &["release", &twins[1], "--as", CLIENT],
    );
    assert_eq!(released["claim"], Value::Null);

    // Vendors.
    let masked_names = |v: Value| {
        let mut v = v;
        v["name"] = json!("<name>");
        v
    };
    let created_over_mcp = f.tool(
        "create_vendor",
        json!({"name": "Mcp Vendor", "extractor_version": "1.0.0"}),
    );
    let created_on_cli = f.cli(&["vendor", "create", "Cli Vendor", "--extractor-version", "1.0.0"]);
    assert_eq!(
        masked(&masked_names(created_over_mcp)),
        masked(&masked_names(created_on_cli))
    );
    let updated_over_mcp = f.tool(
        "update_vendor_status",
        json!({"name": "mcp vendor", "version": 1, "status": "operational"}),
    );
    let updated_on_cli = f.cli(&[
        "vendor",
        "update",
        "cli vendor",
        "--version",
        "1",
        "--status",
        "operational",
    ]);
    assert_eq!(
        masked(&masked_names(updated_over_mcp)),
        masked(&masked_names(updated_on_cli))
    );
    f.same(
        "query_vendor_status",
        json!({"name": "MCP VENDOR"}),
        &["vendor", "show", "MCP VENDOR"],
    );
    f.same("list_vendors", json!({}), &["vendor", "list"]);
    f.same(
        "list_vendors",
        json!({"status": "operational"}),
        &["vendor", "list", "--status", "operational"],
    );

    // Deployments.
    let commit = "a".repeat(40);
    f.alike(
        "record_deployment",
        json!({"commit_hash": commit, "pr_number": 7, "pr_title": "Ship", "test_summary": {"unit": 3},
               "vendor_ids": ["Mcp Vendor"], "work_item_ids": [a]}),
        &[
            "deploy",
            "record",
            "--commit",
            &commit,
            "--pr",
            "7",
            "--title",
            "Ship",
            "--tests",
            "unit=3",
            "--vendor",
            "Mcp Vendor",
            "--item",
            a,
        ],
    );
    f.same("list_deployments", json!({}), &["deploy", "list"]);
    f.same(
        "list_deployments",
        json!({"vendor": "mcp vendor"}),
        &["deploy", "list", "--vendor", "mcp vendor"],
    );

    // Configuration: the answer of a change is what a read shows after it.
    let set_on_cli = f.cli(&["config", "set", "--context", "research", "--branch", "main"]);
    assert_eq!(set_on_cli, f.tool("get_project_configuration", json!({})));
    let set_over_mcp = f.tool("update_project_configuration", json!({"git_branch": "next"}));
    assert_eq!(set_over_mcp, f.cli(&["config", "show"]));

    // Enhancements.
    let (e1, e2) = f.alike(
        "manage_enhancement",
        json!({"action": "create", "title": "Faster", "priority": 2, "target_quarter": "2027-Q1"}),
        &[
            "enhancement",
            "create",
            "--title",
            "Faster",
            "--priority",
            "2",
            "--quarter",
            "2027-Q1",
        ],
    );
    f.alike(
        "manage_enhancement",
        json!({"action": "update", "id": e1["id"], "version": 1, "status": "approved"}),
        &[
            "enhancement",
            "update",
            e2["id"].as_str().unwrap(),
            "--version",
            "1",
            "--status",
            "approved",
        ],
    );
    let e = e1["id"].as_str().unwrap();
    f.same(
        "manage_enhancement",
        json!({"action": "get", "id": e}),
        &["enhancement", "show", e],
    );
    f.same(
        "manage_enhancement",
        json!({"action": "list"}),
        &["enhancement", "list"],
    );
    f.same(
        "manage_enhancement",
        json!({"action": "list", "status": "approved"}),
        &["enhancement", "list", "--status", "approved"],
    );

    // Archive: a dry run writes nothing, so both faces see the same.
    f.tool(
        "update_work_item",
        json!({"id": c, "version": 1, "status": "completed"}),
    );
    f.same(
        "archive_work_items",
        json!({"older_than_days": 0, "dry_run": true}),
        &["archive", "run", "--older-than-days", "0", "--dry-run"],
    );
    f.same("list_work_items", json!({"archived": true}), &["archive", "list"]);

    // What changed since a cursor: `wait_for_changes` and `watch --once`.
    let changed = f.same(
        "wait_for_changes",
        json!({"cursor": "0", "timeout_s": 0}),
        &["watch", "--cursor", "0", "--once", "--timeout", "0"],
    );
    assert!(!changed["changes"].as_array().unwrap().is_empty(), "{changed}");
    f.same(
        "wait_for_changes",
        json!({"cursor": "0", "timeout_s": 0, "collections": ["vendors"]}),
        &[
            "watch",
            "--cursor",
            "0",
            "--once",
            "--timeout",
            "0",
            "--collections",
            "vendors",
        ],
    );

    // The report, sync health and conflicts.
    // The report names the time it was made: alike, not the same.
    let (status, _) = f.alike("get_project_status", json!({}), &["status"]);
    assert!(
        status["summary"]["work_items"]["by_status"]["active"].as_i64() > Some(0),
        "{status}"
    );
    f.alike(
        "get_project_status",
        json!({"format": "json"}),
        &["status", "--format", "json"],
    );
    f.same("sync", json!({"action": "status"}), &["sync", "--status"]);
    let listed = f.same("list_conflicts", json!({}), &["conflicts"]);
    assert_eq!(listed["total_count"], 2, "{listed}");
    let first_page = f.same("list_conflicts", json!({"limit": 1}), &["conflicts", "--limit", "1"]);
    let next = first_page["next_cursor"].as_str().expect("a second page").to_owned();
    let second_page = f.same(
        "list_conflicts",
        json!({"limit": 1, "cursor": next}),
        &["conflicts", "--limit", "1", "--cursor", &next],
    );
    assert_eq!(
        [&first_page["conflicts"][0], &second_page["conflicts"][0]],
        [&listed["conflicts"][0], &listed["conflicts"][1]],
        "pages follow the list's order"
    );
    assert!(second_page.get("next_cursor").is_none(), "{second_page}");
    // Each face resolves one, by the dot of a value and by the value.
    let values = |n: usize| listed["conflicts"][n]["values"].as_array().unwrap().clone();
    let (one, two) = (values(0), values(1));
    let over_mcp = f.tool("resolve_conflict", json!({"conflict_id": first, "dot": one[0]["dot"]}));
    let on_cli = f.cli(&["resolve", &second, "--value", &two[0]["value"].to_string()]);
    assert_eq!(
        (&over_mcp["value"], &on_cli["value"]),
        (&one[0]["value"], &two[0]["value"])
    );
    assert_eq!(masked(&over_mcp), masked(&on_cli));
    assert_eq!(f.tool("list_conflicts", json!({}))["total_count"], 0);

    // Export and import.
    let report = root.canonicalize().unwrap().join("faces.md");
    f.same(
        "export_markdown",
        json!({"path": report.to_str().unwrap()}),
        &["export", "markdown", "--out", report.to_str().unwrap()],
    );
    let over_mcp = f.tool("import_markdown", json!({"path": "faces.md"}));
    let on_cli = f.cli(&["import", "markdown", "faces.md"]);
    assert_eq!(shape(&over_mcp), shape(&on_cli));
}
