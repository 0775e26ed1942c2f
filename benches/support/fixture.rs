//! The deterministic fixture both the store and the MCP benchmarks build:
//! a project tree of work items, dependencies, vendors and deployments as one
//! `export json` document for `Tracker::import_json`.
#![allow(dead_code)]

use serde_json::{Map, Value, json};
use uuid::Uuid;
use waymark::domain::ids;
use waymark::time::Timestamp;

pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn scale(n: usize) -> usize {
    if bench_mode() { n } else { (n / 100).max(10) }
}

// ---------------------------------------------------------------------------
// Deterministic data.

/// splitmix64: small, fast, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len())]
    }
}

pub const VERBS: &[&str] = &[
    "implement",
    "fix",
    "refactor",
    "document",
    "test",
    "review",
    "migrate",
    "profile",
    "design",
    "remove",
    "rename",
    "split",
    "merge",
    "cache",
    "validate",
    "parse",
    "render",
    "index",
    "sync",
    "export",
];
pub const NOUNS: &[&str] = &[
    "parser",
    "importer",
    "exporter",
    "cache",
    "index",
    "schema",
    "migration",
    "report",
    "template",
    "vendor",
    "deployment",
    "session",
    "project",
    "dependency",
    "cursor",
    "page",
    "outbox",
    "replica",
    "clock",
    "merge",
    "conflict",
    "archive",
    "metadata",
    "config",
    "branch",
    "commit",
    "hook",
    "server",
    "client",
    "transport",
    "handler",
    "router",
    "queue",
    "worker",
    "timeout",
    "retry",
    "backoff",
    "checksum",
    "manifest",
    "extractor",
    "spreadsheet",
    "invoice",
    "commission",
    "ledger",
    "currency",
    "rounding",
    "locale",
    "encoding",
    "pdf",
    "ocr",
];
pub const WORDS: &[&str] = &[
    "the", "a", "when", "after", "before", "with", "without", "so", "that", "agents", "users", "can", "cannot",
    "should", "must", "read", "write", "see", "keep", "lose", "every", "some", "no", "large", "small", "slow", "fast",
    "old", "new", "broken", "stale", "fresh", "offline", "online", "again", "once", "twice", "store",
];

pub fn title(rng: &mut Rng, i: usize) -> String {
    format!("{} {} {} #{i}", rng.pick(VERBS), rng.pick(NOUNS), rng.pick(NOUNS))
}

pub fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s: Vec<&str> = Vec::with_capacity(words);
    for _ in 0..words {
        s.push(if rng.chance(30) {
            rng.pick(NOUNS)
        } else {
            rng.pick(WORDS)
        });
    }
    let mut s = s.join(" ");
    s.push('.');
    s
}

/// 2024-01-01T00:00:00Z plus `seconds`.
pub fn time_at(seconds: i64) -> String {
    Timestamp((1_704_067_200 + seconds) * 1_000_000).to_string()
}

pub fn item_id(seed: &str, i: usize) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("waymark-bench:{seed}:item:{i}").as_bytes(),
    )
    .to_string()
}

/// One generated work item, before it becomes JSON.
pub struct Item {
    pub id: String,
    pub item_type: &'static str,
    pub parent: Option<usize>,
    pub depth: i64,
}

