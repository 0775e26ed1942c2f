//! Legacy `.project_status.md` import (fixtures in `fixtures/legacy/`: a
//! clean generated file, a hand-edited one, a broken one), the round trip
//! export -> import -> export, idempotence, session prompt files, and the
//! markdown export with a user's template.

use std::path::PathBuf;

use serde_json::json;
use waymark::Tracker;
use waymark::import::ImportReport;
use waymark::ops::{NewDeployment, NewEnhancement, NewVendor, VendorUpdate, WorkItem, WorkItemFilter, WorkItemUpdate};

use super::{new_item, tracker};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/legacy")
        .join(name)
}

fn line_of(name: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in fixture")
        + 1
}

fn items(t: &Tracker) -> Vec<WorkItem> {
    let page = t
        .list_work_items(WorkItemFilter {
            limit: Some(100),
            ..Default::default()
        })
        .unwrap();
    page.items.iter().map(|r| t.get_work_item(&r.id).unwrap()).collect()
}

fn item<'a>(all: &'a [WorkItem], title: &str) -> &'a WorkItem {
    all.iter()
        .find(|w| w.title == title)
        .unwrap_or_else(|| panic!("no item {title:?}"))
}

/// The report without its generation time.
fn timeless(md: &str) -> String {
    md.lines()
        .filter(|l| !l.starts_with("# Project Status - ") && !l.starts_with("*Generated at "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn skipped_at(r: &ImportReport, line: usize) -> &str {
    r.skipped
        .iter()
        .find(|s| s.line == Some(line))
        .map(|s| s.reason.as_str())
        .unwrap_or_else(|| panic!("line {line} not skipped: {:#?}", r.skipped))
}

fn warned_at(r: &ImportReport, line: usize) -> &str {
    r.warnings
        .iter()
        .find(|s| s.line == Some(line))
        .map(|s| s.reason.as_str())
        .unwrap_or_else(|| panic!("no warning at line {line}: {:#?}", r.warnings))
}

#[test]
fn a_clean_file_imports_every_entry_with_its_hierarchy() {
    let (_d, t) = tracker();
    let r = t.import_markdown("cli", &fixture("clean.project_status.md")).unwrap();
    assert!(r.skipped.is_empty(), "{:#?}", r.skipped);
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    assert_eq!(r.created["vendors"], 2);
    assert_eq!(r.created["work_items"], 4);
    assert_eq!(r.created["deployments"], 2);
    assert_eq!(r.created["enhancements"], 1);

    let all = items(&t);
    let project = item(&all, "Commission tracker");
    let session = item(&all, "Phase 1 session");
    let task = item(&all, "Parse Epson files");
    assert_eq!(
        (project.item_type.as_str(), project.depth, project.parent_id.as_deref()),
        ("project", 0, None)
    );
    assert_eq!(project.branch_name.as_deref(), Some("feature/001-commission-tracker"));
    assert_eq!(project.created_at, "2025-09-01T09:00:00.000000Z");
    assert_eq!(
        (session.parent_id.as_deref(), session.depth),
        (Some(project.id.as_str()), 1)
    );
    assert_eq!(
        (task.parent_id.as_deref(), task.depth, task.status.as_str()),
        (Some(session.id.as_str()), 2, "blocked")
    );
    assert_eq!(item(&all, "Vendor formats survey").item_type, "research");

    let epson = t.query_vendor_status("epson").unwrap();
    assert_eq!(epson.status, "operational");
    assert_eq!(
        epson.metadata,
        json!({"test_results": {"passing": 45, "total": 50}, "format_support": {"csv": true, "excel": true}})
    );
    assert_eq!(t.query_vendor_status("canon").unwrap().status, "broken");

    let deps = t.list_deployments(Default::default()).unwrap();
    let pr43 = t.get_deployment(&deps.items[0].id).unwrap();
    assert_eq!(pr43.commit_hash, "b2c3d4e");
    assert_eq!(pr43.deployed_at, "2025-10-02T15:30:00.000000Z");
    assert_eq!(
        pr43.metadata,
        json!({"pr_number": 43, "pr_title": "Epson parser", "test_summary": {"integration": 30, "unit": 150},
               "constitutional_compliance": true})
    );
    assert_eq!(pr43.vendor_ids, vec![epson.id]);
    let pr42 = t.get_deployment(&deps.items[1].id).unwrap();
    assert_eq!(pr42.metadata["constitutional_compliance"], false);

    let e = t.list_enhancements(Default::default()).unwrap().items;
    assert_eq!(
        (e[0].title.as_str(), e[0].priority, e[0].target_quarter.as_deref()),
        ("Multi-currency", 2, Some("2026-Q1"))
    );
}

#[test]
fn a_clean_generated_file_exports_back_to_itself() {
    let (_d, t) = tracker();
    t.import_markdown("cli", &fixture("clean.project_status.md")).unwrap();
    let original = std::fs::read_to_string(fixture("clean.project_status.md")).unwrap();
    let exported = t.status_markdown(None).unwrap();
    assert_eq!(timeless(&exported), timeless(&original));
}

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    let (_d, t) = crate::published_tracker();
    for name in [
        "clean.project_status.md",
        "hand-edited.project_status.md",
        "broken.project_status.md",
    ] {
        t.import_markdown("cli", &fixture(name)).unwrap();
        let before = (t.store().pending_changes().unwrap(), t.export_json().unwrap());
        let again = t.import_markdown("cli", &fixture(name)).unwrap();
        assert_eq!(again.created_total() + again.updated_total(), 0, "{name}: {again:#?}");
        assert_eq!(
            (t.store().pending_changes().unwrap(), t.export_json().unwrap()),
            before,
            "{name}"
        );
    }
}

#[test]
fn export_import_export_gives_the_same_document() {
    let (_d, a) = tracker();
    let p = a.create_work_item("cli", new_item("project", "Tracker", None)).unwrap();
    let s = a
        .create_work_item("cli", new_item("session", "Session one", Some(&p.id)))
        .unwrap();
    for title in ["Write the parser", "Another task", "Zeta task"] {
        a.create_work_item("cli", new_item("task", title, Some(&s.id))).unwrap();
    }
    a.create_work_item("cli", new_item("research", "Formats", None))
        .unwrap();
    a.create_vendor(
        "cli",
        NewVendor {
            name: "Epson".into(),
            ..Default::default()
        },
    )
    .unwrap();
    a.update_vendor_status(
        "cli",
        VendorUpdate {
            name: "Epson".into(),
            version: 1,
            status: Some("operational".into()),
            metadata: json!({"test_results": {"passing": 4, "total": 5}, "format_support": {"pdf": true, "csv": true}})
                .as_object()
                .cloned(),
            ..Default::default()
        },
    )
    .unwrap();
    for (n, at) in [(1, "2025-10-01T10:00:00Z"), (2, "2025-10-02T10:00:00Z")] {
        a.record_deployment(
            "cli",
            NewDeployment {
                commit_hash: format!("{n}").repeat(40),
                deployed_at: Some(at.into()),
                pr_number: Some(n),
                pr_title: Some(format!("Release {n}")),
                test_summary: json!({"unit": 10 * n}).as_object().cloned(),
                constitutional_compliance: Some(n == 1),
                vendor_ids: vec!["epson".into()],
                ..Default::default()
            },
        )
        .unwrap();
    }
    for (title, priority) in [("Later", 4), ("Sooner", 1), ("Also sooner", 1)] {
        a.create_enhancement(
            "cli",
            NewEnhancement {
                title: title.into(),
                priority: Some(priority),
                target_quarter: Some("2026-Q2".into()),
                description: Some(format!("{title}, described")),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let first = a.status_markdown(None).unwrap();

    let (_d2, b) = tracker();
    let r = b.import_markdown_text("cli", &first, "first.md").unwrap();
    assert!(r.skipped.is_empty() && r.warnings.is_empty(), "{r:#?}");
    let second = b.status_markdown(None).unwrap();
    assert_eq!(timeless(&second), timeless(&first));
}

/// An open item under a completed parent: the report lists the parent too
/// (its status says completed; the section's count is of open items), so
/// the round trip keeps the child under it instead of at the root.
#[test]
fn an_open_item_under_a_completed_parent_keeps_its_place() {
    let (_d, a) = tracker();
    let p = a.create_work_item("cli", new_item("project", "Shipped", None)).unwrap();
    let s = a
        .create_work_item("cli", new_item("session", "Wrap up", Some(&p.id)))
        .unwrap();
    a.create_work_item("cli", new_item("task", "Follow-up", Some(&s.id)))
        .unwrap();
    a.create_work_item("cli", new_item("task", "Done too", Some(&p.id)))
        .unwrap();
    a.create_work_item("cli", new_item("project", "Open", None)).unwrap();
    for title in ["Shipped", "Wrap up", "Done too"] {
        let w = item(&items(&a), title).clone();
        a.update_work_item(
            "cli",
            WorkItemUpdate {
                id: w.id.clone(),
                version: w.version,
                status: Some("completed".into()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let first = a.status_markdown(None).unwrap();
    // Two open items; the completed ancestors of one of them come along,
    // marked completed; a completed leaf does not.
    assert!(first.contains("## Active Work Items (2)\n"), "{first}");
    assert!(
        first.contains("### Shipped (project)\n- **Status**: completed\n"),
        "{first}"
    );
    assert!(
        first.contains("  ### Wrap up (session)\n  - **Status**: completed\n"),
        "{first}"
    );
    assert!(
        first.contains("    ### Follow-up (task)\n    - **Status**: active\n"),
        "{first}"
    );
    assert!(first.contains("    - **Parent**: Wrap up\n"), "{first}");
    assert!(!first.contains("Done too"), "{first}");
    let report = a.status_report().unwrap();
    // ("Open" sorts before or after the subtree, by the second it was made.)
    let shown: Vec<(&str, bool)> = report
        .work_items
        .iter()
        .map(|w| (w.title.as_str(), w.context))
        .filter(|(t, _)| *t != "Open")
        .collect();
    assert_eq!(shown, [("Shipped", true), ("Wrap up", true), ("Follow-up", false)]);
    assert_eq!(report.work_items.len(), 4);
    assert_eq!(report.open_work_items, 2);

    let (_d2, b) = tracker();
    let r = b.import_markdown_text("cli", &first, "first.md").unwrap();
    assert!(r.skipped.is_empty() && r.warnings.is_empty(), "{r:#?}");
    let all = items(&b);
    let (shipped, wrap, follow) = (item(&all, "Shipped"), item(&all, "Wrap up"), item(&all, "Follow-up"));
    assert_eq!(
        (shipped.status.as_str(), wrap.status.as_str()),
        ("completed", "completed")
    );
    assert_eq!(wrap.parent_id.as_deref(), Some(shipped.id.as_str()));
    assert_eq!(follow.parent_id.as_deref(), Some(wrap.id.as_str()));
    assert_eq!(follow.status, "active");
    let second = b.status_markdown(None).unwrap();
    assert_eq!(timeless(&second), timeless(&first));
}

#[test]
fn a_hand_edited_file_imports_what_it_can_and_says_what_it_skipped() {
    let name = "hand-edited.project_status.md";
    let (_d, t) = tracker();
    let r = t.import_markdown("cli", &fixture(name)).unwrap();
    assert_eq!(r.created["work_items"], 4);
    assert_eq!(r.created["deployments"], 2);
    assert_eq!(r.created["vendors"], 1);
    assert_eq!(r.created["enhancements"], 1);

    // Prose, an unknown field: skipped with their line numbers.
    assert_eq!(
        skipped_at(&r, line_of(name, "Notes from the Monday")),
        "text before the first section"
    );
    assert_eq!(
        skipped_at(&r, line_of(name, "Deployed by hand")),
        "prose inside a deployment entry"
    );
    assert!(skipped_at(&r, line_of(name, "**Owner**")).contains("**owner** is not imported"));
    assert_eq!(r.skipped.len(), 3, "{:#?}", r.skipped);

    // A malformed hash keeps its entry, raw, with a warning.
    assert!(warned_at(&r, line_of(name, "not-a-hash")).contains("commit_raw"));
    assert!(warned_at(&r, line_of(name, "unit: lots")).contains("not a test count"));
    let deps = t.list_deployments(Default::default()).unwrap();
    let pr50 = t.get_deployment(&deps.items[1].id).unwrap();
    assert_eq!(pr50.commit_hash, "");
    assert_eq!(
        pr50.metadata,
        json!({"commit_raw": "not-a-hash", "pr_number": 50, "pr_title": "Statement export"})
    );
    let pr51 = t.get_deployment(&deps.items[0].id).unwrap();
    assert_eq!(
        (pr51.commit_hash.as_str(), &pr51.metadata["test_summary"]),
        ("d4e5f6a7b8c9", &json!({"unit": 12}))
    );

    // Legacy status words, and a parent named before it appears.
    let all = items(&t);
    let project = item(&all, "Payments project");
    let session = item(&all, "Payments session");
    let task = item(&all, "Reconcile ledgers");
    assert_eq!(project.status, "active");
    assert_eq!(session.parent_id.as_deref(), Some(project.id.as_str()));
    assert_eq!(
        (task.parent_id.as_deref(), task.depth, task.status.as_str()),
        (Some(session.id.as_str()), 2, "active")
    );
    assert_eq!(item(&all, "Old cleanup").status, "completed");
    assert_eq!(
        t.list_enhancements(Default::default()).unwrap().items[0]
            .target_quarter
            .as_deref(),
        Some("2026-Q3")
    );
}

#[test]
fn a_broken_file_never_aborts_and_reports_each_line() {
    let name = "broken.project_status.md";
    let (_d, t) = tracker();
    let r = t.import_markdown("cli", &fixture(name)).unwrap();
    let at = |needle: &str| line_of(name, needle);

    assert!(skipped_at(&r, at("A heading without a type")).contains("needs \"### <title> (<item_type>)\""));
    assert_eq!(
        skipped_at(&r, at("A heading without a type") + 1),
        "belongs to a skipped entry"
    );
    assert!(skipped_at(&r, at("(epic)")).contains("\"epic\" is not an item type"));
    assert!(skipped_at(&r, at("sometime - PR #1")).contains("deployment heading needs"));
    assert!(skipped_at(&r, at("Bad/Name!")).contains("invalid name"));
    assert!(skipped_at(&r, at("random words")).contains("prose"));
    assert!(skipped_at(&r, at("## Backlog")).contains("not a section"));
    assert!(skipped_at(&r, at("- something")).contains("not imported"));

    assert!(warned_at(&r, at("sort of")).contains("imported as active"));
    assert!(warned_at(&r, at("yesterday")).contains("created now"));
    assert!(warned_at(&r, at("Nobody by that name")).contains("at the root"));
    assert!(warned_at(&r, at("Loop A (task)")).contains("loops back"));
    assert!(warned_at(&r, at("**Commit**:")).contains("no commit hash"));
    assert!(warned_at(&r, at("maybe")).contains("compliance"));
    assert!(warned_at(&r, at("sideways")).contains("left broken"));

    let all = items(&t);
    assert_eq!(all.len(), 3, "Good task, Loop A, Loop B");
    assert_eq!(item(&all, "Good task").parent_id, None);
    let acme = t.query_vendor_status("Acme").unwrap();
    assert_eq!((acme.status.as_str(), &acme.metadata), ("broken", &json!({})));
    let deps = t.list_deployments(Default::default()).unwrap();
    assert_eq!(deps.total_count, 1);
    assert_eq!(deps.items[0].pr_number, Some(60));
}

#[test]
fn session_prompts_become_session_items() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("001-plan.md"),
        "---\nschema_version: 2\ntitle: Plan the importer\ntoken_budget: 50000\ntags: [git, markdown]\n---\n# Plan\nRead the spec.\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("002-bad.md"), "---\ntitle: [unclosed\n---\nbody\n").unwrap();
    std::fs::write(dir.path().join("003-old.md"), "---\ntitle: No version\n---\nbody\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a prompt").unwrap();
    let (_d, t) = tracker();
    let r = t.import_sessions("cli", dir.path()).unwrap();
    assert_eq!(r.created["work_items"], 1);
    assert_eq!(r.skipped.len(), 2);
    assert_eq!(r.skipped[0].at, "002-bad.md");
    assert!(
        r.skipped[0].reason.contains("malformed YAML front matter"),
        "{}",
        r.skipped[0].reason
    );
    assert_eq!(r.skipped[1].at, "003-old.md");
    assert!(r.skipped[1].reason.contains("no schema_version"));

    let all = items(&t);
    let s = item(&all, "Plan the importer");
    assert_eq!(s.item_type, "session");
    assert_eq!(s.description.as_deref(), Some("# Plan\nRead the spec."));
    assert_eq!(s.metadata["token_budget"], 50000);
    assert_eq!(
        s.metadata["yaml_frontmatter"],
        json!({"schema_version": 2, "title": "Plan the importer", "token_budget": 50000, "tags": ["git", "markdown"]})
    );
    let again = t.import_sessions("cli", dir.path()).unwrap();
    assert_eq!(again.created_total(), 0);
}

#[test]
fn export_writes_the_file_with_a_users_template() {
    let (d, t) = tracker();
    t.create_work_item("cli", new_item("task", "Templated", None)).unwrap();
    let out = d.path().join("out.md");
    t.export_markdown(Some(d.path()), &out).unwrap();
    assert!(std::fs::read_to_string(&out).unwrap().contains("### Templated (task)"));
    std::fs::write(
        d.path().join("status.md.j2"),
        "{% for w in work_items %}* {{ w.title }}\n{% endfor %}",
    )
    .unwrap();
    t.export_markdown(Some(d.path()), &out).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "* Templated\n");
}

#[test]
fn the_default_layout_of_work_items_is_the_loop_its_template_shows() {
    let (_d, t) = tracker();
    let p = t.create_work_item("cli", new_item("project", "Roof", None)).unwrap();
    let s = t
        .create_work_item(
            "cli",
            waymark::ops::NewWorkItem {
                branch_name: Some("feature/roof".into()),
                ..new_item("session", "Tiles", Some(&p.id))
            },
        )
        .unwrap();
    t.create_work_item("cli", new_item("task", "Count tiles", Some(&s.id)))
        .unwrap();
    let report = t.status_report().unwrap();
    // The loop the default template keeps in a comment, as a user's template.
    let template = waymark::report::DEFAULT_TEMPLATE;
    let from = template.find("{% for w in work_items").unwrap();
    let to = template[from..].find("{% endfor %}").unwrap() + from + "{% endfor %}".len();
    let looped = waymark::report::render_markdown(&report, Some(&template[from..to])).unwrap();
    assert_eq!(looped, waymark::report::work_items_markdown(&report.work_items));
    assert!(
        looped.contains("  - **Branch**: feature/roof\n  - **Parent**: Roof\n"),
        "{looped}"
    );
    let md = waymark::report::render_markdown(&report, None).unwrap();
    assert!(
        md.contains(&format!("## Active Work Items (3)\n{looped}\n## Recent Deployments")),
        "{md}"
    );
}

#[test]
fn a_users_template_can_read_every_field_of_the_report() {
    let (_d, t) = tracker();
    t.create_work_item("cli", new_item("task", "Anything", None)).unwrap();
    let report = t.status_report().unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let mut names: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    names.push("work_items_markdown");
    let template: String = names
        .iter()
        .map(|n| format!("{n}={{{{ 'yes' if {n} is defined }}}}\n"))
        .collect();
    let expected: String = names.iter().map(|n| format!("{n}=yes\n")).collect();
    assert_eq!(
        waymark::report::render_markdown(&report, Some(&template)).unwrap(),
        expected
    );
    // A template that names no field still renders (with none converted).
    assert_eq!(
        waymark::report::render_markdown(&report, Some("plain\n")).unwrap(),
        "plain\n"
    );
}
