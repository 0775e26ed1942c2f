//! The MCP server, as a client sees it: every tool's happy path and error
//! paths over an in-process duplex pipe, hostile input each followed by a
//! call that works, the size budgets of `tools/list` and of a list page, and
//! end-to-end sessions against the built binary over stdio.

use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ErrorCode, Implementation,
    ProtocolVersion, ReadResourceRequestParams, ResourceContents, Tool,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use waymark::Tracker;
use waymark::mcp::{CORE_TOOLS, ServeContext, ServeOptions, Toolset, WaymarkServer};

const BIN: &str = env!("CARGO_BIN_EXE_waymark");
const CLIENT: &str = "test-agent";

type Client = RunningService<RoleClient, ClientConfig>;

/// Every tool (the default toolset is `core`).
const ALL: ServeOptions = ServeOptions {
    toolset: Toolset::All,
    read_only: false,
};

fn client_config(name: &str) -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new(name, "1.0.0"))
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
}

/// A client talking to a server over an in-process pipe.
struct Session {
    client: Client,
    tracker: Tracker,
    _dir: Option<TempDir>,
}

impl Session {
    async fn new(options: ServeOptions) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::open(dir.path()).unwrap();
        let mut s = Session::on(tracker, options, CLIENT).await;
        s._dir = Some(dir);
        s
    }

    async fn all() -> Session {
        Session::new(ServeOptions {
            toolset: Toolset::All,
            read_only: false,
        })
        .await
    }

    /// A server that serves the repository `root` (with a `.git` and its
    /// store in `root/.waymark`), as `waymark serve` run there does.
    async fn in_repository(root: &std::path::Path) -> Session {
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let data_dir = root.join(".waymark");
        let context = ServeContext {
            data_dir: Some(data_dir.clone()),
            repo_root: Some(root.to_path_buf()),
            ..ServeContext::default()
        };
        Session::serving(Tracker::open(&data_dir).unwrap(), context).await
    }

    /// A server on `tracker` whose file tools use `root` (the store lives elsewhere).
    async fn with_files(tracker: Tracker, root: &std::path::Path) -> Session {
        let context = ServeContext {
            file_roots: vec![root.to_path_buf()],
            ..ServeContext::default()
        };
        Session::serving(tracker, context).await
    }

    async fn serving(tracker: Tracker, context: ServeContext) -> Session {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = WaymarkServer::new(tracker.clone(), ALL).with_context(context);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = client_config(CLIENT).serve(client_io).await.unwrap();
        Session {
            client,
            tracker,
            _dir: None,
        }
    }

    /// A second server and client on the same store.
    async fn on(tracker: Tracker, options: ServeOptions, client_name: &str) -> Session {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = WaymarkServer::new(tracker.clone(), options);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = client_config(client_name).serve(client_io).await.unwrap();
        Session {
            client,
            tracker,
            _dir: None,
        }
    }

    async fn call(&self, tool: &str, args: Value) -> Result<CallToolResult, ServiceError> {
        let params = CallToolRequestParams::new(tool.to_owned());
        let params = match args {
            Value::Object(m) => params.with_arguments(m),
            Value::Null => params,
            other => panic!("arguments must be an object, not {other}"),
        };
        tokio::time::timeout(Duration::from_secs(10), self.client.call_tool(params))
            .await
            .expect("server answers")
    }

    /// Call a tool that must succeed; its structured content, checked against
    /// its text copy.
    async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
        assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
        let sc = r
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{tool}: no structuredContent"));
        assert!(sc.is_object(), "{tool}: structuredContent is not an object");
        assert_eq!(text(&r), sc.to_string(), "{tool}: the text copy is the compact JSON");
        sc
    }

    /// Call a tool that must fail with `isError`; its message.
    async fn err(&self, tool: &str, args: Value) -> String {
        let r = self
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool} should fail but gave {:?}",
            r.structured_content
        );
        assert!(r.structured_content.is_none());
        text(&r)
    }

    async fn tools(&self) -> Vec<Tool> {
        self.client.list_all_tools().await.unwrap()
    }

    async fn project(&self, title: &str) -> Value {
        self.ok(
            "create_work_item",
            json!({"item_type": "project", "title": title, "metadata": {"description": "a project"}}),
        )
        .await
    }

    async fn item(&self, item_type: &str, title: &str, parent: &Value) -> Value {
        self.ok(
            "create_work_item",
            json!({"item_type": item_type, "title": title, "parent_id": parent["id"]}),
        )
        .await
    }
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn size(v: &impl serde::Serialize) -> usize {
    serde_json::to_string(v).unwrap().len()
}

fn names(tools: &[Tool]) -> Vec<String> {
    tools.iter().map(|t| t.name.to_string()).collect()
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

const ALL_TOOLS: &[&str] = &[
    "archive_work_items",
    "claim_work_item",
    "create_vendor",
    "create_work_item",
    "export_markdown",
    "get_project_configuration",
    "get_project_status",
    "import_git_history",
    "import_markdown",
    "list_conflicts",
    "list_deployments",
    "list_ready_work",
    "list_vendors",
    "list_work_items",
    "manage_dependency",
    "manage_enhancement",
    "query_vendor_status",
    "query_work_item",
    "record_deployment",
    "resolve_conflict",
    "sync",
    "update_project_configuration",
    "update_vendor_status",
    "update_work_item",
    "wait_for_changes",
];

const READ_TOOLS: &[&str] = &[
    "get_project_configuration",
    "get_project_status",
    "list_conflicts",
    "list_deployments",
    "list_ready_work",
    "list_vendors",
    "list_work_items",
    "query_vendor_status",
    "query_work_item",
    "wait_for_changes",
];

/// No `$ref`, `$defs` or nullable type array anywhere in a schema.
fn assert_clean_schema(at: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            for key in ["$ref", "$defs", "$schema", "definitions"] {
                assert!(!m.contains_key(key), "{key} in {at}");
            }
            if let Some(t) = m.get("type") {
                assert!(t.is_string(), "type array at {at}: {t}");
                assert_ne!(t, "null", "null type at {at}");
            }
            assert!(!m.contains_key("anyOf") && !m.contains_key("oneOf"), "union at {at}");
            for (k, v) in m {
                assert_clean_schema(&format!("{at}.{k}"), v);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| assert_clean_schema(at, v)),
        _ => {}
    }
}

#[tokio::test]
async fn the_server_names_itself_and_describes_every_tool() {
    let s = Session::all().await;
    let info = s.client.peer_info().unwrap();
    let server = info.server_info.as_ref().unwrap();
    assert_eq!(
        (server.name.as_str(), server.version.as_str()),
        ("waymark", env!("CARGO_PKG_VERSION"))
    );
    assert!(info.instructions.as_deref().unwrap().contains("list_ready_work"));
    assert!(info.capabilities.tools.is_some() && info.capabilities.resources.is_some());

    let tools = s.tools().await;
    assert_eq!(names(&tools), sorted(ALL_TOOLS));
    for t in &tools {
        let name = t.name.as_ref();
        let description = t.description.as_deref().unwrap_or_default();
        assert!(description.len() > 25, "{name} needs a description a model can act on");
        let input = serde_json::to_value(&*t.input_schema).unwrap();
        assert_eq!(input["type"], "object", "{name} input is object-rooted");
        assert_clean_schema(&format!("{name}.inputSchema"), &input);
        for (field, schema) in input["properties"].as_object().unwrap() {
            // resolve_conflict's `value` is any JSON value, as listed.
            if (name, field.as_str()) != ("resolve_conflict", "value") {
                assert!(schema.get("type").is_some(), "{name}.{field} has a type");
            }
        }
        // No output schemas: answers are the operations' JSON as it comes,
        // and a schema would cost context all session.
        assert!(t.output_schema.is_none(), "{name} declares no output schema");
        // Hints a client needs, and no byte more: read-only tools say so;
        // writers that destroy nothing say so (destructive is the default).
        let read_only = t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
        assert_eq!(read_only, READ_TOOLS.contains(&name), "{name} readOnlyHint");
    }
    let destructive: Vec<&str> = tools
        .iter()
        .filter(|t| {
            let a = t.annotations.as_ref();
            a.and_then(|a| a.read_only_hint) != Some(true) && a.and_then(|a| a.destructive_hint) != Some(false)
        })
        .map(|t| t.name.as_ref())
        .collect();
    assert_eq!(
        destructive,
        // resolve_conflict drops the other values; export_markdown overwrites the report file.
        [
            "archive_work_items",
            "export_markdown",
            "manage_dependency",
            "resolve_conflict",
            "update_work_item"
        ]
    );

    // Field descriptions and ranges reach the client.
    let create = tools.iter().find(|t| t.name == "create_work_item").unwrap();
    let props = &create.input_schema["properties"];
    assert_eq!(props["priority"]["minimum"], 0);
    assert_eq!(props["priority"]["maximum"], 4);
    assert_eq!(props["title"]["maxLength"], 200);
    assert_eq!(
        props["item_type"]["enum"],
        json!(["project", "session", "task", "research"])
    );
    assert!(props["parent_id"]["description"].as_str().unwrap().contains("depth"));
    assert_eq!(create.input_schema["required"], json!(["item_type", "title"]));
    let list = tools.iter().find(|t| t.name == "list_work_items").unwrap();
    assert_eq!(list.input_schema["properties"]["limit"]["maximum"], 100);
}

#[tokio::test]
async fn tools_list_fits_its_budgets() {
    let all = Session::all().await.tools().await;
    let core = Session::new(ServeOptions {
        toolset: Toolset::Core,
        read_only: false,
    })
    .await
    .tools()
    .await;
    let all_size = size(&json!({ "tools": all }));
    let core_size = size(&json!({ "tools": core }));
    let mut sizes: Vec<(usize, &str)> = all.iter().map(|t| (size(t), t.name.as_ref())).collect();
    sizes.sort();
    eprintln!("tools/list: all {all_size} bytes, core {core_size} bytes; per tool: {sizes:?}");
    // Issue 15's budgets, as the official Python SDK counts them
    // (benches/tools_list_size.py): the same compact JSON, plus about 60
    // bytes of result fields the SDK fills in (ttlMs, cacheScope,
    // resultType), kept free here.
    const SDK_FIELDS: usize = 64;
    assert!(all_size + SDK_FIELDS <= 12_000, "whole tools/list is {all_size} bytes");
    assert!(core_size + SDK_FIELDS <= 8_000, "core tools/list is {core_size} bytes");
}

#[tokio::test]
async fn toolsets_and_read_only_narrow_the_list() {
    let core = Session::new(ServeOptions {
        toolset: Toolset::Core,
        read_only: false,
    })
    .await;
    assert_eq!(names(&core.tools().await), sorted(CORE_TOOLS));
    assert_eq!(CORE_TOOLS.len(), 15);
    // The earlier tracker's ten tools keep their names, in the default set.
    assert!(waymark::mcp::LEGACY_TOOLS.iter().all(|t| CORE_TOOLS.contains(t)));
    // A tool outside the set is unknown to this server: a protocol error.
    let e = core
        .call("manage_enhancement", json!({"action": "list"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::McpError(d) if d.code == ErrorCode::INVALID_PARAMS),
        "{e}"
    );
    core.ok("list_ready_work", json!({})).await;

    let read_only = Session::new(ServeOptions {
        toolset: Toolset::All,
        read_only: true,
    })
    .await;
    assert_eq!(names(&read_only.tools().await), sorted(READ_TOOLS));
    let e = read_only
        .call("create_work_item", json!({"item_type": "task", "title": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::McpError(d) if d.code == ErrorCode::INVALID_PARAMS),
        "{e}"
    );
    read_only.ok("get_project_configuration", json!({})).await;

    let both = Session::new(ServeOptions {
        toolset: Toolset::Core,
        read_only: true,
    })
    .await;
    let expected: Vec<&str> = CORE_TOOLS.iter().copied().filter(|t| READ_TOOLS.contains(t)).collect();
    assert_eq!(names(&both.tools().await), sorted(&expected));

    assert_eq!("core".parse::<Toolset>(), Ok(Toolset::Core));
    assert_eq!(" ALL ".parse::<Toolset>(), Ok(Toolset::All));
    assert!("some".parse::<Toolset>().unwrap_err().contains("core or all"));
    assert_eq!(
        ServeOptions::default(),
        ServeOptions {
            toolset: Toolset::Core,
            read_only: false
        },
        "the default toolset is the lean one"
    );
}

#[tokio::test]
async fn work_items_are_created_updated_queried_and_listed() {
    let s = Session::all().await;
    let p = s.project("Waymark").await;
    assert_eq!(
        (p["item_type"].as_str(), p["version"].as_i64()),
        (Some("project"), Some(1))
    );
    assert_eq!(
        (p["created_by"].as_str(), p["updated_by"].as_str()),
        (Some(CLIENT), Some(CLIENT))
    );
    let session = s.item("session", "First session", &p).await;
    let task = s
        .ok(
            "create_work_item",
            json!({"item_type": "task", "title": "Write the MCP server", "parent_id": session["id"],
                   "priority": 0, "branch_name": "003-mcp", "metadata": {"estimated_hours": 4}}),
        )
        .await;
    assert_eq!((task["depth"].as_i64(), task["priority"].as_i64()), (Some(2), Some(0)));

    // update with the version read; a stale version names both versions and the writer.
    let updated = s
        .ok(
            "update_work_item",
            json!({"id": task["id"], "version": 1, "status": "completed", "metadata": {"actual_hours": 5}}),
        )
        .await;
    assert_eq!(
        (updated["status"].as_str(), updated["version"].as_i64()),
        (Some("completed"), Some(2))
    );
    assert_eq!(updated["metadata"], json!({"estimated_hours": 4, "actual_hours": 5}));
    let stale = s
        .err(
            "update_work_item",
            json!({"id": task["id"], "version": 1, "title": "Late"}),
        )
        .await;
    assert!(
        stale.contains("version 1") && stale.contains("version 2") && stale.contains(CLIENT),
        "{stale}"
    );

    // query: the item with its ancestors, root first, and descendants.
    let q = s.ok("query_work_item", json!({"id": task["id"]})).await;
    assert_eq!(q["item"]["title"], "Write the MCP server");
    let ancestors: Vec<&Value> = q["ancestors"].as_array().unwrap().iter().map(|a| &a["id"]).collect();
    assert_eq!(ancestors, [&p["id"], &session["id"]]);
    let q = s
        .ok("query_work_item", json!({"id": p["id"], "include_dependencies": false}))
        .await;
    assert_eq!(q["descendant_count"], 2);
    assert!(q.get("dependencies").is_none());
    let q = s
        .ok("query_work_item", json!({"id": p["id"], "include_children": false}))
        .await;
    assert_eq!(q["descendants"], json!([]));

    // list: rows under columns, filters, pages with an opaque cursor.
    let page = s.ok("list_work_items", json!({})).await;
    assert_eq!(
        page["columns"],
        json!(<waymark::ops::WorkItemRow as waymark::ops::Row>::COLUMNS)
    );
    assert_eq!(page["total_count"], 3);
    assert_eq!(page["rows"][0][0], p["id"]);
    assert!(page.get("next_cursor").is_none());
    let tasks = s
        .ok("list_work_items", json!({"item_type": "task", "status": "completed"}))
        .await;
    assert_eq!(tasks["total_count"], 1);
    let found = s.ok("list_work_items", json!({"text": "mcp"})).await;
    assert_eq!(found["rows"][0][1], "Write the MCP server");
    let children = s.ok("list_work_items", json!({"parent_id": p["id"]})).await;
    assert_eq!(children["total_count"], 1);
    let first = s.ok("list_work_items", json!({"limit": 2})).await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 2);
    let second = s
        .ok("list_work_items", json!({"limit": 2, "cursor": first["next_cursor"]}))
        .await;
    assert_eq!(second["rows"].as_array().unwrap().len(), 1);
    assert_eq!(second["rows"][0][0], task["id"]);

    // soft delete hides it from lists unless asked, and restores.
    let v = updated["version"].clone();
    s.ok(
        "update_work_item",
        json!({"id": task["id"], "version": v, "deleted": true}),
    )
    .await;
    assert_eq!(s.ok("list_work_items", json!({})).await["total_count"], 2);
    assert_eq!(
        s.ok("list_work_items", json!({"include_deleted": true})).await["total_count"],
        3
    );
}

#[tokio::test]
async fn work_item_errors_are_tool_errors_that_say_what_to_do() {
    let s = Session::all().await;
    let missing = "0190a4b2-7c1e-7d3a-9f2e-123456789abc";
    let cases = [
        (
            "create_work_item",
            json!({"item_type": "epic", "title": "x"}),
            "project, session, task, research",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "   "}),
            "title",
        ),
        (
            "create_work_item",
            json!({"item_type": "project", "title": "No description"}),
            "description",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "priority": 9}),
            "priority",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "commit_hash": "xyz"}),
            "commit_hash",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "parent_id": missing}),
            "list_work_items",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "parent_id": "nope"}),
            "parent_id",
        ),
        (
            "update_work_item",
            json!({"id": missing, "version": 1}),
            "list_work_items",
        ),
        ("query_work_item", json!({"id": missing}), "not found"),
        ("query_work_item", json!({"id": "WM-1"}), "id"),
        ("list_work_items", json!({"limit": 0}), "limit"),
        ("list_work_items", json!({"limit": 101}), "limit"),
        ("list_work_items", json!({"cursor": "zz"}), "start again without one"),
        ("list_work_items", json!({"status": "sleeping"}), "status"),
        ("list_ready_work", json!({"item_type": "bug"}), "item_type"),
        ("list_ready_work", json!({"cursor": "00"}), "cursor"),
    ];
    for (tool, args, expected) in cases {
        let message = s.err(tool, args.clone()).await;
        assert!(
            message.contains(expected),
            "{tool} {args}: {message:?} should mention {expected:?}"
        );
    }
    // The depth limit: six levels, 0 to 5.
    let mut parent = s.project("Deep").await;
    for depth in 1..=5 {
        parent = s.item("task", &format!("level {depth}"), &parent).await;
        assert_eq!(parent["depth"], depth);
    }
    let deeper = s
        .err(
            "create_work_item",
            json!({"item_type": "task", "title": "6", "parent_id": parent["id"]}),
        )
        .await;
    assert!(deeper.contains("depth 6") && deeper.contains("limit"), "{deeper}");
    // Moving an item under its own descendant is a cycle.
    let root = s.project("Root").await;
    let child = s.item("task", "child", &root).await;
    let cycle = s
        .err(
            "update_work_item",
            json!({"id": root["id"], "version": 1, "parent_id": child["id"]}),
        )
        .await;
    assert!(cycle.contains("descendants"), "{cycle}");
}