/// A realistic hierarchy of exactly `n` items: projects > sessions > tasks
/// (some research), subtasks, and a thinning tail down to depth 5. Items are
/// listed in creation order (every parent before its children).
pub fn hierarchy(n: usize) -> Vec<Item> {
    // Per 1,000 items: 1 project, 10 sessions, 600 tasks, 300 at depth 3,
    // 60 at depth 4, 29 at depth 5.
    let projects = (n / 1000).max(1);
    let mut items: Vec<Item> = Vec::with_capacity(n);
    let push = |items: &mut Vec<Item>, item_type, parent: Option<usize>, depth| {
        let i = items.len();
        items.push(Item {
            id: String::new(),
            item_type,
            parent,
            depth,
        });
        i
    };
    let per_project = n / projects;
    for p in 0..projects {
        let budget = if p + 1 == projects {
            n - items.len()
        } else {
            per_project
        };
        let start = items.len();
        let proj = push(&mut items, "project", None, 0);
        let sessions = (budget / 100).max(1);
        let mut level2 = Vec::new();
        for _ in 0..sessions {
            let s = push(&mut items, "session", Some(proj), 1);
            for _ in 0..(budget * 6 / 10 / sessions).max(1) {
                level2.push(push(&mut items, "task", Some(s), 2));
            }
        }
        // Half the tasks get subtasks; every fifth of those a child; the first
        // ones of those a child at depth 5; then fill to the exact budget.
        let mut level3 = Vec::new();
        for &t in level2.iter().step_by(2) {
            if items.len() - start >= budget {
                break;
            }
            level3.push(push(&mut items, "task", Some(t), 3));
        }
        let mut level4 = Vec::new();
        for &t in level3.iter().step_by(5) {
            if items.len() - start >= budget {
                break;
            }
            level4.push(push(&mut items, "task", Some(t), 4));
        }
        let mut k = 0;
        while items.len() - start < budget {
            let (parent, depth) = if k < level4.len() {
                (level4[k], 5)
            } else {
                (level2[k % level2.len()], 3)
            };
            push(&mut items, "task", Some(parent), depth);
            k += 1;
        }
    }
    items.truncate(n);
    items
}

