//! Fuzzing the importers: no input makes a parser panic.
//!
//! Each importer's parser gets arbitrary strings, strings built from its own
//! vocabulary (the words, markers and values it looks for, with multi-byte
//! characters among them), and near-valid inputs: the legacy fixtures of
//! `fixtures/legacy` (and a session prompt, and commit messages in each git
//! convention) with lines deleted, repeated, swapped, re-indented, cut, and
//! characters replaced or inserted. A few cases of each also go through a
//! whole import into a store (the domain's checks and the write path see
//! what the parser let through).
//!
//! The case count is small by default (seconds in CI). For a soak, raise
//! it: `WAYMARK_FUZZ_CASES=200000 cargo test --release --test it fuzz::`
//! (whole imports run a sixteenth as many); the legacy parser alone:
//! `WAYMARK_FUZZ_MARKDOWN_CASES=1000000 cargo test --release --test it fuzz::legacy_markdown_parser`.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use waymark::Tracker;
use waymark::import::git::{parse_branch, parse_commit_message};
use waymark::import::markdown::{Document, parse, parse_report};
use waymark::import::sessions::parse_prompt;

/// Cases per parser property: `WAYMARK_FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("WAYMARK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(256)
}

/// Cases per whole-import property (a store write each).
fn import_cases() -> u32 {
    (cases() / 16).max(12)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // The inputs are cheap to make; shrinking a panic is what matters.
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

const LEGACY: [&str; 3] = [
    include_str!("../../fixtures/legacy/clean.project_status.md"),
    include_str!("../../fixtures/legacy/hand-edited.project_status.md"),
    include_str!("../../fixtures/legacy/broken.project_status.md"),
];

const PROMPT: &str = "---\nschema_version: 2\ntitle: Plan the importer\ntoken_budget: 50000\n\
tags: [git, markdown]\nowner:\n  name: dana\n  teams: [a, b]\n---\n# Plan\nRead the spec.\n";

const COMMITS: [&str; 6] = [
    "Merge pull request #42 from acme/003-database-backed-project\n\nDatabase backed project\n\nunit: 150\nintegration: 30\n✅ constitutional compliance",
    "PR #7: Add the parser\n\n45/50 tests passing",
    "deploy: friday release\n[COMPLIANT]",
    "vendor(Epson): operational\n\nversion: 1.4.2",
    "Merge branch 'feature/120-search'",
    "deployment: hotfix\n\n- unit tests: 12\n[non-compliant]",
];

/// Characters that are more than one byte in UTF-8, or otherwise odd.
const ODD_CHARS: [char; 12] = [
    'é',
    '€',
    '🦀',
    '\u{feff}',
    '\u{200b}',
    '\u{0}',
    '\t',
    '\r',
    'İ',
    'ß',
    '\u{301}',
    '\u{10ffff}',
];

fn odd_char() -> impl Strategy<Value = char> {
    prop_oneof![select(ODD_CHARS.to_vec()), any::<char>()]
}

/// A line of arbitrary characters, multi-byte ones included.
fn any_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\n]{0,60}",
        prop::collection::vec(odd_char(), 0..12).prop_map(|v| v.into_iter().collect()),
    ]
}

/// Text made of `vocabulary`, odd characters and arbitrary lines.
fn words(vocabulary: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => select(vocabulary.to_vec()).prop_map(str::to_owned),
        2 => odd_char().prop_map(String::from),
        1 => any_line(),
    ];
    prop::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}

// ---- near-valid inputs: edits of a real document ---------------------------

#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    CutLine(usize, usize),
    ReplaceChar(usize, usize, char),
    DeleteChar(usize, usize),
    InsertText(usize, usize, String),
    InsertLine(usize, String),
}

fn edit(line: impl Strategy<Value = String> + Clone + 'static) -> impl Strategy<Value = Edit> {
    let n = any::<usize>();
    prop_oneof![
        1 => n.prop_map(Edit::DeleteLine),
        1 => n.prop_map(Edit::RepeatLine),
        1 => (n, n).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => (n, 0usize..9).prop_map(|(a, b)| Edit::Indent(a, b)),
        1 => (n, n).prop_map(|(a, b)| Edit::CutLine(a, b)),
        3 => (n, n, odd_char()).prop_map(|(a, b, c)| Edit::ReplaceChar(a, b, c)),
        2 => (n, n).prop_map(|(a, b)| Edit::DeleteChar(a, b)),
        1 => (n, n, any_line()).prop_map(|(a, b, t)| Edit::InsertText(a, b, t)),
        3 => (n, line).prop_map(|(a, t)| Edit::InsertLine(a, t)),
    ]
}