/// Claims over MCP: the client's name is the agent, unless the server
/// names one (`serve --as`); another agent's write is refused with the
/// holder and the expiry; ready work leaves the item out for others.
#[tokio::test]
async fn claims_name_the_agent_and_keep_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(dir.path()).unwrap();
    let named = Session::serving(
        tracker.clone(),
        ServeContext {
            agent: Some("alice".into()),
            ..ServeContext::default()
        },
    )
    .await;
    let other = Session::on(tracker, ALL, "other-client").await;
    let item = named
        .ok("create_work_item", json!({"item_type": "task", "title": "T"}))
        .await;
    assert_eq!(item["created_by"], "alice");
    let claimed = named.ok("claim_work_item", json!({"next": true})).await;
    assert_eq!(claimed["item"]["id"], item["id"]);
    assert_eq!(claimed["claim"]["holder"], "alice");
    assert_eq!(claimed["claim"]["state"], "tentative");
    let refused = other
        .err(
            "update_work_item",
            json!({"id": item["id"], "version": 1, "title": "mine"}),
        )
        .await;
    assert!(refused.contains("claimed by \"alice\" until"), "{refused}");
    assert_eq!(other.ok("list_ready_work", json!({})).await["total_count"], 0);
    assert_eq!(named.ok("list_ready_work", json!({})).await["rows"][0][7], "alice");
    let released = named
        .ok("claim_work_item", json!({"id": item["id"], "release": true}))
        .await;
    assert_eq!(released["claim"], Value::Null);
    assert_eq!(other.ok("list_ready_work", json!({})).await["total_count"], 1);
}

#[tokio::test]
async fn dependencies_shape_ready_work() {
    let s = Session::all().await;
    let p = s.project("P").await;
    let a = s.item("task", "A", &p).await;
    let b = s.item("task", "B", &p).await;
    let ready = s.ok("list_ready_work", json!({"item_type": "task"})).await;
    assert_eq!(ready["total_count"], 2);

    let dep = json!({"action": "add", "source_id": b["id"], "target_id": a["id"], "dependency_type": "depends_on"});
    let d = s.ok("manage_dependency", dep.clone()).await;
    assert_eq!(
        (d["source_id"].clone(), d["dependency_type"].as_str()),
        (b["id"].clone(), Some("depends_on"))
    );
    assert_eq!(d["created_by"], CLIENT);
    assert_eq!(
        s.ok("manage_dependency", dep.clone()).await["id"],
        d["id"],
        "adding twice is harmless"
    );
    let ready = s.ok("list_ready_work", json!({"item_type": "task"})).await;
    assert_eq!(
        ready["rows"],
        json!([[a["id"], "A", "task", "active", 2, p["id"], 1, null]])
    );
    let q = s.ok("query_work_item", json!({"id": b["id"]})).await;
    assert_eq!(q["dependencies"]["depends_on"][0]["item"]["id"], a["id"]);

    let cycle = s
        .err(
            "manage_dependency",
            json!({"action": "add", "source_id": a["id"], "target_id": b["id"], "dependency_type": "depends_on"}),
        )
        .await;
    assert!(cycle.contains("cycle"), "{cycle}");
    let blocks_cycle = s
        .err(
            "manage_dependency",
            json!({"action": "add", "source_id": b["id"], "target_id": a["id"], "dependency_type": "blocks"}),
        )
        .await;
    assert!(blocks_cycle.contains("cycle"), "{blocks_cycle}");
    let own = s
        .err(
            "manage_dependency",
            json!({"action": "add", "source_id": a["id"], "target_id": a["id"], "dependency_type": "blocks"}),
        )
        .await;
    assert!(own.contains("itself"), "{own}");
    let bad_action = s
        .err(
            "manage_dependency",
            json!({"action": "toggle", "source_id": a["id"], "target_id": b["id"], "dependency_type": "blocks"}),
        )
        .await;
    assert!(bad_action.contains("`add` or `remove`"), "{bad_action}");
    let bad_type = s
        .err(
            "manage_dependency",
            json!({"action": "add", "source_id": a["id"], "target_id": b["id"], "dependency_type": "after"}),
        )
        .await;
    assert!(bad_type.contains("blocks, depends_on"), "{bad_type}");

    // Finishing A frees B; removing the edge frees it too.
    s.ok(
        "update_work_item",
        json!({"id": a["id"], "version": 1, "status": "completed"}),
    )
    .await;
    assert_eq!(
        s.ok("list_ready_work", json!({"item_type": "task"})).await["rows"][0][0],
        b["id"]
    );
    let mut remove = dep.clone();
    remove["action"] = json!("remove");
    s.ok("manage_dependency", remove.clone()).await;
    let gone = s.err("manage_dependency", remove).await;
    assert!(gone.contains("not found"), "{gone}");
}

#[tokio::test]
async fn vendors_are_created_queried_updated_and_listed() {
    let s = Session::all().await;
    let v = s
        .ok(
            "create_vendor",
            json!({"name": "Acme Corp", "extractor_version": "1.2.0", "metadata": {"format_support": {"csv": true}}}),
        )
        .await;
    assert_eq!((v["status"].as_str(), v["version"].as_i64()), (Some("broken"), Some(1)));
    let dup = s.err("create_vendor", json!({"name": "acme corp"})).await;
    assert!(
        dup.contains("already exists") && dup.contains("update_vendor_status"),
        "{dup}"
    );
    assert!(
        s.err("create_vendor", json!({"name": "bad/name"}))
            .await
            .contains("name")
    );

    assert_eq!(
        s.ok("query_vendor_status", json!({"name": "ACME CORP"})).await["id"],
        v["id"]
    );
    let missing = s.err("query_vendor_status", json!({"name": "Nobody"})).await;
    assert!(missing.contains("list_vendors"), "{missing}");
    assert!(
        s.err("query_vendor_status", json!({"name": " "}))
            .await
            .contains("empty")
    );

    let up = s
        .ok(
            "update_vendor_status",
            json!({"name": "acme corp", "version": 1, "status": "operational",
                   "metadata": {"test_results": {"passing": 9, "total": 10}}}),
        )
        .await;
    assert_eq!(
        (up["status"].as_str(), up["version"].as_i64()),
        (Some("operational"), Some(2))
    );
    assert_eq!(
        up["metadata"]["format_support"],
        json!({"csv": true}),
        "metadata merges"
    );
    assert_eq!(up["updated_by"], CLIENT);
    let stale = s
        .err(
            "update_vendor_status",
            json!({"name": "Acme Corp", "version": 1, "status": "broken"}),
        )
        .await;
    assert!(stale.contains("version 2"), "{stale}");
    let invalid = s
        .err(
            "update_vendor_status",
            json!({"name": "Acme Corp", "version": 2, "metadata": {"test_results": {"passing": 11, "total": 10}}}),
        )
        .await;
    assert!(invalid.contains("passing"), "{invalid}");
    assert!(
        s.err(
            "update_vendor_status",
            json!({"name": "Acme Corp", "version": 2, "status": "meh"})
        )
        .await
        .contains("operational")
    );

    s.ok("create_vendor", json!({"name": "Beta"})).await;
    let page = s.ok("list_vendors", json!({})).await;
    assert_eq!(
        page["columns"],
        json!(["name", "status", "extractor_version", "tests", "updated_at", "version"])
    );
    assert_eq!(
        page["rows"][0].as_array().unwrap()[..4],
        json!(["Acme Corp", "operational", "1.2.0", "9/10"]).as_array().unwrap()[..]
    );
    assert_eq!(page["total_count"], 2);
    assert_eq!(
        s.ok("list_vendors", json!({"status": "broken"})).await["rows"][0][0],
        "Beta"
    );
    assert!(
        s.err("list_vendors", json!({"status": "fine"}))
            .await
            .contains("status")
    );
}