/// The JSON document `import_json` reads, with `n_items` work items, and the
/// generated items (for picking benchmark targets).
pub fn document(
    seed: &str,
    n_items: usize,
    n_vendors: usize,
    n_deployments: usize,
    n_deps: usize,
) -> (Value, Vec<Item>) {
    let mut rng = Rng(0x5eed ^ seed.len() as u64);
    let mut items = hierarchy(n_items);
    for (i, item) in items.iter_mut().enumerate() {
        item.id = item_id(seed, i);
        if item.item_type == "task" && item.depth == 2 && rng.chance(10) {
            item.item_type = "research";
        }
    }
    // Creation times spread over two years; updates up to 30 days later.
    let step = (2 * 365 * 86_400 / n_items.max(1)) as i64;
    let mut work_items = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let created = i as i64 * step;
        let status = match (item.item_type, rng.below(100)) {
            ("project", _) => "active",
            (_, 0..=54) => "active",
            (_, 55..=89) => "completed",
            _ => "blocked",
        };
        let metadata = match item.item_type {
            "project" => {
                json!({"description": sentence(&mut rng, 12), "target_quarter": "2026-Q1"})
            }
            "session" => json!({"token_budget": 200_000, "prompts_count": rng.below(40)}),
            "research" => json!({"research_questions": [sentence(&mut rng, 8)], "references": []}),
            _ => json!({"estimated_hours": rng.below(40)}),
        };
        let mut o = Map::new();
        o.insert("id".into(), item.id.clone().into());
        o.insert("item_type".into(), item.item_type.into());
        o.insert("title".into(), title(&mut rng, i).into());
        if rng.chance(30) {
            o.insert("description".into(), sentence(&mut rng, 20).into());
        }
        o.insert("status".into(), status.into());
        o.insert("priority".into(), (rng.below(5) as i64).into());
        if let Some(p) = item.parent {
            o.insert("parent_id".into(), items[p].id.clone().into());
        }
        o.insert("depth".into(), item.depth.into());
        o.insert("metadata".into(), metadata);
        o.insert("created_at".into(), time_at(created).into());
        o.insert("created_by".into(), "claude-code".into());
        o.insert(
            "updated_at".into(),
            time_at(created + rng.below(30 * 86_400) as i64).into(),
        );
        o.insert("updated_by".into(), "claude-code".into());
        work_items.push(Value::Object(o));
    }

    // Dependencies between tasks: a later item waits for an earlier one
    // (`depends_on` from the later, `blocks` from the earlier), so no cycles.
    let tasks: Vec<usize> = (0..items.len()).filter(|&i| items[i].depth >= 2).collect();
    let mut seen = std::collections::HashSet::new();
    let mut dependencies = Vec::with_capacity(n_deps);
    while dependencies.len() < n_deps && tasks.len() > 1 {
        let a = tasks[rng.below(tasks.len())];
        // Mostly close in time: an item waits for one created shortly before.
        let b = tasks[(tasks.binary_search(&a).unwrap_or(0) + 1 + rng.below(200)).min(tasks.len() - 1)];
        if a == b {
            continue;
        }
        let (early, late) = (a.min(b), a.max(b));
        let kind = if rng.chance(70) { "depends_on" } else { "blocks" };
        let (source, target) = if kind == "depends_on" {
            (late, early)
        } else {
            (early, late)
        };
        if !seen.insert((source, target, kind)) {
            continue;
        }
        let (s, t) = (&items[source].id, &items[target].id);
        let at = time_at(late as i64 * step + 60);
        dependencies.push(json!({
            "id": ids::dependency(s, t, kind), "source_id": s, "target_id": t, "dependency_type": kind,
            "created_at": at, "created_by": "claude-code", "updated_at": at, "updated_by": "claude-code",
        }));
    }

    let mut vendor_ids = Vec::with_capacity(n_vendors);
    let mut vendors = Vec::with_capacity(n_vendors);
    for v in 0..n_vendors {
        let name = format!("Vendor-{v:04} {}", rng.pick(NOUNS));
        let total = rng.below(300) as i64;
        let passing = total - rng.below(total as usize + 1) as i64 / 4;
        let at = time_at(v as i64 * 3600);
        let id = ids::vendor(&name);
        vendor_ids.push(id.clone());
        vendors.push(json!({
            "id": id, "name": name,
            "status": if rng.chance(80) { "operational" } else { "broken" },
            "extractor_version": format!("1.{}.{}", rng.below(10), rng.below(20)),
            "metadata": {
                "format_support": {"excel": rng.chance(70), "csv": rng.chance(90), "pdf": rng.chance(40), "ocr": rng.chance(10)},
                "test_results": {"passing": passing, "total": total, "skipped": 0},
                "manifest_compliant": rng.chance(80),
                "last_test_run": at,
            },
            "created_at": at, "created_by": "cli", "updated_at": at, "updated_by": "cli",
        }));
    }

    let mut deployments = Vec::with_capacity(n_deployments);
    let dstep = (2 * 365 * 86_400 / n_deployments.max(1)) as i64;
    for d in 0..n_deployments {
        let commit: String = (0..5).map(|_| format!("{:08x}", rng.next() as u32)).collect();
        let at = time_at(d as i64 * dstep);
        let mut vs: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let v = vendor_ids[rng.below(vendor_ids.len())].clone();
            if !vs.contains(&v) {
                vs.push(v);
            }
        }
        let mut ws: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let w = items[rng.below(items.len())].id.clone();
            if !ws.contains(&w) {
                ws.push(w);
            }
        }
        deployments.push(json!({
            "id": ids::deployment_from_commit(&commit), "deployed_at": at, "commit_hash": commit,
            "metadata": {
                "pr_number": d + 1, "pr_title": format!("{} {}", rng.pick(VERBS), rng.pick(NOUNS)),
                "test_summary": {"unit": rng.below(500), "integration": rng.below(80)},
                "constitutional_compliance": rng.chance(90),
            },
            "vendor_ids": vs, "work_item_ids": ws,
            "created_at": at, "created_by": "cli", "updated_at": at, "updated_by": "cli",
        }));
    }

    let doc = json!({
        "work_items": work_items,
        "dependencies": dependencies,
        "vendors": vendors,
        "deployments": deployments,
    });
    (doc, items)
}

// ---------------------------------------------------------------------------