/// The byte offset of character `k` (modulo the characters, end included).
fn char_at(s: &str, k: usize) -> usize {
    let count = s.chars().count();
    let k = k % (count + 1);
    s.char_indices().nth(k).map_or(s.len(), |(i, _)| i)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let len = lines.len();
        match e {
            Edit::DeleteLine(i) => {
                lines.remove(i % len);
            }
            Edit::RepeatLine(i) => {
                let l = lines[i % len].clone();
                lines.insert(i % len, l);
            }
            Edit::SwapLines(a, b) => lines.swap(a % len, b % len),
            Edit::Indent(i, by) => lines[i % len].insert_str(0, &" ".repeat(*by)),
            Edit::CutLine(i, k) => {
                let l = &mut lines[i % len];
                let at = char_at(l, *k);
                l.truncate(at);
            }
            Edit::ReplaceChar(i, k, c) => {
                let l = &mut lines[i % len];
                let at = char_at(l, *k);
                if let Some(old) = l[at..].chars().next() {
                    l.replace_range(at..at + old.len_utf8(), &c.to_string());
                } else {
                    l.push(*c);
                }
            }
            Edit::DeleteChar(i, k) => {
                let l = &mut lines[i % len];
                let at = char_at(l, *k);
                if at < l.len() {
                    l.remove(at);
                }
            }
            Edit::InsertText(i, k, t) => {
                let l = &mut lines[i % len];
                let at = char_at(l, *k);
                l.insert_str(at, t);
            }
            Edit::InsertLine(i, t) => lines.insert(i % (len + 1), t.clone()),
        }
    }
    lines.join("\n")
}

// ---- the legacy status file ---------------------------------------------------

const LEGACY_WORDS: &[&str] = &[
    "# Project Status",
    "## Work Items",
    "## Active Work Items (3)",
    "## Operational Vendors (1/1)",
    "## Recent Deployments",
    "## Future Enhancements",
    "## Sync Conflicts",
    "### ",
    "- **",
    "* **",
    "**",
    "**: ",
    ": ",
    "(task)",
    "(project)",
    "(session)",
    "(research)",
    "(Priority: 4)",
    "(Priority: x)",
    "(",
    ")",
    "[",
    "]",
    "[pdf, csv]",
    "(45/50 tests)",
    "(a/b tests)",
    "/",
    " - PR #",
    "PR #51",
    "2025-10-05 10:00:00 UTC",
    "2026-01-31",
    " UTC",
    "Q3 2026",
    "`d4e5f6a7b8c9`",
    "unit: 12, e2e: 3",
    "✓",
    "✗",
    "\n",
    "\n",
    "\n  ",
    "  ",
    "<!-- x -->",
    "---",
];

const FIELD_KEYS: &[&str] = &[
    "Created",
    "Status",
    "Parent",
    "Branch",
    "Owner",
    "Title",
    "Commit",
    "Tests",
    "Constitutional Compliance",
    "Vendors",
    "Target",
    "Description",
    "Epson",
];

/// Date-like values: what `Created` and deployment headings parse, with
/// odd characters among the digits (a 19-byte value with a multi-byte
/// character at byte 10 once panicked).
fn date_like() -> impl Strategy<Value = String> {
    const DATE: &[&str] = &[
        "2025", "2026", "-", "-", "01", "10", "31", "1", "0", " ", " ", "T", ":", ":", "00", "08", "59", "Z", "UTC",
        "+02:00", ".5",
    ];
    let piece = prop_oneof![
        8 => select(DATE.to_vec()).prop_map(str::to_owned),
        1 => odd_char().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..14).prop_map(|v| v.concat())
}

/// One `- **Key**: value` line, or a heading, with an odd value.
fn legacy_line() -> impl Strategy<Value = String> {
    let value = prop_oneof![date_like(), any_line(), words(LEGACY_WORDS, 6)].boxed();
    prop_oneof![
        3 => (select(FIELD_KEYS.to_vec()), value.clone()).prop_map(|(k, v)| format!("- **{k}**: {v}")),
        1 => value.clone().prop_map(|v| format!("### {v}")),
        1 => date_like().prop_map(|d| format!("### {d} - PR #12")),
        1 => value.prop_map(|v| format!("## {v}")),
    ]
}