#[tokio::test]
async fn deployments_are_recorded_with_links_and_listed() {
    let s = Session::all().await;
    let p = s.project("P").await;
    let t = s.item("task", "Ship it", &p).await;
    let v = s.ok("create_vendor", json!({"name": "Acme"})).await;
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let d = s
        .ok(
            "record_deployment",
            json!({"commit_hash": commit, "pr_number": 12, "pr_title": "MCP server",
                   "test_summary": {"unit": 150, "integration": 30}, "constitutional_compliance": true,
                   "vendor_ids": ["acme"], "work_item_ids": [t["id"]], "deployed_at": "2026-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(d["vendor_ids"], json!([v["id"]]));
    assert_eq!(d["work_item_ids"], json!([t["id"]]));
    assert_eq!(d["metadata"]["test_summary"]["unit"], 150);
    let later = s.ok("record_deployment", json!({"commit_hash": commit})).await;

    for (args, expected) in [
        (json!({"commit_hash": "abc"}), "commit_hash"),
        (json!({"commit_hash": commit, "vendor_ids": ["nobody"]}), "list_vendors"),
        (json!({"commit_hash": commit, "vendor_ids": ["acme", "ACME"]}), "twice"),
        (
            json!({"commit_hash": commit, "work_item_ids": ["0190a4b2-7c1e-7d3a-9f2e-123456789abc"]}),
            "not found",
        ),
        (
            json!({"commit_hash": commit, "deployed_at": "yesterday"}),
            "deployed_at",
        ),
        (
            json!({"commit_hash": commit, "test_summary": {"unit": -1}}),
            "test_summary",
        ),
        (json!({"commit_hash": commit, "pr_number": 0}), "pr_number"),
    ] {
        let message = s.err("record_deployment", args.clone()).await;
        assert!(
            message.contains(expected),
            "{args}: {message:?} should mention {expected:?}"
        );
    }

    let page = s.ok("list_deployments", json!({})).await;
    assert_eq!(
        page["columns"],
        json!(["id", "deployed_at", "commit_hash", "pr_number", "pr_title"])
    );
    assert_eq!(page["total_count"], 2);
    assert_eq!(page["rows"][0][0], later["id"], "newest first");
    let by_vendor = s.ok("list_deployments", json!({"vendor": "ACME"})).await;
    assert_eq!(
        by_vendor["rows"],
        json!([[d["id"], d["deployed_at"], commit, 12, "MCP server"]])
    );
    assert_eq!(
        s.ok("list_deployments", json!({"work_item_id": t["id"]})).await["total_count"],
        1
    );
    assert!(
        s.err("list_deployments", json!({"vendor": "nobody"}))
            .await
            .contains("not found")
    );
}

#[tokio::test]
async fn configuration_is_read_and_updated() {
    let s = Session::all().await;
    let c = s.ok("get_project_configuration", json!({})).await;
    assert_eq!(
        (c["active_context_type"].as_str(), c["default_token_budget"].as_i64()),
        (Some("feature"), Some(200_000))
    );
    assert_eq!(c["version"], 0);
    assert_eq!(c["sync"]["hub_configured"], false);
    assert_eq!(
        s.ok("get_project_configuration", Value::Null).await,
        c,
        "arguments may be left out"
    );

    let p = s.project("P").await;
    let session = s.item("session", "Now", &p).await;
    let task = s.item("task", "Not a session", &session).await;
    let up = s
        .ok(
            "update_project_configuration",
            json!({"version": 0, "active_context_type": "maintenance", "current_session_id": session["id"],
                   "git_branch": "main", "default_token_budget": 50000}),
        )
        .await;
    assert_eq!(
        (up["active_context_type"].as_str(), up["version"].as_i64()),
        (Some("maintenance"), Some(1))
    );
    assert_eq!(up["updated_by"], CLIENT);
    // No hub: a store that never synced queues no changes (its first hub
    // gets its whole state).
    assert_eq!(up["sync"]["pending_changes"].as_i64(), Some(0));
    assert_eq!(s.ok("get_project_configuration", json!({})).await["git_branch"], "main");

    for (args, expected) in [
        (json!({"version": 0, "git_branch": "x"}), "version 1"),
        (json!({"current_session_id": task["id"]}), "not a session"),
        (json!({"default_token_budget": 5}), "default_token_budget"),
        (
            json!({"active_context_type": "party"}),
            "feature, maintenance, research",
        ),
        (json!({"git_head_commit": "123"}), "git_head_commit"),
    ] {
        let message = s.err("update_project_configuration", args.clone()).await;
        assert!(
            message.contains(expected),
            "{args}: {message:?} should mention {expected:?}"
        );
    }
    let cleared = s.ok("update_project_configuration", json!({"git_branch": ""})).await;
    assert!(cleared.get("git_branch").is_none());
}

#[tokio::test]
async fn enhancements_are_created_read_updated_and_listed() {
    let s = Session::all().await;
    let e = s
        .ok(
            "manage_enhancement",
            json!({"action": "create", "title": "Sync over HTTP", "priority": 1, "target_quarter": "2027-Q1",
                   "description": "Let replicas sync through a hub."}),
        )
        .await;
    assert_eq!(
        (e["status"].as_str(), e["version"].as_i64()),
        (Some("planned"), Some(1))
    );
    let other = s
        .ok(
            "manage_enhancement",
            json!({"action": "create", "title": "Later", "depends_on": [e["id"]]}),
        )
        .await;
    assert_eq!(other["priority"], 3);

    assert_eq!(
        s.ok("manage_enhancement", json!({"action": "get", "id": e["id"]}))
            .await,
        e
    );
    let up = s
        .ok(
            "manage_enhancement",
            json!({"action": "update", "id": e["id"], "version": 1, "status": "approved"}),
        )
        .await;
    assert_eq!(
        (up["status"].as_str(), up["updated_by"].as_str()),
        (Some("approved"), Some(CLIENT))
    );

    let page = s.ok("manage_enhancement", json!({"action": "list"})).await;
    assert_eq!(
        page["columns"],
        json!(["id", "title", "priority", "status", "target_quarter", "version"])
    );
    assert_eq!(
        page["rows"][0],
        json!([e["id"], "Sync over HTTP", 1, "approved", "2027-Q1", 2])
    );
    assert_eq!(page["total_count"], 2);
    let filtered = s
        .ok(
            "manage_enhancement",
            json!({"action": "list", "priority": 3, "status": "planned"}),
        )
        .await;
    assert_eq!(filtered["rows"][0][0], other["id"]);
    let quarter = s
        .ok(
            "manage_enhancement",
            json!({"action": "list", "target_quarter": "2027-Q1"}),
        )
        .await;
    assert_eq!(quarter["total_count"], 1);

    let missing = "0190a4b2-7c1e-7d3a-9f2e-123456789abc";
    for (args, expected) in [
        (json!({"action": "create"}), "title"),
        (json!({"action": "create", "title": "x", "priority": 0}), "priority"),
        (
            json!({"action": "create", "title": "x", "target_quarter": "Q5"}),
            "target_quarter",
        ),
        (
            json!({"action": "create", "title": "x", "depends_on": [missing]}),
            "manage_enhancement",
        ),
        (json!({"action": "update", "id": e["id"]}), "version"),
        (json!({"action": "update", "version": 1}), "id"),
        (
            json!({"action": "update", "id": e["id"], "version": 1, "title": "late"}),
            "version 2",
        ),
        (json!({"action": "get", "id": missing}), "not found"),
        (json!({"action": "get"}), "id"),
        (json!({"action": "list", "status": "dreaming"}), "status"),
        (json!({"action": "delete", "id": e["id"]}), "create, update, get, list"),
    ] {
        let message = s.err("manage_enhancement", args.clone()).await;
        assert!(
            message.contains(expected),
            "{args}: {message:?} should mention {expected:?}"
        );
    }
}

#[tokio::test]
async fn finished_work_is_archived_and_stays_queryable() {
    let s = Session::all().await;
    let p = s.project("Old").await;
    let t = s.item("task", "Finished long ago", &p).await;
    s.ok(
        "update_work_item",
        json!({"id": t["id"], "version": 1, "status": "completed"}),
    )
    .await;
    let kept = s.project("Still open").await;

    let preview = s.ok("archive_work_items", json!({})).await;
    assert_eq!(
        (preview["dry_run"].as_bool(), preview["count"].as_i64()),
        (Some(false), Some(0)),
        "default 365 days"
    );
    let preview = s
        .ok("archive_work_items", json!({"older_than_days": 0, "dry_run": true}))
        .await;
    assert_eq!(
        (preview["dry_run"].as_bool(), preview["count"].as_i64()),
        (Some(true), Some(1))
    );
    assert_eq!(preview["rows"][0][0], t["id"]);
    assert_eq!(
        s.ok("list_work_items", json!({})).await["total_count"],
        3,
        "a dry run changes nothing"
    );

    let done = s.ok("archive_work_items", json!({"older_than_days": 0})).await;
    assert_eq!(done["count"], 1);
    let listed = s.ok("list_work_items", json!({})).await;
    assert_eq!(listed["total_count"], 2);
    let archived = s.ok("list_work_items", json!({"archived": true})).await;
    assert_eq!(
        (archived["total_count"].as_i64(), archived["rows"][0][0].clone()),
        (Some(1), t["id"].clone())
    );
    assert_eq!(
        s.ok(
            "list_work_items",
            json!({"archived": true, "text": "long ago", "item_type": "task"})
        )
        .await["total_count"],
        1
    );
    assert_eq!(
        s.ok("list_work_items", json!({"archived": true, "text": "nothing like it"}))
            .await["total_count"],
        0
    );
    assert!(s.ok("query_work_item", json!({"id": t["id"]})).await["item"]["archived_at"].is_string());
    assert_ne!(kept["id"], t["id"]);

    assert!(
        s.err("archive_work_items", json!({"older_than_days": -1}))
            .await
            .contains("older_than_days")
    );
    assert!(
        s.err("list_work_items", json!({"archived": true, "item_type": "epic"}))
            .await
            .contains("item_type")
    );
    assert!(
        s.err("list_work_items", json!({"archived": true, "limit": 1000}))
            .await
            .contains("limit")
    );
}

#[tokio::test]
async fn the_status_comes_as_a_summary_or_the_markdown_report() {
    let s = Session::all().await;
    let p = s.project("Waymark").await;
    s.item("task", "Report status", &p).await;
    s.ok("create_vendor", json!({"name": "Acme"})).await;
    let md = s.ok("get_project_status", json!({"format": "markdown"})).await;
    assert_eq!(md["format"], "markdown");
    let text = md["markdown"].as_str().unwrap();
    assert!(text.starts_with("# Project Status - "), "{text}");
    assert!(
        text.contains("## Active Work Items (2)") && text.contains("  ### Report status (task)"),
        "{text}"
    );
    assert!(text.contains("- **Acme**: broken"), "{text}");
    assert_eq!(
        s.ok("get_project_status", json!({"format": "MARKDOWN"})).await["format"],
        "markdown"
    );

    // The default: the summary, as JSON.
    let js = s.ok("get_project_status", json!({})).await;
    assert_eq!(js, {
        let mut again = s.ok("get_project_status", json!({"format": "json"})).await;
        again["summary"]["generated_at"] = js["summary"]["generated_at"].clone();
        again
    });
    assert_eq!(js["format"], "json");
    let summary = &js["summary"];
    assert_eq!(summary["work_items"]["by_status"], json!({"active": 2}));
    assert_eq!(summary["work_items"]["by_type"], json!({"project": 1, "task": 1}));
    assert_eq!(summary["ready"]["total_count"], 2, "{summary}");
    assert_eq!(summary["ready"]["rows"][1][1], "Report status");
    assert_eq!(
        summary["active"]["rows"][0][1], "Report status",
        "the last updated first"
    );
    assert_eq!(summary["blocked"]["total_count"], 0);
    assert_eq!(
        (
            &summary["vendors"]["total"],
            &summary["vendors"]["broken"]["rows"][0][0]
        ),
        (&json!(1), &json!("Acme"))
    );
    assert!(summary["ready"].get("more").is_none(), "nothing left out: {summary}");
    assert_eq!(summary["in_progress"], json!({"claims": [], "total_count": 0}));
    let task = &summary["ready"]["rows"][1][0];
    s.ok("claim_work_item", json!({"id": task})).await;
    let claimed = &s.ok("get_project_status", json!({})).await["summary"]["in_progress"];
    assert_eq!(
        (
            &claimed["total_count"],
            &claimed["claims"][0]["id"],
            &claimed["claims"][0]["title"]
        ),
        (&json!(1), task, &json!("Report status")),
        "{claimed}"
    );
    assert!(
        s.err("get_project_status", json!({"format": "pdf"}))
            .await
            .contains("json, markdown")
    );
}

#[tokio::test]
async fn the_status_stays_lean_on_a_big_store() {
    let s = Session::all().await;
    let p = s.project("Big").await;
    for i in 0..120 {
        s.tracker
            .create_work_item(
                "seed",
                waymark::ops::NewWorkItem {
                    item_type: "task".into(),
                    title: format!("Task {i}"),
                    parent_id: p["id"].as_str().map(str::to_owned),
                    status: (i % 4 == 0).then(|| "blocked".into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let md = s.ok("get_project_status", json!({"format": "markdown"})).await;
    let text = md["markdown"].as_str().unwrap();
    assert!(
        text.contains("_21 more work items not shown; list_work_items shows them._"),
        "{text}"
    );

    // The summary: counts, then a few rows of each list and the call that
    // lists the rest, whatever the store holds.
    let js = s.ok("get_project_status", json!({})).await;
    let summary = &js["summary"];
    assert_eq!(summary["work_items"]["by_status"], json!({"active": 91, "blocked": 30}));
    for (list, shown, total, more) in [
        ("ready", 5, 91, "list_ready_work"),
        ("active", 3, 91, "list_work_items with status active"),
        ("blocked", 3, 30, "list_work_items with status blocked"),
    ] {
        let section = &summary[list];
        assert_eq!(
            (
                section["rows"].as_array().unwrap().len(),
                &section["total_count"],
                &section["more"]
            ),
            (shown, &json!(total), &json!(more)),
            "{list}: {section}"
        );
    }
    assert_eq!(summary["active"]["rows"][0][1], "Task 119", "the last updated first");
    let first_ready = s.ok("list_ready_work", json!({"limit": 5})).await;
    assert_eq!(
        summary["ready"]["rows"], first_ready["rows"],
        "the first page of list_ready_work"
    );
    let bytes = serde_json::to_string(&js).unwrap().len();
    assert!(bytes < 4096, "the summary takes {bytes} bytes");
}

#[tokio::test]
async fn resources_give_the_status_and_single_work_items() {
    let s = Session::all().await;
    let p = s.project("Waymark").await;
    let resources = s.client.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].uri, "waymark://status");
    let templates = s.client.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "waymark://work-item/{id}");

    let read = s
        .client
        .read_resource(ReadResourceRequestParams::new("waymark://status"))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { text, mime_type, .. } => {
            assert!(text.contains("### Waymark (project)"), "{text}");
            assert_eq!(mime_type.as_deref(), Some("text/markdown"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let uri = format!("waymark://work-item/{}", p["id"].as_str().unwrap());
    let read = s
        .client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { text, mime_type, .. } => {
            let item: Value = serde_json::from_str(text).unwrap();
            assert_eq!(item["id"], p["id"]);
            assert_eq!(mime_type.as_deref(), Some("application/json"));
        }
        other => panic!("unexpected {other:?}"),
    }
    for uri in [
        "waymark://work-item/0190a4b2-7c1e-7d3a-9f2e-123456789abc",
        "waymark://work-item/",
        "waymark://work-item/not-an-id",
        "waymark://elsewhere",
        "file:///etc/passwd",
    ] {
        let e = s
            .client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ServiceError::McpError(d) if d.code == ErrorCode::RESOURCE_NOT_FOUND),
            "{uri}: {e}"
        );
    }
    // A huge uri is refused without being echoed back.
    let huge = format!("waymark://work-item/{}", "i".repeat(1 << 20));
    let e = s
        .client
        .read_resource(ReadResourceRequestParams::new(huge))
        .await
        .unwrap_err();
    let ServiceError::McpError(d) = &e else { panic!("{e}") };
    assert_eq!(d.code, ErrorCode::RESOURCE_NOT_FOUND);
    let size = serde_json::to_string(d).unwrap().len();
    assert!(size < 1_000, "the error is {size} bytes");
    s.ok("list_work_items", json!({})).await;
}

#[tokio::test]
async fn hostile_input_never_stops_the_server() {
    let s = Session::all().await;
    let p = s.project("Still here").await;
    let alive = || s.ok("query_work_item", json!({"id": p["id"], "include_children": false}));

    // Unknown tools are protocol errors; the session goes on.
    let e = s.call("drop_database", json!({})).await.unwrap_err();
    assert!(
        matches!(&e, ServiceError::McpError(d) if d.code == ErrorCode::INVALID_PARAMS),
        "{e}"
    );
    alive().await;

    // Wrong types, missing fields, unknown fields and out-of-range numbers are tool errors.
    let long_title = "x".repeat(1 << 20);
    let cases = [
        (
            "create_work_item",
            json!({"item_type": "task", "title": 5}),
            "invalid title: expected a string",
        ),
        (
            "create_work_item",
            json!({"item_type": "task"}),
            "missing field `title`",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "priorty": 1}),
            "unknown field `priorty`",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "priority": 1e30}),
            "invalid priority: expected an integer",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "priority": -9007199254740993i64}),
            "priority",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": long_title}),
            "title",
        ),
        (
            "create_work_item",
            json!({"item_type": "task", "title": "t", "metadata": [1, 2]}),
            "invalid metadata: expected an object",
        ),
        (
            "update_work_item",
            json!({"id": p["id"], "version": "one"}),
            "invalid version: expected an integer",
        ),
        (
            "update_work_item",
            json!({"id": p["id"], "version": 1, "title": ""}),
            "title",
        ),
        ("list_work_items", json!({"limit": -5}), "limit"),
        ("list_work_items", json!({"cursor": "ab".repeat(5000)}), "cursor"),
        (
            "list_work_items",
            json!({"text": "\" OR 1=1; DROP TABLE work_items; --"}),
            "",
        ),
        ("query_vendor_status", json!({"name": null}), "invalid name"),
        ("query_work_item", json!({"id": "i".repeat(1 << 20)}), "invalid id"),
        (
            "query_vendor_status",
            json!({"name": "n".repeat(1 << 20)}),
            "invalid name",
        ),
        ("list_work_items", json!({"text": "w ".repeat(1 << 19)}), "invalid text"),
        ("list_work_items", json!({"text": "a".repeat(1001)}), "invalid text"),
        (
            "list_work_items",
            json!({"text": (0..40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")}),
            "more than 32 different words",
        ),
        (
            "list_work_items",
            json!({"archived": true, "text": (0..40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")}),
            "more than 32 different words",
        ),
        ("list_work_items", json!({"text": "a ".repeat(499)}), ""),
        (
            "manage_enhancement",
            json!({"action": "a".repeat(1 << 20)}),
            "invalid action",
        ),
        (
            "create_vendor",
            json!({"name": "V", "metadata": {"notes": "n".repeat(1 << 20)}}),
            "invalid metadata.notes",
        ),
        ("manage_dependency", json!({"action": "add"}), "missing field"),
        ("get_project_configuration", json!({"anything": true}), "unknown field"),
        (
            "manage_enhancement",
            json!({"action": 7}),
            "invalid action: expected a string",
        ),
    ];
    for (tool, args, expected) in cases {
        let r = s
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
        let message = text(&r);
        if expected.is_empty() {
            assert_ne!(r.is_error, Some(true), "{tool}: {message}");
        } else {
            assert_eq!(r.is_error, Some(true), "{tool} should fail");
            assert!(
                message.contains(expected),
                "{tool}: {:?} should mention {expected:?}",
                &message[..message.len().min(300)]
            );
            assert!(message.len() < 1200, "{tool}: the error does not echo a huge input");
        }
        alive().await;
    }

    // Deeply nested metadata: within JSON's limits the domain refuses it...
    let mut nested = json!("bottom");
    for _ in 0..100 {
        nested = json!({ "deeper": nested });
    }
    let message = s
        .err(
            "create_work_item",
            json!({"item_type": "task", "title": "t", "metadata": {"n": nested}}),
        )
        .await;
    assert!(message.contains("metadata"), "{message}");
    alive().await;
    // ...and past them the message cannot be read at all, so it gets no answer.
    let mut nested = json!("bottom");
    for _ in 0..1_000 {
        nested = json!([nested]);
    }
    let deep = tokio::time::timeout(
        Duration::from_millis(500),
        s.client.call_tool(
            CallToolRequestParams::new("create_work_item").with_arguments(
                json!({"item_type": "task", "title": "t", "metadata": {"n": nested}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        ),
    )
    .await;
    if let Ok(Ok(r)) = deep {
        assert_eq!(r.is_error, Some(true));
    }
    alive().await;

    // Stale versions, unknown ids, cycles and the depth limit were covered
    // above; a store error is a tool error too, not a crash.
    assert_eq!(
        s.ok("list_work_items", json!({})).await["total_count"],
        1,
        "nothing hostile was written"
    );
}

#[tokio::test]
async fn a_fifty_row_page_fits_its_budget() {
    let s = Session::all().await;
    let p = s.project("Budget").await;
    let session = s.item("session", "Sprint 12", &p).await;
    let titles = [
        "Add retry with backoff to the sync worker",
        "Fix stale version message wording",
        "Document the MCP tool list in the README",
        "Import deployments from git history",
        "Speed up ready work on large stores",
    ];
    for i in 0..60 {
        s.tracker
            .create_work_item(
                "seed",
                waymark::ops::NewWorkItem {
                    item_type: "task".into(),
                    title: format!("{} ({i})", titles[i % titles.len()]),
                    parent_id: session["id"].as_str().map(str::to_owned),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let page = s.ok("list_work_items", json!({"item_type": "task", "limit": 50})).await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 50);
    assert_eq!(page["total_count"], 60);
    let bytes = size(&page);
    eprintln!("a 50-row list_work_items page: {bytes} bytes (structuredContent; the text copy is the same JSON)");
    assert!(bytes < 8_000, "a 50-row page is {bytes} bytes");
    let rest = s
        .ok(
            "list_work_items",
            json!({"item_type": "task", "limit": 50, "cursor": page["next_cursor"]}),
        )
        .await;
    assert_eq!(rest["rows"].as_array().unwrap().len(), 10);
    assert!(rest.get("next_cursor").is_none());
    // A page by default: 20 rows, under 4 KB of text.
    let ready = s.ok("list_ready_work", json!({"item_type": "task"})).await;
    assert_eq!(ready["rows"].as_array().unwrap().len(), 20);
    let bytes = size(&ready);
    eprintln!("a default list_ready_work page: {bytes} bytes");
    assert!(bytes < 4_000, "a default page is {bytes} bytes");
    let listed = s.ok("list_work_items", json!({"item_type": "task"})).await;
    assert!(size(&listed) < 4_000, "a default page is {} bytes", size(&listed));
}

#[tokio::test]
async fn two_servers_on_one_store_see_each_others_writes() {
    let a = Session::all().await;
    let b = Session::on(a.tracker.clone(), ALL, "other-agent").await;
    let p = a.project("Shared").await;
    let seen = b.ok("query_work_item", json!({"id": p["id"]})).await;
    assert_eq!(seen["item"]["created_by"], CLIENT);
    let up = b
        .ok(
            "update_work_item",
            json!({"id": p["id"], "version": 1, "title": "Shared, renamed"}),
        )
        .await;
    assert_eq!(up["updated_by"], "other-agent");
    let stale = a
        .err(
            "update_work_item",
            json!({"id": p["id"], "version": 1, "title": "Mine"}),
        )
        .await;
    assert!(stale.contains("other-agent"), "{stale}");
}

#[tokio::test]
async fn a_2026_client_without_initialize_is_served_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::open(dir.path()).unwrap();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = WaymarkServer::new(tracker, ALL).serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = client_config("modern-agent")
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    assert_eq!(info.server_info.as_ref().unwrap().name, "waymark");
    let r = client
        .call_tool(
            CallToolRequestParams::new("create_vendor")
                .with_arguments(json!({"name": "Acme"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["created_by"], "modern-agent");
    assert_eq!(client.list_all_tools().await.unwrap().len(), ALL_TOOLS.len());
}

// ---------------------------------------------------------------------------
// End to end: the built binary over stdio.
// ---------------------------------------------------------------------------

async fn spawn_client(dir: &std::path::Path, name: &str, extra: &[&str]) -> Client {
    let dir = dir.to_str().unwrap().to_owned();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let transport = TokioChildProcess::new(tokio::process::Command::new(BIN).configure(|c| {
        c.args(["--data-dir", &dir, "serve"])
            .args(if extra.iter().any(|a| a == "--toolset") {
                &[][..]
            } else {
                &["--toolset", "all"][..]
            })
            .args(&extra)
            .env("RUST_LOG", "warn");
    }))
    .expect("start waymark serve");
    client_config(name)
        .serve(transport)
        .await
        .expect("handshake with waymark serve")
}

async fn e2e_call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone());
    tokio::time::timeout(Duration::from_secs(10), client.call_tool(params))
        .await
        .expect("answer")
        .expect(tool)
}

async fn e2e_ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = e2e_call(client, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool}: {}", text(&r));
    r.structured_content.unwrap()
}

async fn e2e_err(client: &Client, tool: &str, args: Value) -> String {
    let r = e2e_call(client, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail");
    text(&r)
}

#[tokio::test]
async fn end_to_end_session_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let c = spawn_client(dir.path(), "e2e-agent", &[]).await;
    let server = c.peer_info().unwrap().server_info.clone().unwrap();
    assert_eq!(
        (server.name.as_str(), server.version.as_str()),
        ("waymark", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(names(&c.list_all_tools().await.unwrap()), sorted(ALL_TOOLS));

    // A project, a session, tasks to the depth limit, a rejected deeper task.
    let project = e2e_ok(
        &c,
        "create_work_item",
        json!({"item_type": "project", "title": "Waymark", "metadata": {"description": "The tracker"}}),
    )
    .await;
    assert_eq!(project["created_by"], "e2e-agent");
    let session = e2e_ok(
        &c,
        "create_work_item",
        json!({"item_type": "session", "title": "Day 1", "parent_id": project["id"], "metadata": {"token_budget": 100000}}),
    )
    .await;
    let mut parent = session.clone();
    let mut tasks = Vec::new();
    for depth in 2..=5 {
        parent = e2e_ok(
            &c,
            "create_work_item",
            json!({"item_type": "task", "title": format!("Task at depth {depth}"), "parent_id": parent["id"]}),
        )
        .await;
        assert_eq!(parent["depth"], depth);
        tasks.push(parent.clone());
    }
    let deeper = e2e_err(
        &c,
        "create_work_item",
        json!({"item_type": "task", "title": "Too deep", "parent_id": parent["id"]}),
    )
    .await;
    assert!(deeper.contains("limit"), "{deeper}");

    // A stale-version update rejected.
    let t = &tasks[0];
    let updated = e2e_ok(
        &c,
        "update_work_item",
        json!({"id": t["id"], "version": 1, "priority": 0}),
    )
    .await;
    assert_eq!(updated["version"], 2);
    let stale = e2e_err(
        &c,
        "update_work_item",
        json!({"id": t["id"], "version": 1, "priority": 4}),
    )
    .await;
    assert!(stale.contains("version 2"), "{stale}");

    // Dependencies and ready work.
    let other = e2e_ok(
        &c,
        "create_work_item",
        json!({"item_type": "task", "title": "Independent", "parent_id": session["id"], "priority": 1}),
    )
    .await;
    e2e_ok(
        &c,
        "manage_dependency",
        json!({"action": "add", "source_id": other["id"], "target_id": tasks[3]["id"], "dependency_type": "depends_on"}),
    )
    .await;
    let ready = e2e_ok(&c, "list_ready_work", json!({"item_type": "task"})).await;
    let ready_ids: Vec<&Value> = ready["rows"].as_array().unwrap().iter().map(|r| &r[0]).collect();
    assert!(
        !ready_ids.contains(&&other["id"]),
        "a task waiting on an open one is not ready"
    );
    assert_eq!(ready_ids[0], &t["id"], "priority 0 first");

    // A vendor created and updated.
    let v = e2e_ok(
        &c,
        "create_vendor",
        json!({"name": "Acme", "extractor_version": "1.0.0"}),
    )
    .await;
    let v = e2e_ok(
        &c,
        "update_vendor_status",
        json!({"name": "acme", "version": v["version"], "status": "operational",
               "metadata": {"test_results": {"passing": 10, "total": 10}}}),
    )
    .await;
    assert_eq!(v["status"], "operational");
    assert_eq!(
        e2e_ok(&c, "query_vendor_status", json!({"name": "ACME"})).await["version"],
        v["version"]
    );

    // A deployment recorded with links.
    let d = e2e_ok(
        &c,
        "record_deployment",
        json!({"commit_hash": "89abcdef0123456789abcdef0123456789abcdef", "pr_number": 3, "pr_title": "MCP server",
               "test_summary": {"unit": 42}, "constitutional_compliance": true,
               "vendor_ids": ["Acme"], "work_item_ids": [t["id"]]}),
    )
    .await;
    assert_eq!(
        (d["vendor_ids"].clone(), d["work_item_ids"].clone()),
        (json!([v["id"]]), json!([t["id"]]))
    );

    // Configuration read and updated.
    let conf = e2e_ok(&c, "get_project_configuration", json!({})).await;
    let conf = e2e_ok(
        &c,
        "update_project_configuration",
        json!({"version": conf["version"], "current_session_id": session["id"], "active_context_type": "feature"}),
    )
    .await;
    assert_eq!(conf["current_session_id"], session["id"]);

    // The status resource read.
    let read = c
        .read_resource(ReadResourceRequestParams::new("waymark://status"))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text: md, .. } = &read.contents[0] else {
        panic!("text")
    };
    assert!(md.contains("## Operational Vendors (1/1)"), "{md}");
    assert!(md.contains("PR #3") && md.contains("### Waymark (project)"), "{md}");

    c.cancel().await.unwrap();
}

#[tokio::test]
async fn two_serve_processes_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let a = spawn_client(dir.path(), "agent-a", &[]).await;
    let b = spawn_client(dir.path(), "agent-b", &["--toolset", "core"]).await;
    assert_eq!(names(&b.list_all_tools().await.unwrap()), sorted(CORE_TOOLS));
    let v = e2e_ok(&a, "create_vendor", json!({"name": "Shared"})).await;
    let seen = e2e_ok(&b, "query_vendor_status", json!({"name": "shared"})).await;
    assert_eq!(seen["created_by"], "agent-a");
    e2e_ok(
        &b,
        "update_vendor_status",
        json!({"name": "shared", "version": v["version"], "status": "operational"}),
    )
    .await;
    assert_eq!(
        e2e_ok(&a, "query_vendor_status", json!({"name": "Shared"})).await["updated_by"],
        "agent-b"
    );
    let ro = spawn_client(dir.path(), "reader", &["--read-only"]).await;
    assert_eq!(names(&ro.list_all_tools().await.unwrap()), sorted(READ_TOOLS));
    for c in [a, b, ro] {
        c.cancel().await.unwrap();
    }
}

/// Raw lines on the binary's stdin: garbage before and after the handshake,
/// a notification before `initialize`, wrong-shape JSON, a message nested
/// past JSON's limits and invalid UTF-8; each followed by a call that works.
/// stdout carries only JSON-RPC, and closing stdin ends the process cleanly.
#[tokio::test]
async fn raw_stdio_survives_garbage_and_exits_on_eof() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--toolset", "all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    async fn send(stdin: &mut tokio::process::ChildStdin, bytes: &[u8]) {
        stdin.write_all(bytes).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
    /// The next message on stdout with this id (every line must be JSON-RPC).
    async fn answer(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>, id: Value) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("stdout open");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout is not JSON: {line}"));
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
            if v["id"] == id {
                return v;
            }
        }
    }
    let call = |id: i64, tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
            .to_string()
    };

    send(&mut stdin, b"this is not json {").await;
    send(&mut stdin, br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    send(&mut stdin, br#"{"jsonrpc":"2.0","id":99,"result":{}}"#).await;
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw-agent", "version": "1"}}})
        .to_string()
        .as_bytes(),
    )
    .await;
    let init = answer(&mut lines, json!(1)).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "waymark");
    send(&mut stdin, br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;

    let ok_call = |id| call(id, "list_vendors", json!({}));
    let mut id = 10;
    let hostile: Vec<Vec<u8>> = vec![
        b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": ".to_vec(),
        br#"{"hello":"world"}"#.to_vec(),
        vec![0xff, 0xfe, b'{', 0x80],
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        call(
            4,
            "create_work_item",
            json!({"item_type": "task", "title": "t", "metadata": {"n": 1}}),
        )
        .replace("{\"n\":1}", &format!("{}1{}", "{\"n\":".repeat(5000), "}".repeat(5000)))
        .into_bytes(),
        br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":"not an object"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":7,"method":"no/such/method","params":{}}"#.to_vec(),
        call(
            8,
            "create_work_item",
            json!({"item_type": "task", "title": "y".repeat(1 << 20)}),
        )
        .into_bytes(),
    ];
    for line in hostile {
        send(&mut stdin, &line).await;
        id += 1;
        send(&mut stdin, ok_call(id).as_bytes()).await;
        let r = answer(&mut lines, json!(id)).await;
        assert_eq!(r["result"]["structuredContent"]["total_count"], 0, "{r}");
    }
    send(&mut stdin, call(50, "create_vendor", json!({"name": "Raw"})).as_bytes()).await;
    let created = answer(&mut lines, json!(50)).await;
    assert_eq!(created["result"]["structuredContent"]["created_by"], "raw-agent");

    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn serve_exits_cleanly_when_stdin_closes_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--toolset", "all"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "nothing but the protocol on stdout");
}

/// `waymark serve --http 127.0.0.1:0` on a fresh store, with its address
/// as it names it on stderr.
struct HttpServer {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    _dir: TempDir,
}

impl HttpServer {
    async fn start(extra: &[&str]) -> HttpServer {
        HttpServer::start_on("127.0.0.1:0", extra).await
    }

    /// The server serves the repository `_dir` (its store in `.waymark/`).
    async fn start_on(bind: &str, extra: &[&str]) -> HttpServer {
        HttpServer::start_with(BIN, bind, extra).await
    }

    /// [`HttpServer::start_on`] with another build of the binary.
    async fn start_with(bin: &str, bind: &str, extra: &[&str]) -> HttpServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let data_dir = dir.path().join(".waymark");
        let mut child = tokio::process::Command::new(bin)
            .args([
                "--data-dir",
                data_dir.to_str().unwrap(),
                "serve",
                "--http",
                bind,
                "--toolset",
                "all",
            ])
            .args(extra)
            .env_remove("WAYMARK_HTTP_TOKEN")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start waymark serve --http");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = lines.next_line().await.unwrap().expect("serve names its address");
                if let Some(url) = line.strip_prefix("waymark: serving MCP on http://") {
                    break url.strip_suffix("/mcp").unwrap().parse().unwrap();
                }
            }
        })
        .await
        .expect("serve --http starts");
        // Keep draining stderr so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HttpServer { child, addr, _dir: dir }
    }

    /// The store directory this server serves.
    fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join(".waymark")
    }

    /// One HTTP/1.0 GET (any method given) of `path`: the status, the
    /// response head and the body.
    async fn get(&self, method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response),
        )
        .await
        .expect("the response ends")
        .unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    /// One HTTP/1.0 POST of `body` to `path` (the connection closes after
    /// the response, so the body ends at EOF, SSE or not): the status, the
    /// session id header, and the JSON-RPC messages of the body.
    async fn post(
        &self,
        path: &str,
        host: &str,
        session: Option<&str>,
        body: &Value,
    ) -> (u16, Option<String>, Vec<Value>) {
        self.post_with(path, host, session, &[], body).await
    }

    /// [`HttpServer::post`] with more headers.
    async fn post_with(
        &self,
        path: &str,
        host: &str,
        session: Option<&str>,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Option<String>, Vec<Value>) {
        let body = body.to_string();
        let mut request = format!(
            "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        if let Some(id) = session {
            request.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response),
        )
        .await
        .expect("the response ends")
        .unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let messages = if header("content-type").is_some_and(|t| t.starts_with("text/event-stream")) {
            body.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        } else if header("content-type").is_some_and(|t| t.starts_with("application/json")) {
            vec![serde_json::from_str(body).unwrap()]
        } else {
            Vec::new()
        };
        (status, header("mcp-session-id"), messages)
    }

    /// A session: initialize, then the initialized notification.
    async fn initialize(&self) -> (String, Value) {
        let host = self.addr.to_string();
        let (status, session, messages) = self
            .post(
                "/mcp",
                &host,
                None,
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "http-agent", "version": "1.0.0"}}}),
            )
            .await;
        assert_eq!(status, 200, "{messages:?}");
        let session = session.expect("a session id");
        let (status, _, _) = self
            .post(
                "/mcp",
                &host,
                Some(&session),
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(status, 202);
        (session, messages.into_iter().next().unwrap())
    }

    /// A request in `session`; its JSON-RPC response.
    async fn request(&self, session: &str, id: u64, method: &str, params: Value) -> Value {
        let (status, _, messages) = self
            .post(
                "/mcp",
                &self.addr.to_string(),
                Some(session),
                &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            )
            .await;
        assert_eq!(status, 200, "{method}: {messages:?}");
        messages
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{method}: no response"))
    }

    /// SIGTERM; the server must exit cleanly.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("serve --http stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The same server over streamable HTTP: a session through initialize,
/// tools/list, a tool call and a tool error; requests that name a foreign
/// host are refused (DNS rebinding); other paths are not found; SIGTERM
/// stops it cleanly.
#[tokio::test]
async fn end_to_end_session_over_http() {
    let server = HttpServer::start(&[]).await;
    let (session, init) = server.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "waymark");
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");

    let list = server.request(&session, 1, "tools/list", json!({})).await;
    let mut listed: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, sorted(ALL_TOOLS));

    let created = server
        .request(
            &session,
            2,
            "tools/call",
            json!({"name": "create_vendor", "arguments": {"name": "Over HTTP"}}),
        )
        .await;
    assert_eq!(created["result"]["isError"], false, "{created}");
    assert_eq!(created["result"]["structuredContent"]["created_by"], "http-agent");
    let seen = server
        .request(
            &session,
            3,
            "tools/call",
            json!({"name": "query_vendor_status", "arguments": {"name": "over http"}}),
        )
        .await;
    assert_eq!(seen["result"]["structuredContent"]["name"], "Over HTTP", "{seen}");

    let missing = server
        .request(
            &session,
            4,
            "tools/call",
            json!({"name": "query_work_item", "arguments": {"id": "no-such-item"}}),
        )
        .await;
    assert_eq!(missing["result"]["isError"], true, "{missing}");
    assert!(!missing["result"]["content"][0]["text"].as_str().unwrap().is_empty());

    let unknown = server
        .request(
            &session,
            5,
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    // DNS rebinding: a page on evil.example that resolves to 127.0.0.1.
    let port = server.addr.port();
    let ping = json!({"jsonrpc": "2.0", "id": 6, "method": "ping"});
    let (status, _, _) = server
        .post("/mcp", &format!("evil.example:{port}"), Some(&session), &ping)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = server
        .post("/mcp", &format!("localhost:{port}"), Some(&session), &ping)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = server
        .post("/other", &server.addr.to_string(), Some(&session), &ping)
        .await;
    assert_eq!(status, 404);

    server.stop().await;
}