fn legacy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => words(LEGACY_WORDS, 80),
        3 => (
            select(LEGACY.to_vec()),
            prop::collection::vec(edit(legacy_line().boxed()), 0..12)
        )
            .prop_map(|(text, edits)| apply(text, &edits)),
    ]
}

/// Cases of the legacy parser alone (text in, a document out):
/// `WAYMARK_FUZZ_MARKDOWN_CASES`, else `WAYMARK_FUZZ_CASES`'s count.
fn markdown_cases() -> u32 {
    std::env::var("WAYMARK_FUZZ_MARKDOWN_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(cases)
}

/// Every byte of text a parsed document holds.
fn document_bytes(doc: &Document) -> usize {
    let notes: usize = doc
        .skipped
        .iter()
        .chain(&doc.warnings)
        .map(|n| n.text.len() + n.reason.len())
        .sum();
    let vendors: usize = doc
        .vendors
        .iter()
        .map(|v| v.name.len() + v.status.len() + v.formats.iter().map(String::len).sum::<usize>())
        .sum();
    let items: usize = doc
        .items
        .iter()
        .map(|i| {
            i.title.len()
                + i.created_raw.len()
                + i.branch.as_ref().map_or(0, String::len)
                + i.status.as_ref().map_or(0, |(_, s)| s.len())
        })
        .sum();
    let deployments: usize = doc
        .deployments
        .iter()
        .map(|d| {
            d.heading.len()
                + d.title.as_ref().map_or(0, String::len)
                + d.commit.as_ref().map_or(0, |(_, c)| c.len())
                + d.tests.keys().map(String::len).sum::<usize>()
                + d.vendors.iter().map(String::len).sum::<usize>()
        })
        .sum();
    let enhancements: usize = doc
        .enhancements
        .iter()
        .map(|e| {
            e.title.len() + e.target.as_ref().map_or(0, String::len) + e.description.as_ref().map_or(0, String::len)
        })
        .sum();
    notes + vendors + items + deployments + enhancements
}

proptest! {
    #![proptest_config(config(markdown_cases()))]

    /// The pure parser: never a panic, and its output bounded by its
    /// input: at most one entry per line, notes that point at lines of the
    /// text (a line notes itself, and a work item's parent twice at most;
    /// a tests line once per count), texts cut to 200 characters, and no
    /// more text out than a small multiple of the text in.
    #[test]
    fn legacy_markdown_parser_never_panics_and_is_bounded(text in legacy_text()) {
        let doc = parse(&text);
        let lines = text.lines().count();
        let commas = text.matches(',').count();
        prop_assert!(doc.entries() <= lines, "{} entries from {lines} lines", doc.entries());
        let notes = doc.skipped.len() + doc.warnings.len();
        prop_assert!(notes <= 2 * lines + commas, "{notes} notes from {lines} lines");
        for n in doc.skipped.iter().chain(&doc.warnings) {
            prop_assert!((1..=lines).contains(&n.line), "{n:?} of {lines} lines");
            prop_assert!(n.text.chars().count() <= 200, "{n:?}");
        }
        for i in &doc.items {
            prop_assert!(i.parent.is_none_or(|p| p < doc.items.len()));
        }
        let bytes = document_bytes(&doc);
        prop_assert!(bytes <= 8 * text.len() + 400 * (notes + 1), "{bytes} bytes out of {} in", text.len());
        // The report of a dry run is the document's notes.
        let (entries, report) = parse_report(&text);
        prop_assert_eq!(entries, doc.entries());
        prop_assert_eq!((report.skipped.len(), report.warnings.len()), (doc.skipped.len(), doc.warnings.len()));
    }
}

proptest! {
    #![proptest_config(config(import_cases()))]

    /// The whole import, into one store: the parser's output through the
    /// domain's checks and the write path. Never a panic, and never an
    /// error for a bad entry (one bad entry never aborts an import).
    #[test]
    fn legacy_markdown_import_never_panics(text in legacy_text()) {
        let tracker = shared_tracker();
        let imported = tracker.import_markdown_text("fuzz", &text, "fuzz.md");
        prop_assert!(imported.is_ok(), "{imported:?}");
    }
}

/// One store for the whole-import properties of this process.
fn shared_tracker() -> &'static Tracker {
    static STORE: std::sync::OnceLock<(tempfile::TempDir, Tracker)> = std::sync::OnceLock::new();
    &STORE.get_or_init(crate::tracker).1
}

// ---- session prompt files -------------------------------------------------