#[tokio::test]
async fn http_serves_the_chosen_toolset() {
    let server = HttpServer::start(&["--read-only"]).await;
    let (session, _) = server.initialize().await;
    let list = server.request(&session, 1, "tools/list", json!({})).await;
    let mut listed: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, sorted(READ_TOOLS));
    let write = server
        .request(
            &session,
            2,
            "tools/call",
            json!({"name": "create_vendor", "arguments": {"name": "Nope"}}),
        )
        .await;
    assert_eq!(write["error"]["code"], -32602, "{write}");
    server.stop().await;
}

#[tokio::test]
async fn http_refuses_a_non_loopback_address_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "serve",
            "--http",
            "0.0.0.0:0",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );

    // --allow-remote means nothing without --http.
    let out = tokio::process::Command::new(BIN)
        .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--allow-remote"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http"));
}

#[tokio::test]
async fn sync_conflict_and_import_export_tools_answer_and_refuse_clearly() {
    let s = Session::all().await;
    // Sync: the health of a store with no hub; "now" says how to configure one.
    let status = s.ok("sync", json!({"action": "status"})).await;
    assert_eq!(status["hub_configured"], false);
    assert_eq!(status["pending_changes"], 0);
    let err = s.err("sync", json!({"action": "now"})).await;
    assert!(err.contains("waymark init --hub"), "{err}");
    let err = s.err("sync", json!({"action": "sideways"})).await;
    assert!(err.contains("status, now"), "{err}");
    // Conflicts: none yet; resolving an unknown one is a clear refusal.
    let listed = s.ok("list_conflicts", json!({})).await;
    assert_eq!(listed["total_count"], 0);
    let err = s
        .err(
            "resolve_conflict",
            json!({"conflict_id": "work_items/x/title", "value": "a title"}),
        )
        .await;
    assert!(err.contains("list_conflicts"), "{err}");

    // Export the report, then import it into another store: the project comes back.
    let repo = tempfile::tempdir().unwrap();
    let s = Session::in_repository(repo.path()).await;
    s.project("Exported project").await;
    let file = repo.path().join("status.md");
    let written = s.ok("export_markdown", json!({"path": file.to_str().unwrap()})).await;
    assert_eq!(written["path"], file.canonicalize().unwrap().to_str().unwrap());
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("### Exported project (project)")
    );
    let other_dir = tempfile::tempdir().unwrap();
    let other = Session::with_files(Tracker::open(other_dir.path()).unwrap(), repo.path()).await;
    let imported = other.ok("import_markdown", json!({"path": "status.md"})).await;
    assert!(
        imported.to_string().contains("Exported project") || imported.to_string().contains("work_items"),
        "{imported}"
    );
    let titles: Vec<String> = other
        .tracker
        .list_work_items(Default::default())
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.title)
        .collect();
    assert_eq!(titles, ["Exported project"]);
    let err = other.err("import_markdown", json!({"path": "missing.md"})).await;
    assert!(err.contains("missing.md"), "{err}");
    // Git: a directory that is no repository is a clear error, not a crash.
    std::fs::create_dir(repo.path().join("plain")).unwrap();
    let err = s.err("import_git_history", json!({"repo_path": "plain"})).await;
    assert!(!err.is_empty());
    s.ok("sync", json!({"action": "status"})).await;
}

/// The file tools of a server that serves a repository touch only regular
/// markdown files inside it, never the store's directory or `.git`, never
/// through a symlink that leaves it, never a FIFO or a device, and read at
/// most 4 MiB; each refusal names the rule and changes nothing.
#[tokio::test]
async fn file_tools_stay_inside_the_repository() {
    use std::os::unix::fs::symlink;
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let outside = tempfile::tempdir().unwrap();
    let s = Session::in_repository(root).await;
    s.project("Confined").await;
    std::fs::write(
        root.join(".waymark/config.toml"),
        "[hub]\nurl = \"postgres://u:hunter2@hub/db\"\nspace = \"team\"\n",
    )
    .unwrap();
    let db = root.join(".waymark/waymark.db");
    let db_before = std::fs::read(&db).unwrap();

    // Writes: the report goes inside the repository, nowhere else.
    let written = s.ok("export_markdown", json!({})).await;
    let default = root.canonicalize().unwrap().join(".project_status.md");
    assert_eq!(written["path"], default.to_str().unwrap());
    s.ok("export_markdown", json!({"path": "docs.md"})).await;
    assert!(root.join("docs.md").is_file());
    symlink(outside.path(), root.join("escape")).unwrap();
    symlink(outside.path().join("t.md"), root.join("link.md")).unwrap();
    let refused_writes = [
        (db.to_str().unwrap().to_owned(), "markdown"),
        (".waymark/waymark.db".to_owned(), "markdown"),
        (".waymark/report.md".to_owned(), "store's directory"),
        (".git/HEAD.md".to_owned(), ".git"),
        (outside.path().join("out.md").to_str().unwrap().to_owned(), "outside"),
        ("../out.md".to_owned(), "outside"),
        ("escape/out.md".to_owned(), "outside"),
        ("link.md".to_owned(), "symbolic link"),
        ("no/such/dir/x.md".to_owned(), "directory"),
        ("Cargo.toml".to_owned(), "markdown"),
    ];
    for (path, rule) in &refused_writes {
        let err = s.err("export_markdown", json!({"path": path})).await;
        assert!(err.contains(rule), "export to {path}: {err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), db_before, "the store's file is untouched");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert_eq!(s.ok("list_work_items", json!({})).await["total_count"], 1);

    // Reads: no secret, no file outside, no device, no FIFO, nothing huge.
    std::fs::write(outside.path().join("secret.md"), "- api key: hunter2\n").unwrap();
    symlink(outside.path().join("secret.md"), root.join("secret.md")).unwrap();
    symlink("/dev/zero", root.join("zero.md")).unwrap();
    mkfifo(&root.join("fifo.md"));
    std::fs::write(root.join("big.md"), vec![b'x'; (4 << 20) + 1]).unwrap();
    let refused_reads = [
        (".waymark/config.toml", "markdown"),
        ("/etc/passwd", "markdown"),
        ("/dev/zero", "markdown"),
        ("secret.md", "outside"),
        ("zero.md", "outside"),
        ("fifo.md", "regular file"),
        ("big.md", "larger than 4 MiB"),
    ];
    for (path, rule) in refused_reads {
        let started = std::time::Instant::now();
        let err = s.err("import_markdown", json!({"path": path})).await;
        assert!(err.contains(rule), "import {path}: {err}");
        assert!(!err.contains("hunter2") && !err.contains("root:"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "import {path} answered at once"
        );
    }
    let err = s
        .err(
            "import_git_history",
            json!({"repo_path": outside.path().to_str().unwrap()}),
        )
        .await;
    assert!(err.contains("outside"), "{err}");
    assert_eq!(
        s.ok("list_work_items", json!({})).await["total_count"],
        1,
        "nothing imported"
    );

    // A server that serves no directory touches no file at all.
    let bare = Session::all().await;
    let err = bare.err("export_markdown", json!({"path": "x.md"})).await;
    assert!(err.contains("--file-root"), "{err}");
}

/// An import's answer lists a few records and skipped lines, each skipped
/// line cut short, with the totals: it never echoes the file back.
#[tokio::test]
async fn an_import_answer_stays_small_and_quotes_little() {
    let repo = tempfile::tempdir().unwrap();
    let s = Session::in_repository(repo.path()).await;
    let mut legacy = String::from("# Project Status\n\n## Active Work Items\n\n");
    for i in 0..2_000 {
        legacy.push_str(&format!("### Task {i} (task)\n- Status: active\n"));
    }
    legacy.push_str("\n## Vendor Status\n\n");
    for i in 0..2_000 {
        legacy.push_str(&format!(
            "| this line is not a vendor row and goes on and on: secret {i} |\n"
        ));
    }
    std::fs::write(repo.path().join("legacy.md"), &legacy).unwrap();
    let r = s.call("import_markdown", json!({"path": "legacy.md"})).await.unwrap();
    let answer = text(&r);
    assert!(answer.len() < 16_000, "the answer is {} bytes", answer.len());
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert!(v["records_total"].as_u64().unwrap() >= 2_000, "{v}");
    assert!(v["records"].as_array().unwrap().len() <= 20);
    let skipped = v["skipped"].as_array().unwrap();
    assert!(skipped.len() <= 10);
    assert!(v["skipped_total"].as_u64().unwrap() >= skipped.len() as u64);
    for entry in skipped {
        assert!(entry["text"].as_str().unwrap().chars().count() <= 41, "{entry}");
    }
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn initialize_request(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": name, "version": "1.0.0"}}})
}

/// Off loopback the server needs a token: it will not start without one,
/// and answers 401 to a request without it or with another; a browser's
/// Origin is refused unless allowed.
#[tokio::test]
async fn http_off_loopback_needs_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "serve",
                "--http",
                "0.0.0.0:0",
            ])
            .args(extra)
            .env_remove("WAYMARK_HTTP_TOKEN")
            .stdin(Stdio::null());
        command
    };
    let out = serve(&["--allow-remote"]).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WAYMARK_HTTP_TOKEN") && err.contains("--token-file"),
        "{err}"
    );
    let out = serve(&["--allow-remote"])
        .env("WAYMARK_HTTP_TOKEN", "short")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));

    let token = "3f9c1e0b7a2d4c6e8f1a3b5c7d9e0f12";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let server = HttpServer::start_on(
        "0.0.0.0:0",
        &["--allow-remote", "--token-file", token_file.to_str().unwrap()],
    )
    .await;
    let host = server.addr.to_string();
    let bearer = format!("Bearer {token}");
    let init = initialize_request("remote-agent");
    for headers in [
        vec![],
        vec![("Authorization", "Bearer 3f9c1e0b7a2d4c6e8f1a3b5c7d9e0f13")],
        vec![("Authorization", token)],
    ] {
        let (status, session, _) = server.post_with("/mcp", &host, None, &headers, &init).await;
        assert_eq!(status, 401, "{headers:?}");
        assert!(session.is_none());
    }
    let evil = [("Authorization", bearer.as_str()), ("Origin", "https://evil.example")];
    let (status, _, _) = server.post_with("/mcp", &host, None, &evil, &init).await;
    assert_eq!(status, 403, "a browser origin nobody allowed");
    let (status, session, messages) = server
        .post_with("/mcp", &host, None, &[("Authorization", &bearer)], &init)
        .await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(messages[0]["result"]["serverInfo"]["name"], "waymark");
    let session = session.unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_vendors", "arguments": {}}});
    let (status, _, _) = server.post_with("/mcp", &host, Some(&session), &[], &call).await;
    assert_eq!(status, 401, "every request needs the token, not only the first");
    server.stop().await;
}

/// A new session past the cap is refused with 503; the others go on.
#[tokio::test]
async fn http_caps_its_sessions() {
    let server = HttpServer::start(&[]).await;
    let host = server.addr.to_string();
    let mut sessions = Vec::new();
    for i in 0..128 {
        let (status, session, _) = server
            .post("/mcp", &host, None, &initialize_request(&format!("agent-{i}")))
            .await;
        assert_eq!(status, 200, "session {i}");
        sessions.push(session.unwrap());
    }
    let (status, session, _) = server
        .post("/mcp", &host, None, &initialize_request("one-too-many"))
        .await;
    assert_eq!(status, 503);
    assert!(session.is_none());
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, _) = server.post("/mcp", &host, Some(&sessions[0]), &ping).await;
    assert_eq!(status, 200, "open sessions are still served");
    server.stop().await;
}

/// Connections that never send a request hold at most the connection cap
/// of descriptors, and are closed after the head timeout; a client that
/// does send is served.
#[tokio::test]
async fn http_bounds_silent_connections() {
    let server = HttpServer::start(&[]).await;
    let pid = server.child.id().unwrap();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let before = fds();
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = fds();
    assert!(
        during <= before + 256 + 8,
        "{during} descriptors open for 300 silent connections (from {before})"
    );
    let started = std::time::Instant::now();
    let (session, _) = server.initialize().await;
    assert!(!session.is_empty());
    assert!(started.elapsed() < Duration::from_secs(25));
    let mut first = silent.swap_remove(0);
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::io::AsyncReadExt::read(&mut first, &mut buf),
    )
    .await
    .expect("the server closes a silent connection");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    server.stop().await;
}

/// `waymark serve` on stdio in a repository of its own, spoken to line by line.
struct RawServer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// The repository it serves (its store in `.waymark/`).
    repo: TempDir,
}

impl RawServer {
    async fn start() -> RawServer {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        RawServer::start_in(repo).await
    }

    /// A server on the repository `repo` (which has its `.git`).
    async fn start_in(repo: TempDir) -> RawServer {
        let mut child = tokio::process::Command::new(BIN)
            .args([
                "--data-dir",
                repo.path().join(".waymark").to_str().unwrap(),
                "serve",
                "--toolset",
                "all",
            ])
            .current_dir(repo.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        RawServer {
            child,
            stdin,
            lines,
            repo,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn send_json(&mut self, v: &Value) {
        self.send(v.to_string().as_bytes()).await;
    }

    /// The next line on stdout, which must be JSON-RPC 2.0: one message or
    /// a batch of them, each with an `id` and exactly one of result/error.
    async fn next(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer within {within:?}"))
            .unwrap()
            .expect("stdout open");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout is not JSON: {line}"));
        let messages = match &v {
            Value::Array(items) => items.clone(),
            _ => vec![v.clone()],
        };
        for m in &messages {
            assert_eq!(m["jsonrpc"], "2.0", "{line}");
            if m.get("method").is_none() {
                assert!(m.get("id").is_some(), "an answer without id: {line}");
                assert!(m.get("result").is_some() != m.get("error").is_some(), "{line}");
            }
        }
        v
    }

    async fn initialize(&mut self, version: &str, name: &str) -> Value {
        self.send_json(
            &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": name, "version": "1"}}}),
        )
        .await;
        let init = self.next(Duration::from_secs(10)).await;
        assert_eq!(init["id"], "init", "{init}");
        self.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        init
    }

    fn tool(id: impl Into<Value>, name: &str, arguments: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id.into(), "method": "tools/call",
            "params": {"name": name, "arguments": arguments}})
    }
}

/// A git import asked with a progress token tells its progress, growing,
/// all before its answer; asked without one, it tells nothing.
#[tokio::test]
async fn a_git_import_notifies_its_progress() {
    // The commits are made before the server starts, so that its watcher
    // leaves them to the import asked for.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().to_path_buf();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    for n in 0..40 {
        git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            &format!("Merge pull request #{n} from team/feature-{n}"),
        ]);
    }
    let mut server = RawServer::start_in(dir).await;
    server.initialize("2025-06-18", "progress-test").await;
    let mut call = RawServer::tool(1, "import_git_history", json!({}));
    call["params"]["_meta"] = json!({"progressToken": "p1"});
    server.send_json(&call).await;
    let mut progress = Vec::new();
    let answer = loop {
        let m = server.next(Duration::from_secs(30)).await;
        if m["method"] == "notifications/progress" {
            assert_eq!(m["params"]["progressToken"], "p1", "{m}");
            progress.push(m["params"]["progress"].as_f64().unwrap());
        } else {
            break m;
        }
    };
    assert_eq!(answer["id"], 1, "{answer}");
    // (The server's git watcher may import some of them meanwhile.)
    assert!(
        answer["result"]["structuredContent"]["commits_read"].as_u64().unwrap() > 0,
        "{answer}"
    );
    assert!(progress.len() >= 2, "commits read and records written: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "progress grows: {progress:?}");
    // Without a token: the answer, and no notification.
    server
        .send_json(&RawServer::tool(2, "import_git_history", json!({})))
        .await;
    let answer = server.next(Duration::from_secs(30)).await;
    assert_eq!(answer["id"], 2, "{answer}");
}

/// A long tool honours the client's `notifications/cancelled`: an archive
/// of 20,000 items cancelled as it starts stops, writes nothing, and the
/// server serves on (the same archive, not cancelled, archives them all).
#[tokio::test]
async fn a_cancelled_archive_stops_and_writes_nothing() {
    const ITEMS: usize = 20_000;
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    {
        let old = "2020-01-01T00:00:00.000000Z";
        let items: Vec<Value> = (0..ITEMS)
            .map(|n| {
                json!({"id": uuid::Uuid::now_v7().to_string(), "item_type": "task",
                    "title": format!("finished {n}"), "status": "completed", "priority": 2,
                    "metadata": {}, "created_at": old, "created_by": "seed", "updated_at": old,
                    "updated_by": "seed", "depth": 0})
            })
            .collect();
        Tracker::open(&repo.path().join(".waymark"))
            .unwrap()
            .import_json("seed", json!({ "work_items": items }))
            .unwrap();
    }
    let mut server = RawServer::start_in(repo).await;
    server.initialize("2025-06-18", "cancel-test").await;
    server
        .send_json(&RawServer::tool(1, "archive_work_items", json!({"older_than_days": 0})))
        .await;
    server
        .send_json(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 1, "reason": "the user changed their mind"}}))
        .await;
    // A cancelled request gets no answer.
    server
        .send_json(&RawServer::tool(2, "list_work_items", json!({"archived": true})))
        .await;
    let listed = server.next(Duration::from_secs(60)).await;
    assert_eq!(listed["id"], 2, "the cancelled archive is not answered: {listed}");
    assert_eq!(listed["result"]["structuredContent"]["total_count"], 0, "{listed}");
    // Not cancelled, the same archive does its work. Writes queue on the
    // store's one writer, so this runs after the first one ended: had that
    // one gone on, it would have archived everything and left none here.
    server
        .send_json(&RawServer::tool(4, "archive_work_items", json!({"older_than_days": 0})))
        .await;
    let done = server.next(Duration::from_secs(120)).await;
    assert_eq!(
        (&done["id"], &done["result"]["structuredContent"]["count"]),
        (&json!(4), &json!(ITEMS)),
        "{done}"
    );
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

/// Every request gets an answer with its id (null when it cannot be read),
/// and the error the JSON-RPC specification names.
#[tokio::test]
async fn stdio_answers_json_rpc_exactly() {
    let mut s = RawServer::start().await;
    let second = Duration::from_secs(5);
    // Not JSON, even with an id in it: a parse error, id null.
    s.send(b"this is not json {").await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32700, Value::Null), "{v}");
    s.send(br#"{"jsonrpc":"2.0","id":7,"method":"#).await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32700, Value::Null), "{v}");

    let init = s.initialize("2025-03-26", "first-name").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26", "{init}");

    // JSON that is no message: invalid request, with its id when readable.
    s.send(br#"{"hello":"world"}"#).await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32600, Value::Null), "{v}");
    s.send(br#"{"jsonrpc":"2.0","id":8,"params":{}}"#).await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32600, json!(8)), "{v}");
    // A known method with params of the wrong shape: invalid params, saying what.
    s.send(br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"not an object"}"#)
        .await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32602, json!(9)), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("tools/call"), "{v}");
    s.send(br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"arguments":{}}}"#)
        .await;
    let v = s.next(second).await;
    assert_eq!(error_code(&v), -32602, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("name"), "{v}");
    // An unknown method stays -32601.
    s.send(br#"{"jsonrpc":"2.0","id":11,"method":"no/such/method","params":{}}"#)
        .await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32601, json!(11)), "{v}");

    // A batch (2025-03-26): one array answers its requests; notifications get nothing.
    s.send_json(&json!([
        RawServer::tool(12, "create_vendor", json!({"name": "Batched"})),
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": 13, "method": "ping"},
        {"nonsense": true},
    ]))
    .await;
    let v = s.next(second).await;
    let answers = v
        .as_array()
        .unwrap_or_else(|| panic!("a batch is answered by an array: {v}"));
    let mut ids: Vec<Value> = answers.iter().map(|a| a["id"].clone()).collect();
    ids.sort_by_key(|id| id.to_string());
    assert_eq!(ids, [json!(12), json!(13), Value::Null], "{v}");
    s.send(b"[]").await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32600, Value::Null), "{v}");

    // A second initialize is refused; the client keeps its first name.
    s.send_json(&json!({"jsonrpc": "2.0", "id": 14, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "impostor", "version": "1"}}}))
        .await;
    let v = s.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32600, json!(14)), "{v}");
    s.send_json(&RawServer::tool(15, "create_vendor", json!({"name": "Named"})))
        .await;
    let v = s.next(second).await;
    assert_eq!(v["result"]["structuredContent"]["created_by"], "first-name", "{v}");

    // Under a later version a batch is refused as a whole.
    let mut later = RawServer::start().await;
    later.initialize("2025-11-25", "later").await;
    later
        .send_json(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]))
        .await;
    let v = later.next(second).await;
    assert_eq!((error_code(&v), v["id"].clone()), (-32600, Value::Null), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("2025-03-26"), "{v}");
    drop(s.stdin);
    assert!(s.child.wait().await.unwrap().success());
}

/// xorshift64*: a soak that fails can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FUZZ_METHODS: &[&str] = &[
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "ping",
    "initialize",
    "server/discover",
    "notifications/cancelled",
    "notifications/initialized",
    "completion/complete",
    "no/such/method",
    "",
];
const FUZZ_KEYS: &[&str] = &[
    "name",
    "arguments",
    "id",
    "version",
    "title",
    "item_type",
    "parent_id",
    "status",
    "priority",
    "text",
    "limit",
    "cursor",
    "metadata",
    "path",
    "repo_path",
    "action",
    "source_id",
    "target_id",
    "dependency_type",
    "commit_hash",
    "vendor_ids",
    "format",
    "uri",
    "description",
    "deleted",
    "protocolVersion",
    "clientInfo",
];

/// Paths a hostile client would try; `{out}` is a directory outside the repository.
const FUZZ_PATHS: &[&str] = &[
    "{out}/x.md",
    "../x.md",
    ".waymark/waymark.db",
    ".waymark/config.toml",
    ".waymark/x.md",
    ".git/x.md",
    "/dev/zero",
    "/etc/passwd",
    "report.md",
    ".project_status.md",
    "",
    "\u{0}.md",
];

fn fuzz_string(rng: &mut Rng, outside: &str) -> String {
    match rng.below(9) {
        0 => String::new(),
        1 => "x".repeat(rng.below(3) * 150 + 1),
        2 => "é🦀\u{202e}\u{0}\\\"".to_owned(),
        3 => rng.pick(FUZZ_PATHS).replace("{out}", outside),
        4 => "018f3e2a-7b1c-7d4e-9f00-0123456789ab".to_owned(),
        5 => rng.pick(FUZZ_KEYS).to_string(),
        6 => rng
            .pick(&["task", "project", "active", "completed", "add", "list", "json", "now"])
            .to_string(),
        7 => "w ".repeat(rng.below(700)),
        _ => format!("{:x}", rng.next()),
    }
}

fn fuzz_value(rng: &mut Rng, depth: usize, outside: &str) -> Value {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(rng.below(10) as i64 - 2),
        4 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        5 => json!(fuzz_string(rng, outside)),
        6 | 7 => Value::Object(
            (0..rng.below(5))
                .map(|_| (rng.pick(FUZZ_KEYS).to_string(), fuzz_value(rng, depth + 1, outside)))
                .collect(),
        ),
        _ => Value::Array((0..rng.below(4)).map(|_| fuzz_value(rng, depth + 1, outside)).collect()),
    }
}

/// One hostile message as JSON: a tool call with arguments of every shape,
/// a file tool aimed where it must not go, or any method with any params.
fn fuzz_message(rng: &mut Rng, n: usize, outside: &str, tools: &[String]) -> Value {
    let id = match rng.below(6) {
        0 => Value::Null,
        1 => json!({"nested": n}),
        2 => json!(format!("fuzz-{n}")),
        _ => json!(n),
    };
    let mut message = match rng.below(4) {
        0 | 1 => {
            let name = if rng.below(10) == 0 {
                fuzz_string(rng, outside)
            } else {
                rng.pick(tools).clone()
            };
            let arguments = match rng.below(8) {
                0 => fuzz_value(rng, 0, outside),
                1 => json!({"path": rng.pick(FUZZ_PATHS).replace("{out}", outside)}),
                _ => fuzz_value(rng, 2, outside)
                    .as_object()
                    .cloned()
                    .map(Value::Object)
                    .unwrap_or_else(|| json!({})),
            };
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
        }
        2 => {
            let path = rng.pick(FUZZ_PATHS).replace("{out}", outside);
            let tool = rng.pick(&["export_markdown", "import_markdown", "import_git_history"]);
            let key = if *tool == "import_git_history" {
                "repo_path"
            } else {
                "path"
            };
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {key: path}}})
        }
        _ => {
            json!({"jsonrpc": "2.0", "id": id, "method": rng.pick(FUZZ_METHODS), "params": fuzz_value(rng, 1, outside)})
        }
    };
    // Now and then break the envelope too.
    match rng.below(12) {
        0 => {
            message.as_object_mut().unwrap().remove("jsonrpc");
        }
        1 => message["jsonrpc"] = json!("1.0"),
        2 => {
            message.as_object_mut().unwrap().remove("id");
        }
        _ => {}
    }
    message
}