const YAML_WORDS: &[&str] = &[
    "schema_version: 1",
    "schema_version: ",
    "schema_version: ~",
    "title: ",
    "name: ",
    "session: ",
    "token_budget: 5000",
    "prompts_count: -1",
    "tags: [a, b]",
    "\n",
    "\n",
    "\n  ",
    "- ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "!custom ",
    "? ",
    "| ",
    "> ",
    "# ",
    "---",
    "...",
    "\t",
    "null",
    "1e400",
    "0x1F",
    "-.inf",
    "9223372036854775808",
];

fn prompt_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => (words(YAML_WORDS, 60), any_line()).prop_map(|(y, body)| format!("---\n{y}\n---\n{body}")),
        1 => (words(YAML_WORDS, 60), any_line()).prop_map(|(y, body)| format!("\u{feff}---\r\n{y}\r\n...\r\n{body}")),
        3 => prop::collection::vec(edit(words(YAML_WORDS, 8).boxed()), 0..10).prop_map(|edits| apply(PROMPT, &edits)),
    ]
}

proptest! {
    #![proptest_config(config(cases()))]

    #[test]
    fn session_front_matter_parser_never_panics(text in prompt_text()) {
        if let Ok((front, _)) = parse_prompt(&text) {
            prop_assert!(front.contains_key("schema_version"));
        }
    }
}

proptest! {
    #![proptest_config(config(import_cases()))]

    /// Whole imports of a directory of such files (titles, bodies and
    /// metadata through the domain's checks).
    #[test]
    fn session_import_never_panics(files in prop::collection::vec(prompt_text(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in files.iter().enumerate() {
            std::fs::write(dir.path().join(format!("prompt-{i}.md")), text).unwrap();
        }
        let imported = shared_tracker().import_sessions("fuzz", dir.path());
        prop_assert!(imported.is_ok(), "{imported:?}");
    }
}

// ---- git commit messages and branch names ----------------------------------

const SUBJECT_STARTS: &[&str] = &[
    "Merge pull request #",
    "merge PULL request #",
    "PR #",
    "pr #",
    "deploy:",
    "Deployment:",
    "vendor(",
    "VENDOR(",
    "Merge branch '",
    "",
];

const COMMIT_WORDS: &[&str] = &[
    "42",
    "1234567890",
    "0",
    " from ",
    "acme/",
    "003-database-backed-project",
    "feature/120-search",
    "'",
    ")",
    "):",
    ": ",
    "operational",
    "broken",
    "\n",
    "\n\n",
    "unit: 150",
    "- integration tests: 30",
    "45/50 tests passing",
    "50/45 tests passing",
    "/",
    "version: 1.4.2",
    "version: v2.0.",
    "✅",
    "❌",
    "constitutional compliance: no",
    "Constitutional Compliance",
    "[COMPLIANT]",
    "[non-compliant]",
    " ",
    "-",
];

fn commit_message() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => (select(SUBJECT_STARTS.to_vec()), words(COMMIT_WORDS, 40)).prop_map(|(s, rest)| format!("{s}{rest}")),
        3 => (select(COMMITS.to_vec()), prop::collection::vec(edit(words(COMMIT_WORDS, 6).boxed()), 0..8))
            .prop_map(|(text, edits)| apply(text, &edits)),
    ]
}

const BRANCH_WORDS: &[&str] = &[
    "feature/",
    "bugfix/",
    "hotfix/",
    "/",
    "003",
    "120",
    "99",
    "1234567890",
    "-",
    "_",
    "search",
    "crash-on-start",
    "--",
    "main",
];

fn branch_name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), words(BRANCH_WORDS, 10), any_line()]
}

proptest! {
    #![proptest_config(config(cases()))]

    #[test]
    fn git_commit_message_parser_never_panics(message in commit_message()) {
        let parsed = parse_commit_message(&message);
        if let Some(d) = &parsed.deployment {
            prop_assert!(d.pr_title.as_ref().is_none_or(|t| t.chars().count() <= 200));
            if let Some(b) = &d.branch {
                let _ = parse_branch(b);
            }
        }
        if let Some(b) = &parsed.merged_branch {
            let _ = parse_branch(b);
        }
    }

    #[test]
    fn git_branch_name_parser_never_panics(branch in branch_name()) {
        if let Some(item) = parse_branch(&branch) {
            prop_assert!(!item.title.is_empty());
            prop_assert!(item.item_type == "project" || item.item_type == "task");
        }
    }
}