/// The bytes of one line of the soak: a message, a batch, or a mangled one.
fn fuzz_line(rng: &mut Rng, n: usize, outside: &str, tools: &[String]) -> Vec<u8> {
    match rng.below(10) {
        0 => (0..rng.below(200))
            .map(|_| rng.below(255) as u8)
            .filter(|b| *b != b'\n')
            .collect(),
        1 => {
            let mut bytes = fuzz_message(rng, n, outside, tools).to_string().into_bytes();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, *rng.pick(b"{}[]\",:0\\")),
                    _ => bytes[at] = *rng.pick(b"{}[]\",:0a\\ "),
                }
            }
            bytes
        }
        2 => Value::Array(
            (0..rng.below(4))
                .map(|i| fuzz_message(rng, n * 10 + i, outside, tools))
                .collect(),
        )
        .to_string()
        .into_bytes(),
        _ => fuzz_message(rng, n, outside, tools).to_string().into_bytes(),
    }
}

/// Random and malformed messages on stdio: the server never crashes, never
/// takes more than a second to answer the ping that follows each one,
/// writes only JSON-RPC with ids, answers every tool call, writes no file
/// outside its repository, never touches its store's files or echoes its
/// secrets, and exits cleanly at the end of input. WAYMARK_FUZZ_MESSAGES
/// (default 1,500) and WAYMARK_FUZZ_SEED set the soak.
#[tokio::test]
async fn stdio_soak_with_random_and_malformed_messages() {
    let count: usize = std::env::var("WAYMARK_FUZZ_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_500);
    let seed: u64 = std::env::var("WAYMARK_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_f00d);
    let mut rng = Rng(seed | 1);
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().to_owned();
    let mut s = RawServer::start().await;
    s.initialize("2025-03-26", "fuzzer").await;
    let data = s.repo.path().join(".waymark");
    let secret = "[hub]\nurl = \"postgres://u:hunter2@127.0.0.1:1/db\"\n";
    std::fs::write(data.join("config.toml"), secret).unwrap();
    let db_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(data.join("waymark.db")).unwrap());
    let tools: Vec<String> = [ALL_TOOLS, &["nope"]].concat().iter().map(|t| t.to_string()).collect();

    let mut expected: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut answered: std::collections::HashSet<String> = std::collections::HashSet::new();
    let started = std::time::Instant::now();
    for n in 0..count {
        let line = fuzz_line(&mut rng, n, &out, &tools);
        // A well-formed tool call must be answered, whatever its arguments.
        if let Ok(v) = serde_json::from_slice::<Value>(&line)
            && v["jsonrpc"] == "2.0"
            && v["method"] == "tools/call"
            && (v["id"].is_number() || v["id"].is_string())
            && v["params"]["name"].is_string()
        {
            expected.insert(v["id"].to_string());
        }
        s.send(&line).await;
        let probe = json!(format!("probe-{n}"));
        s.send_json(&json!({"jsonrpc": "2.0", "id": probe, "method": "ping"}))
            .await;
        loop {
            let v = s.next(Duration::from_secs(1)).await;
            let text = v.to_string();
            assert!(
                !text.contains("hunter2"),
                "a secret in an answer: {}",
                &text[..text.len().min(300)]
            );
            assert!(text.len() < 256 << 10, "an answer of {} bytes", text.len());
            let items = match v {
                Value::Array(items) => items,
                v => vec![v],
            };
            let mut probed = false;
            for item in items {
                probed |= item["id"] == probe;
                answered.insert(item["id"].to_string());
            }
            if probed {
                break;
            }
        }
    }
    // Tool calls run beside the probes: wait for their last answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !expected.is_subset(&answered) && std::time::Instant::now() < deadline {
        let v = s.next(Duration::from_secs(10)).await;
        for item in v.as_array().cloned().unwrap_or_else(|| vec![v]) {
            answered.insert(item["id"].to_string());
        }
    }
    let missing: Vec<&String> = expected.difference(&answered).collect();
    assert!(missing.is_empty(), "tool calls never answered: {missing:?}");
    eprintln!(
        "soak: {count} messages (seed {seed}) in {:.1?}, {} tool calls answered",
        started.elapsed(),
        expected.len()
    );

    drop(s.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), s.child.wait())
        .await
        .expect("serve exits at the end of input")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "a file written outside"
    );
    assert_eq!(std::fs::read_to_string(data.join("config.toml")).unwrap(), secret);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(data.join("waymark.db")).unwrap());
    assert_eq!(inode, db_inode, "the store's file was replaced");
    let check = std::process::Command::new(BIN)
        .args(["--data-dir", data.to_str().unwrap(), "export", "json"])
        .output()
        .unwrap();
    assert!(check.status.success(), "the store still reads: {check:?}");
}

/// A long import runs beside the server: a ping sent after it is answered
/// first, at once.
#[tokio::test]
async fn a_long_import_does_not_stop_the_server() {
    let mut s = RawServer::start().await;
    s.initialize("2025-11-25", "importer").await;
    let mut legacy = String::from("# Project Status\n\n## Active Work Items\n\n");
    for i in 0..6_000 {
        legacy.push_str(&format!("### Task {i} (task)\n- Status: active\n"));
    }
    std::fs::write(s.repo.path().join("legacy.md"), legacy).unwrap();
    s.send_json(&RawServer::tool(1, "import_markdown", json!({"path": "legacy.md"})))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.send_json(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})).await;
    let first = s.next(Duration::from_secs(1)).await;
    assert_eq!(
        first["id"],
        2,
        "the ping waits for the import: {}",
        &first.to_string()[..200.min(first.to_string().len())]
    );
    let imported = s.next(Duration::from_secs(120)).await;
    assert_eq!(imported["id"], 1);
    assert_eq!(
        imported["result"]["structuredContent"]["created"]["work_items"], 6_000,
        "{imported}"
    );
}

/// The soak over HTTP, in a session: whatever the body, an answer within a
/// second and never a server error; the session still serves afterwards.
/// WAYMARK_FUZZ_MESSAGES sets the count here too (a tenth of it, at least 100).
#[tokio::test]
async fn http_soak_with_random_and_malformed_messages() {
    let count = std::env::var("WAYMARK_FUZZ_MESSAGES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(300, |n| (n / 10).max(100));
    let mut rng = Rng(0xdead_beef);
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().to_owned();
    let server = HttpServer::start(&[]).await;
    let (session, _) = server.initialize().await;
    let tools: Vec<String> = ALL_TOOLS.iter().map(|t| t.to_string()).collect();
    for n in 0..count {
        let body = fuzz_line(&mut rng, n, &out, &tools);
        let request = [
            format!(
                "POST /mcp HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
                 Mcp-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n",
                server.addr,
                body.len()
            )
            .into_bytes(),
            body.clone(),
        ]
        .concat();
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer within 1 s to {}", String::from_utf8_lossy(&body)))
        .unwrap();
        let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            (200..500).contains(&status),
            "{head} for {}",
            String::from_utf8_lossy(&body)
        );
    }
    let alive = server.request(&session, 1_000_000, "ping", json!({})).await;
    assert!(alive.get("result").is_some(), "{alive}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "a file written outside"
    );
    server.stop().await;
}

/// `wait_for_changes`: without a cursor the current one at once; with one,
/// the answer comes as soon as another client writes (well before its
/// timeout), naming the record; a quiet store answers empty at the timeout.
#[tokio::test]
async fn wait_for_changes_wakes_on_another_clients_write() {
    let s = Session::all().await;
    let other = Session::on(s.tracker.clone(), ServeOptions::default(), "other-agent").await;
    let start = s.ok("wait_for_changes", json!({})).await;
    let cursor = start["cursor"].as_str().unwrap().to_owned();
    assert_eq!(start["changes"], json!([]));

    let quiet = s
        .ok("wait_for_changes", json!({"cursor": cursor, "timeout_s": 0}))
        .await;
    assert_eq!(
        (quiet["cursor"].as_str(), &quiet["changes"]),
        (Some(cursor.as_str()), &json!([]))
    );

    let waiting = {
        let params = CallToolRequestParams::new("wait_for_changes").with_arguments(
            json!({"cursor": cursor, "timeout_s": 30, "collections": ["work_items"]})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let peer = s.client.peer().clone();
        tokio::spawn(async move { (peer.call_tool(params).await, std::time::Instant::now()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    other.ok("create_vendor", json!({"name": "Filtered out"})).await;
    let item = other
        .ok(
            "create_work_item",
            json!({"item_type": "project", "title": "Woke you", "metadata": {"description": "d"}}),
        )
        .await;
    let written = std::time::Instant::now();
    let (answer, woke) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    let answer = answer.unwrap().structured_content.unwrap();
    eprintln!(
        "wait_for_changes answered {:?} after the write",
        woke.duration_since(written)
    );
    assert!(woke.duration_since(written) < Duration::from_millis(500));
    assert_eq!(answer["changes"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["changes"][0]["id"], item["id"]);
    assert_eq!(answer["changes"][0]["title"], "Woke you");
    assert_ne!(answer["cursor"].as_str(), Some(cursor.as_str()));

    let err = s.err("wait_for_changes", json!({"cursor": "nope"})).await;
    assert!(err.contains("not a cursor"), "{err}");
    let err = s
        .err("wait_for_changes", json!({"cursor": cursor, "timeout_s": 600}))
        .await;
    assert!(err.contains("60"), "{err}");
}

/// A client that records the resource-update notifications it gets.
#[derive(Clone)]
struct Listener {
    updates: tokio::sync::mpsc::UnboundedSender<String>,
}

impl rmcp::ClientHandler for Listener {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        let _ = self.updates.send(params.uri);
    }

    fn get_info(&self) -> ClientConfig {
        client_config("listener")
    }
}

/// Subscribers to a work item are told when it changes (and not when
/// another does), subscribers to the status after any change; an
/// unsubscribed resource is not notified again. (Through `resources/subscribe`,
/// which rmcp calls legacy: the protocol versions clients speak today.)
#[tokio::test]
#[allow(deprecated)]
async fn subscribers_are_notified_off_the_change_feed() {
    let s = Session::all().await;
    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = WaymarkServer::new(s.tracker.clone(), ServeOptions::default());
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let listener = Listener { updates: tx }.serve(client_io).await.unwrap();
    let a = s
        .ok(
            "create_work_item",
            json!({"item_type": "project", "title": "A", "metadata": {"description": "d"}}),
        )
        .await;
    let b = s
        .ok(
            "create_work_item",
            json!({"item_type": "project", "title": "B", "metadata": {"description": "d"}}),
        )
        .await;
    let uri_a = format!("waymark://work-item/{}", a["id"].as_str().unwrap());
    listener
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri_a.clone()))
        .await
        .unwrap();
    let refused = listener
        .subscribe(rmcp::model::SubscribeRequestParams::new("waymark://nothing"))
        .await;
    assert!(refused.is_err());

    async fn next(updates: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), updates.recv())
            .await
            .ok()
            .flatten()
    }
    s.ok(
        "update_work_item",
        json!({"id": b["id"], "version": b["version"], "title": "B2"}),
    )
    .await;
    s.ok(
        "update_work_item",
        json!({"id": a["id"], "version": a["version"], "title": "A2"}),
    )
    .await;
    assert_eq!(
        next(&mut updates).await.as_deref(),
        Some(uri_a.as_str()),
        "only A's change is notified"
    );

    listener
        .subscribe(rmcp::model::SubscribeRequestParams::new("waymark://status"))
        .await
        .unwrap();
    listener
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(uri_a.clone()))
        .await
        .unwrap();
    s.ok("create_vendor", json!({"name": "Acme"})).await;
    assert_eq!(next(&mut updates).await.as_deref(), Some("waymark://status"));
    s.ok(
        "update_work_item",
        json!({"id": a["id"], "version": a["version"].as_i64().unwrap() + 1, "title": "A3"}),
    )
    .await;
    assert_eq!(
        next(&mut updates).await.as_deref(),
        Some("waymark://status"),
        "not A's uri any more"
    );
}

/// A store with something on every page of the board: a project with a
/// session and tasks (one blocked by a dependency, one completed, one on a
/// branch), a vendor with test results, a deployment and an enhancement.
fn seed_board(tracker: &Tracker) -> (String, String) {
    use waymark::ops::*;
    let item = |t: &str, title: &str, parent: Option<&str>| NewWorkItem {
        item_type: t.into(),
        title: title.into(),
        parent_id: parent.map(str::to_owned),
        metadata: (t == "project")
            .then(|| json!({"description": "d"}).as_object().cloned())
            .flatten(),
        ..Default::default()
    };
    let project = tracker
        .create_work_item("a", item("project", "Board project", None))
        .unwrap();
    let session = tracker
        .create_work_item("a", item("session", "Day one", Some(&project.id)))
        .unwrap();
    let first = tracker
        .create_work_item("a", item("task", "Lay the <foundation>", Some(&session.id)))
        .unwrap();
    let second = tracker
        .create_work_item("a", item("task", "Raise the walls", Some(&session.id)))
        .unwrap();
    let done = tracker
        .create_work_item("a", item("task", "Survey the site", Some(&session.id)))
        .unwrap();
    tracker
        .update_work_item(
            "a",
            WorkItemUpdate {
                id: done.id.clone(),
                version: done.version,
                status: Some("completed".into()),
                ..Default::default()
            },
        )
        .unwrap();
    tracker
        .manage_dependency(
            "a",
            DependencyChange {
                action: DependencyAction::parse("add").unwrap(),
                source_id: second.id.clone(),
                target_id: first.id.clone(),
                dependency_type: "depends_on".into(),
            },
        )
        .unwrap();
    tracker
        .create_vendor(
            "a",
            NewVendor {
                name: "Acme parser".into(),
                extractor_version: Some("1.2".into()),
                metadata: json!({"test_results": {"passing": 3, "total": 4}}).as_object().cloned(),
            },
        )
        .unwrap();
    tracker
        .record_deployment(
            "a",
            NewDeployment {
                commit_hash: "abcdef0123456789abcdef0123456789abcdef01".into(),
                pr_number: Some(42),
                pr_title: Some("Ship the walls".into()),
                ..Default::default()
            },
        )
        .unwrap();
    tracker
        .create_enhancement(
            "a",
            NewEnhancement {
                title: "Add a roof".into(),
                target_quarter: Some("2027-Q1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    (first.id, second.id)
}

/// The board's pages over HTTP beside /mcp: each view shows the store's
/// records (escaped), the main-only part for live updates, the assets, the
/// security headers; Host, Origin and method are checked as for /mcp.
#[tokio::test]
async fn http_serves_the_board() {
    let server = HttpServer::start(&[]).await;
    let tracker = Tracker::open(&server.data_dir()).unwrap();
    seed_board(&tracker);
    let host = server.addr.to_string();

    let (status, head, body) = server.get("GET", "/", &host, &[]).await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/html"), "{head}");
    assert!(head.contains("default-src 'none'"), "CSP: {head}");
    for text in [
        "Ready",
        "In progress",
        "Blocked",
        "Done",
        "Lay the &lt;foundation&gt;",
        "waits for Lay the &lt;foundation&gt;",
        "Survey the site",
        "<svg class=\"chart\"",
        "<nav aria-label=\"Board pages\">",
        "<main id=\"main\"",
    ] {
        assert!(body.contains(text), "/ lacks {text:?}:\n{body}");
    }
    assert!(!body.contains("<foundation>"), "titles are escaped");

    let (_, _, tree) = server.get("GET", "/tree", &host, &[]).await;
    for text in ["Board project", "Day one", "Raise the walls", "waits for <a href=\"#i"] {
        assert!(tree.contains(text), "/tree lacks {text:?}:\n{tree}");
    }
    let (_, _, health) = server.get("GET", "/health", &host, &[]).await;
    for text in ["Acme parser", "3 of 4 tests pass", "3/4", "local only"] {
        assert!(health.contains(text), "/health lacks {text:?}:\n{health}");
    }
    let (_, _, plan) = server.get("GET", "/plan", &host, &[]).await;
    for text in ["abcdef0123", "#42", "Ship the walls", "2027-Q1", "Add a roof"] {
        assert!(plan.contains(text), "/plan lacks {text:?}:\n{plan}");
    }
    let (status, _, part) = server.get("GET", "/tree?part=main", &host, &[]).await;
    assert_eq!(status, 200);
    assert!(
        part.contains("Raise the walls") && !part.contains("<html") && !part.contains("<nav"),
        "{part}"
    );
    for asset in ["/assets/board.css", "/assets/board.js"] {
        let (status, _, body) = server.get("GET", asset, &host, &[]).await;
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 500, "{asset}");
    }

    // Refusals.
    let port = server.addr.port();
    let (status, _, _) = server.get("GET", "/", &format!("evil.example:{port}"), &[]).await;
    assert_eq!(status, 403, "a rebinding Host");
    let (status, _, _) = server
        .get("GET", "/", &host, &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(status, 403, "a foreign Origin");
    let (status, _, _) = server
        .get("GET", "/", &host, &[("Origin", &format!("http://localhost:{port}"))])
        .await;
    assert_eq!(status, 200, "a loopback Origin");
    let (status, head, _) = server.get("POST", "/", &host, &[("Content-Length", "0")]).await;
    assert_eq!(status, 405, "{head}");
    let (status, _, _) = server.get("GET", "/nowhere", &host, &[]).await;
    assert_eq!(status, 404);
    let (status, _, body) = server.get("HEAD", "/", &host, &[]).await;
    assert_eq!((status, body.as_str()), (200, ""));
}

/// `/events` tells an open board about a change made by another process
/// (the CLI) within a second, as a `change` event carrying the new cursor.
#[tokio::test]
async fn the_board_hears_a_cli_change_within_a_second() {
    let server = HttpServer::start(&[]).await;
    let data_dir = server.data_dir();
    let tracker = Tracker::open(&data_dir).unwrap();
    seed_board(&tracker);
    let cursor = tracker.changes_cursor().unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET /events?cursor={cursor} HTTP/1.0\r\nHost: {}\r\n\r\n", server.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    // The head, then the retry hint.
    let mut head = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    assert!(head[0].contains("200"), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/event-stream")),
        "{head:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(BIN)
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "vendor",
            "create",
            "Made by the CLI",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cli_done = started.elapsed();
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("the stream stays open");
            if line == "event: change" {
                break lines.next_line().await.unwrap().unwrap();
            }
        }
    })
    .await
    .expect("a change event");
    let heard = started.elapsed();
    eprintln!("the board heard a CLI change {heard:?} after the CLI started ({cli_done:?} in the CLI)");
    assert!(heard - cli_done < Duration::from_secs(1), "{heard:?}");
    let new_cursor = event.strip_prefix("data: ").unwrap();
    assert!(new_cursor.parse::<i64>().unwrap() > cursor.parse::<i64>().unwrap());
}

/// With a token, the board wants it: refused without, taken once as
/// `?token=` (answered with an HttpOnly cookie and a redirect), then the
/// cookie or a bearer header lets the pages through.
#[tokio::test]
async fn the_board_wants_the_servers_token() {
    let token = "board-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let server = HttpServer::start(&["--token-file", token_file.to_str().unwrap()]).await;
    let host = server.addr.to_string();
    let (status, _, body) = server.get("GET", "/", &host, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("?token="), "{body}");
    let (status, _, _) = server.get("GET", "/?token=wrong-token-0123456789", &host, &[]).await;
    assert_eq!(status, 401);
    let (status, head, _) = server.get("GET", &format!("/tree?token={token}"), &host, &[]).await;
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("HttpOnly") && head.contains("SameSite=Strict"), "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /tree"), "{head}");
    let cookie = format!("waymark_token={token}");
    let (status, _, _) = server.get("GET", "/", &host, &[("Cookie", &cookie)]).await;
    assert_eq!(status, 200);
    let bearer = format!("Bearer {token}");
    let (status, _, _) = server.get("GET", "/health", &host, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200);
}

/// A board of `tasks` tasks under one project and 20 sessions: a fifth
/// completed over the last weeks, every seventh waiting for the one before,
/// a few on branches; three vendors, deployments, enhancements. Returns the
/// first session's id.
fn seed_big_board(tracker: &Tracker, tasks: usize) -> String {
    use waymark::ops::*;
    seed_board(tracker);
    let project = tracker
        .create_work_item(
            "seed",
            NewWorkItem {
                item_type: "project".into(),
                title: "Waymark 1.0".into(),
                metadata: json!({"description": "the release"}).as_object().cloned(),
                ..Default::default()
            },
        )
        .unwrap();
    let sessions: Vec<String> = (0..20)
        .map(|k| {
            tracker
                .create_work_item(
                    "seed",
                    NewWorkItem {
                        item_type: "session".into(),
                        title: format!(
                            "Session {k}: {}",
                            ["sync", "board", "claims", "import", "search"][k % 5]
                        ),
                        parent_id: Some(project.id.clone()),
                        ..Default::default()
                    },
                )
                .unwrap()
                .id
        })
        .collect();
    let mut previous: Option<String> = None;
    for k in 0..tasks {
        let task = tracker
            .create_work_item(
                ["claude", "codex", "ana"][k % 3],
                NewWorkItem {
                    item_type: if k % 11 == 0 { "research" } else { "task" }.into(),
                    title: format!(
                        "Task {k}: {} the {}",
                        ["write", "test", "review", "measure"][k % 4],
                        ["store", "feed", "board", "hub", "cli", "importer"][k % 6]
                    ),
                    parent_id: Some(sessions[k % sessions.len()].clone()),
                    priority: Some((k % 5) as i64),
                    branch_name: (k % 13 == 0).then(|| format!("feature/{k}")),
                    ..Default::default()
                },
            )
            .unwrap();
        if k % 5 == 0 {
            tracker
                .update_work_item(
                    "seed",
                    WorkItemUpdate {
                        id: task.id.clone(),
                        version: task.version,
                        status: Some("completed".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
        } else if k % 7 == 0
            && let Some(before) = &previous
        {
            tracker
                .manage_dependency(
                    "seed",
                    DependencyChange {
                        action: DependencyAction::parse("add").unwrap(),
                        source_id: task.id.clone(),
                        target_id: before.clone(),
                        dependency_type: "depends_on".into(),
                    },
                )
                .unwrap();
        }
        previous = Some(task.id);
    }
    for (name, passing, total) in [
        ("Stripe importer", 118, 120),
        ("Linear sync", 40, 52),
        ("Jira export", 9, 30),
    ] {
        tracker
            .create_vendor(
                "seed",
                NewVendor {
                    name: name.into(),
                    extractor_version: Some("2.1".into()),
                    metadata: json!({"test_results": {"passing": passing, "total": total}})
                        .as_object()
                        .cloned(),
                },
            )
            .unwrap();
    }
    for (k, q) in ["2026-Q4", "2027-Q1", "2027-Q1", "2027-Q2"].iter().enumerate() {
        tracker
            .create_enhancement(
                "seed",
                NewEnhancement {
                    title: format!("Enhancement {k}"),
                    target_quarter: Some((*q).into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    sessions[0].clone()
}

/// The Chrome DevTools protocol over `--remote-debugging-pipe`: commands
/// on the browser's fd 3, answers and events on its fd 4, each message
/// ended by a NUL (a shell maps them onto the child's stdin and stdout).
struct Chromium {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    next_id: u64,
    session: Option<String>,
    _profile: TempDir,
}

impl Chromium {
    /// The browser to drive: `WAYMARK_CHROMIUM`, else `chromium` or
    /// `chromium-browser` on the PATH.
    fn find() -> Option<String> {
        if let Ok(path) = std::env::var("WAYMARK_CHROMIUM") {
            return Some(path);
        }
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(|name| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(name))
                        .find(|p| p.is_file())
                        .map(|p| p.display().to_string())
                })
            })
    }

    async fn start(binary: &str) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --remote-debugging-pipe --user-data-dir="$1" about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null"#)
            .arg(binary)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut browser = Chromium {
            child,
            stdin,
            stdout,
            next_id: 0,
            session: None,
            _profile: profile,
        };
        let target = browser.send("Target.createTarget", json!({"url": "about:blank"})).await;
        let attached = browser
            .send(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        browser.send("Page.enable", json!({})).await;
        // A page in the background is never painted.
        browser.send("Page.bringToFront", json!({})).await;
        browser
    }

    async fn read(&mut self) -> Value {
        let mut message = Vec::new();
        tokio::io::AsyncBufReadExt::read_until(&mut self.stdout, 0, &mut message)
            .await
            .unwrap();
        assert_eq!(message.pop(), Some(0), "chromium closed the pipe");
        serde_json::from_slice(&message).unwrap()
    }

    /// Send a command (to the page, once attached) and wait for its answer.
    async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.stdin.write_all(&bytes).await.unwrap();
        // Generous: a cold Chromium on a loaded two-core machine can take
        // tens of seconds to answer its first command.
        let answer = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let m = self.read().await;
                if m["id"] == json!(id) {
                    break m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("chromium answers {method}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Load `url` and wait for its load event.
    async fn open(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url})).await;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if self.read().await["method"] == "Page.loadEventFired" {
                    break;
                }
            }
        })
        .await
        .expect("the page loads");
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }
}

/// The first contentful paint of `url` over 5 loads, sorted (ms).
async fn first_paints(browser: &mut Chromium, url: &str) -> Vec<f64> {
    let mut paints = Vec::new();
    for _ in 0..5 {
        browser.open(url).await;
        // The paint entry may be recorded just after the load event.
        let paint = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let paint = browser
                    .eval("(performance.getEntriesByName('first-contentful-paint')[0]||{}).startTime")
                    .await;
                if let Some(ms) = paint.as_f64() {
                    break ms;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no paint entry for {url}"));
        paints.push(paint);
    }
    paints.sort_by(f64::total_cmp);
    paints
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

/// The board in a real browser: headless Chromium loads the work page of a
/// 1,200-item store (first paint timed, page weight counted), sees the
/// items, then sees a task created through the CLI appear without a reload
/// within a second. With `WAYMARK_BOARD_SCREENSHOT=PATH`, saves a
/// screenshot there (docs/board.png in the README). Skipped, saying so,
/// where no Chromium is installed (`scripts/board-check.sh` installs it).
#[tokio::test]
async fn the_board_in_headless_chromium() {
    let Some(binary) = Chromium::find() else {
        eprintln!(
            "SKIPPED the_board_in_headless_chromium: no chromium on the PATH (apt-get install -y chromium, or set WAYMARK_CHROMIUM)"
        );
        return;
    };
    // The timing target is for a release build on an idle machine:
    // `scripts/board-check.sh` passes one (WAYMARK_BOARD_BIN) and the
    // budget (WAYMARK_PAINT_BUDGET_MS=100); a debug build under `cargo
    // test` gets a budget that only catches a page gone badly wrong.
    let bin = std::env::var("WAYMARK_BOARD_BIN").unwrap_or_else(|_| BIN.to_owned());
    let budget: f64 = std::env::var("WAYMARK_PAINT_BUDGET_MS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(1_500.0);
    let server = HttpServer::start_with(&bin, "127.0.0.1:0", &[]).await;
    let data_dir = server.data_dir();
    let tracker = Tracker::open(&data_dir).unwrap();
    let session = seed_big_board(&tracker, 1_175);
    let items = tracker
        .list_work_items(waymark::ops::WorkItemFilter::default())
        .unwrap()
        .total_count;
    assert!(items >= 1_000, "{items} items (the count is capped at 1000)");
    let host = server.addr.to_string();
    let mut weight = 0;
    for path in ["/", "/assets/board.css", "/assets/board.js"] {
        let (status, _, body) = server.get("GET", path, &host, &[]).await;
        assert_eq!(status, 200);
        weight += body.len();
    }
    let (_, _, tree) = server.get("GET", "/tree", &host, &[]).await;
    eprintln!(
        "page weight: work page with its assets {weight} bytes; tree page {} bytes",
        tree.len()
    );
    assert!(weight < 200_000, "{weight} bytes");

    let mut browser = Chromium::start(&binary).await;
    browser
        .send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    let url = format!("http://{host}/");
    // The floor: the same browser painting a page of one word.
    let floor = first_paints(
        &mut browser,
        "data:text/html,<!doctype html><title>t</title><p>floor</p>",
    )
    .await;
    let paints = first_paints(&mut browser, &url).await;
    eprintln!(
        "first contentful paint, 5 loads each, median: the work page (1,200 items) {} ms {paints:?}; a one-word page {} ms {floor:?}",
        paints[2], floor[2]
    );
    assert!(paints[2] < budget, "first paint {paints:?} ms, over {budget} ms");
    // Bounded columns: a first screen's worth of cards each (20, the done
    // column 12), the rest counted.
    let cards = browser.eval("document.querySelectorAll('.card').length").await;
    assert!((40..=72).contains(&cards.as_u64().unwrap()), "{cards}");
    let more = browser.eval("document.querySelectorAll('.more').length").await;
    assert!(more.as_u64().unwrap() >= 2, "{more}");
    assert_eq!(
        browser
            .eval("document.body.innerText.includes('Task 1: test the feed')")
            .await,
        json!(true)
    );
    // Wait for the event stream to be open.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if browser.eval("document.getElementById('live').textContent").await == json!("live") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the board goes live");

    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(&bin)
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "item",
            "create",
            "--type",
            "task",
        ])
        .args(["--title", "Made in the CLI", "--priority", "0", "--parent", &session])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cli = started.elapsed();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if browser
                .eval("document.body.innerText.includes('Made in the CLI')")
                .await
                == json!(true)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the page shows the CLI's task");
    let shown = started.elapsed();
    eprintln!(
        "a task created through the CLI showed on the board {shown:?} after the CLI started ({cli:?} in the CLI)"
    );
    assert!(shown - cli < Duration::from_secs(1), "{shown:?}");
    assert_eq!(browser.eval("location.href").await, json!(url), "no reload");

    if let Ok(path) = std::env::var("WAYMARK_BOARD_SCREENSHOT") {
        let shot = browser.send("Page.captureScreenshot", json!({"format": "png"})).await;
        std::fs::write(&path, base64_decode(shot["data"].as_str().unwrap())).unwrap();
        eprintln!("screenshot saved to {path}");
    }
    let _ = browser.child.kill().await;
}
