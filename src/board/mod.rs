//! The board: a read-only web page of this store for people supervising
//! agents (`serve --http` at `/`, `waymark board`).
//!
//! Server-rendered HTML (minijinja templates, assets embedded with
//! `include_str!`, no build step, nothing fetched from the network), a
//! little script that keeps the page live: it listens to `/events`
//! (server-sent events off the change feed that `wait_for_changes` reads)
//! and, on a change, fetches the page's `<main>` again and swaps it in.
//!
//! Pages: `/` the work (ready / in progress / blocked / done columns, with
//! charts of completions per day and open items over time, inline SVG),
//! `/tree` (projects, sessions and tasks with their dependencies),
//! `/health` (vendors with test pass bars, sync health, open conflicts),
//! `/plan` (deployment timeline, enhancements by quarter). It reads
//! through [`crate::ops`] only ([`Tracker::board_data`]); `http.rs` serves
//! it.

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::{Environment, Value as J, context};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::{BoardData, BoardItem, BoardParts, BoardStamp, Tracker};
use crate::time::Timestamp;

/// The most cards a column shows (the rest are counted, and the tree
/// shows them): a first screen's worth and some, so that the page a
/// browser paints first stays the same size whatever the store holds.
const COLUMN_CARDS: usize = 20;
/// Completed items the done column shows, newest first.
const DONE_CARDS: usize = 12;
/// Days the charts cover, today included.
const CHART_DAYS: i64 = 30;
/// The most items the tree page shows: past them a subtree is cut to a
/// link to its own page (`/tree?root=ID`) and the remaining top-level
/// items to a next page (`/tree?from=N`), so the page stays the same size
/// whatever the store holds.
pub const TREE_NODES: usize = 300;

pub(crate) const CSS: &str = include_str!("board.css");
pub(crate) const JS: &str = include_str!("board.js");

/// A page of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Page {
    Work,
    Tree,
    Health,
    Plan,
}

impl Page {
    pub const ALL: [Page; 4] = [Page::Work, Page::Tree, Page::Health, Page::Plan];

    /// The page at `path`, if any.
    pub fn at(path: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|p| p.path() == path)
    }

    pub fn path(self) -> &'static str {
        match self {
            Page::Work => "/",
            Page::Tree => "/tree",
            Page::Health => "/health",
            Page::Plan => "/plan",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Page::Work => "Work",
            Page::Tree => "Tree",
            Page::Health => "Health",
            Page::Plan => "Plan",
        }
    }

    /// What the page reads: only what it shows (the work page, seen first,
    /// reads no vendors, deployments or conflicts; the plan no work items).
    fn parts(self) -> BoardParts {
        match self {
            Page::Work | Page::Tree => BoardParts {
                items: true,
                ..BoardParts::default()
            },
            // Items for the titles of conflicting work items.
            Page::Health => BoardParts {
                items: true,
                vendors: true,
                conflicts: true,
                ..BoardParts::default()
            },
            Page::Plan => BoardParts {
                plan: true,
                ..BoardParts::default()
            },
        }
    }

    fn template(self) -> &'static str {
        match self {
            Page::Work => "work.html",
            Page::Tree => "tree.html",
            Page::Health => "health.html",
            Page::Plan => "plan.html",
        }
    }
}

/// Which part of a page to show, from its address: the tree of one item
/// (`?root=ID`) or from the `from`-th top-level item (`?from=N`). Only the
/// tree page takes either; the default is the whole page, and only it is
/// cached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct At {
    pub root: Option<String>,
    pub from: usize,
}

impl At {
    fn is_default(&self) -> bool {
        *self == At::default()
    }
}

/// The board of one tracker.
pub struct Board {
    tracker: Tracker,
    env: Environment<'static>,
    /// The last render of each page (whole, or `<main>` only), with the
    /// stamp of the store it shows and its day (the charts end today).
    /// A page of an unchanged store is not read again: reloads, every
    /// open board's refresh after one change, and a second browser cost a
    /// few point reads.
    cache: Mutex<HashMap<(Page, bool), Rendered>>,
}

struct Rendered {
    stamp: BoardStamp,
    day: i64,
    html: Arc<str>,
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("work.html", include_str!("templates/work.html")),
        ("tree.html", include_str!("templates/tree.html")),
        ("health.html", include_str!("templates/health.html")),
        ("plan.html", include_str!("templates/plan.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("the board's template {name} does not parse: {e}"));
    }
    env
}

fn today() -> i64 {
    Timestamp::now().0.div_euclid(charts::DAY_MICROS)
}

impl Board {
    pub fn new(tracker: Tracker) -> Board {
        Board {
            tracker,
            env: templates(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The whole page, or (`main_only`) the contents of its `<main>`, which
    /// the page's script swaps in on a change: the last render while the
    /// store's stamp and the day are those it showed, else a fresh one.
    pub fn render(&self, page: Page, main_only: bool) -> Result<Arc<str>> {
        self.render_at(page, &At::default(), main_only)
    }

    /// [`Board::render`] of a part of a page ([`At`]); a part other than
    /// the whole is rendered afresh each time. `Err(NotFound)` for a root
    /// that is no live work item here.
    pub fn render_at(&self, page: Page, at: &At, main_only: bool) -> Result<Arc<str>> {
        if !at.is_default() {
            let data = self.tracker.board_data(page.parts())?;
            return Ok(self.render_data(&data, page, at, main_only)?.into());
        }
        let stamp = self.tracker.board_stamp()?;
        let day = today();
        if let Some(r) = self.cache().get(&(page, main_only))
            && r.stamp == stamp
            && r.day == day
        {
            return Ok(r.html.clone());
        }
        self.render_fresh(page, main_only)
    }

    /// [`Board::render`] read afresh from the store (and kept for the next).
    pub fn render_fresh(&self, page: Page, main_only: bool) -> Result<Arc<str>> {
        let day = today();
        let data = self.tracker.board_data(page.parts())?;
        let html: Arc<str> = self.render_data(&data, page, &At::default(), main_only)?.into();
        self.cache().insert(
            (page, main_only),
            Rendered {
                stamp: data.stamp(),
                day,
                html: html.clone(),
            },
        );
        Ok(html)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(Page, bool), Rendered>> {
        // A render that panicked left nothing half-written: the map holds
        // whole entries only.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn render_data(&self, data: &BoardData, page: Page, at: &At, main_only: bool) -> Result<String> {
        let view = View::new(data);
        let nav: Vec<J> = Page::ALL
            .iter()
            .map(|p| context! { path => p.path(), label => p.label(), current => *p == page })
            .collect();
        let ctx = match page {
            Page::Work => context! { work => view.work() },
            Page::Tree => context! { tree => view.tree(at)? },
            Page::Health => context! { health => view.health() },
            Page::Plan => context! { plan => view.plan() },
        };
        let ctx = context! {
            nav,
            page => page.label(),
            cursor => data.cursor,
            sync => view.sync_badge(),
            ..ctx
        };
        let name = if main_only { page.template() } else { "base.html" };
        let ctx = context! { main_template => page.template(), ..ctx };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(render_error)
    }
}

/// A template value of anything serializable.
fn serde<T: Serialize>(value: &T) -> J {
    J::from(minijinja::value::Serde(value))
}

fn render_error(e: minijinja::Error) -> Error {
    Error::Corrupt(format!("the board could not be rendered: {e:#}"))
}

/// A short, stable anchor for an item (the end of its id: UUID v7 ids
/// share their first digits with items made the same minute).
fn anchor(id: &str) -> String {
    let tail: String = id.chars().filter(|c| *c != '-').collect();
    format!("i{}", &tail[tail.len().saturating_sub(12)..])
}

#[derive(Serialize)]
struct Card<'a> {
    title: &'a str,
    kind: &'a str,
    priority: i64,
    anchor: String,
    /// The parent's title, for context.
    under: Option<&'a str>,
    /// A short note: who updated it, what it waits for.
    note: Option<String>,
}

#[derive(Serialize)]
struct Column<'a> {
    key: &'static str,
    title: &'static str,
    count: usize,
    /// The cards shown, by holder: one group without a holder in every
    /// column but "in progress", which has one per holder (by name, then
    /// the items nobody holds).
    groups: Vec<Group<'a>>,
    more: usize,
}

#[derive(Serialize)]
struct Group<'a> {
    holder: Option<&'a str>,
    /// Items of this holder in the column (some may not be shown).
    count: usize,
    cards: Vec<Card<'a>>,
}

#[derive(Serialize)]
struct Node<'a> {
    title: &'a str,
    kind: &'a str,
    status: &'a str,
    priority: i64,
    anchor: String,
    waits: Vec<Link<'a>>,
    children: Vec<Node<'a>>,
    open: bool,
    /// Items below this one the page does not show (a finished subtree,
    /// or past the bound), and the page that shows them.
    hidden: usize,
    more: Option<String>,
}

#[derive(Serialize)]
struct Link<'a> {
    title: &'a str,
    #[serde(skip)]
    id: &'a str,
    href: String,
    done: bool,
}

/// The tree page's walk: how many more items it may show, and which it
/// showed.
struct Walk<'a, 's> {
    budget: usize,
    shown: std::collections::HashSet<&'a str>,
    sizes: &'s HashMap<&'a str, usize>,
}

/// The data, indexed for the pages.
struct View<'a> {
    data: &'a BoardData,
    by_id: HashMap<&'a str, &'a BoardItem>,
    /// Live items only (not archived).
    live: Vec<&'a BoardItem>,
    children: HashMap<&'a str, Vec<&'a BoardItem>>,
    waits_for: HashMap<&'a str, Vec<&'a str>>,
    /// Items with a completed child (work under them started).
    started: std::collections::HashSet<&'a str>,
}

fn is_open(i: &BoardItem) -> bool {
    i.status != "completed"
}

impl<'a> View<'a> {
    fn new(data: &'a BoardData) -> View<'a> {
        let by_id: HashMap<&str, &BoardItem> = data.items.iter().map(|i| (i.id.as_str(), i)).collect();
        let live: Vec<&BoardItem> = data.items.iter().filter(|i| !i.archived).collect();
        let mut children: HashMap<&str, Vec<&BoardItem>> = HashMap::new();
        for i in &live {
            if let Some(p) = i.parent_id.as_deref() {
                children.entry(p).or_default().push(i);
            }
        }
        // Work under an item started when something below it is done or
        // on a branch: deepest first, so it climbs the whole tree.
        let mut started = std::collections::HashSet::new();
        let mut deepest_first = live.clone();
        deepest_first.sort_by_key(|i| std::cmp::Reverse(i.depth));
        for i in deepest_first {
            let begun = !is_open(i) || i.branch_name.is_some() || started.contains(i.id.as_str());
            if begun && let Some(p) = i.parent_id.as_deref() {
                started.insert(p);
            }
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| {
                (!is_open(a), a.priority, &a.created_at).cmp(&(!is_open(b), b.priority, &b.created_at))
            });
        }
        let mut waits_for: HashMap<&str, Vec<&str>> = HashMap::new();
        for (waiter, awaited) in &data.waits {
            waits_for.entry(waiter.as_str()).or_default().push(awaited.as_str());
        }
        View {
            data,
            by_id,
            live,
            children,
            waits_for,
            started,
        }
    }

    fn title_of(&self, id: &str) -> Option<&'a str> {
        self.by_id.get(id).map(|i| i.title.as_str())
    }

    fn card(&self, i: &'a BoardItem, note: Option<String>) -> Card<'a> {
        Card {
            title: &i.title,
            kind: &i.item_type,
            priority: i.priority,
            anchor: anchor(&i.id),
            under: i.parent_id.as_deref().and_then(|p| self.title_of(p)),
            note,
        }
    }

    /// Which column a live item goes in.
    fn column_of(&self, i: &BoardItem) -> &'static str {
        if !is_open(i) {
            "done"
        } else if i.status == "blocked" || i.open_blockers > 0 {
            "blocked"
        } else if i.holder.is_some() || i.branch_name.is_some() || self.started.contains(i.id.as_str()) {
            // An agent's live claim, a branch, or work started under it.
            "progress"
        } else {
            "ready"
        }
    }

    fn sync_badge(&self) -> J {
        let h = &self.data.health;
        let (state, text) = if !h.hub_configured {
            ("local", "local only".to_owned())
        } else if h.last_error.is_some() || h.hub_reachable == Some(false) {
            ("error", "hub unreachable".to_owned())
        } else if h.pending_changes > 0 {
            ("pending", format!("{} changes to push", h.pending_changes))
        } else {
            ("ok", "in sync".to_owned())
        };
        context! { state, text, conflicts => h.open_conflicts }
    }

    fn work(&self) -> J {
        let mut ready: Vec<&BoardItem> = Vec::new();
        let mut progress = Vec::new();
        let mut blocked = Vec::new();
        let mut done = Vec::new();
        for i in &self.live {
            match self.column_of(i) {
                "done" => done.push(*i),
                "blocked" => blocked.push(*i),
                "progress" => progress.push(*i),
                _ => ready.push(*i),
            }
        }
        let by_priority =
            |a: &&BoardItem, b: &&BoardItem| (a.priority, &a.created_at).cmp(&(b.priority, &b.created_at));
        ready.sort_by(by_priority);
        progress.sort_by(by_priority);
        blocked.sort_by(by_priority);
        done.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        let column = |key,
                      title,
                      items: Vec<&'a BoardItem>,
                      cap: usize,
                      by_holder: bool,
                      note: &dyn Fn(&BoardItem) -> Option<String>| {
            let count = items.len();
            let mut groups: Vec<(Option<&'a str>, Vec<&'a BoardItem>)> = Vec::new();
            if by_holder {
                let mut held: BTreeMap<Option<&'a str>, Vec<&'a BoardItem>> = BTreeMap::new();
                for i in items {
                    held.entry(i.holder.as_deref()).or_default().push(i);
                }
                // Holders by name, then the items nobody holds.
                let nobody = held.remove(&None);
                groups.extend(held);
                groups.extend(nobody.map(|list| (None, list)));
            } else {
                groups.push((None, items));
            }
            let mut left = cap;
            let groups = groups
                .into_iter()
                .map(|(holder, list)| {
                    let shown = list.len().min(left);
                    left -= shown;
                    Group {
                        holder,
                        count: list.len(),
                        cards: list.into_iter().take(shown).map(|i| self.card(i, note(i))).collect(),
                    }
                })
                .filter(|g| !g.cards.is_empty())
                .collect();
            Column {
                key,
                title,
                count,
                more: count.saturating_sub(cap),
                groups,
            }
        };
        let waits_note = |i: &BoardItem| -> Option<String> {
            let open: Vec<&str> = self
                .waits_for
                .get(i.id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|w| self.by_id.get(w))
                .filter(|w| is_open(w))
                .map(|w| w.title.as_str())
                .collect();
            match open.as_slice() {
                [] if i.status == "blocked" => Some("marked blocked".to_owned()),
                [] => None,
                [one] => Some(format!("waits for {one}")),
                [one, rest @ ..] => Some(format!("waits for {one} and {} more", rest.len())),
            }
        };
        let by_note = |i: &BoardItem| Some(format!("by {}", i.updated_by));
        let when_note = |i: &BoardItem| {
            Some(format!(
                "{} by {}",
                &i.updated_at[..10.min(i.updated_at.len())],
                i.updated_by
            ))
        };
        let columns = vec![
            column("ready", "Ready", ready, COLUMN_CARDS, false, &|_| None),
            column("progress", "In progress", progress, COLUMN_CARDS, true, &by_note),
            column("blocked", "Blocked", blocked, COLUMN_CARDS, false, &waits_note),
            column("done", "Done", done, DONE_CARDS, false, &when_note),
        ];
        let (per_day, open_over_time) = charts::series(&self.data.items, Timestamp::now(), CHART_DAYS);
        context! {
            columns => serde(&columns),
            completed_chart => J::from_safe_string(charts::bars(&per_day, "Items completed per day")),
            open_chart => J::from_safe_string(charts::line(&open_over_time, "Open items at the end of each day")),
            completed_total => per_day.iter().map(|d| d.1).sum::<i64>(),
            open_now => open_over_time.last().map(|d| d.1).unwrap_or(0),
            days => CHART_DAYS,
        }
    }

    /// The tree page: every live item under its parent, open work first,
    /// at most [`TREE_NODES`] of them. A finished item's subtree is folded
    /// into a count; a subtree cut by the bound links to its own page.
    fn tree(&self, at: &At) -> Result<J> {
        let focus = match at.root.as_deref() {
            None => None,
            Some(id) => Some(
                self.by_id
                    .get(id)
                    .copied()
                    .filter(|i| !i.archived)
                    .ok_or_else(|| Error::NotFound {
                        kind: crate::error::Kind::WorkItem,
                        id: id.to_owned(),
                    })?,
            ),
        };
        let roots: Vec<&BoardItem> = match focus {
            Some(f) => vec![f],
            None => {
                let mut roots: Vec<&BoardItem> = self
                    .live
                    .iter()
                    .copied()
                    .filter(|i| {
                        i.parent_id
                            .as_deref()
                            .is_none_or(|p| self.by_id.get(p).is_none_or(|p| p.archived))
                    })
                    .collect();
                roots.sort_by(|a, b| {
                    (!is_open(a), a.priority, &a.created_at).cmp(&(!is_open(b), b.priority, &b.created_at))
                });
                roots
            }
        };
        let sizes = self.subtree_sizes();
        let mut walk = Walk {
            budget: TREE_NODES,
            shown: std::collections::HashSet::new(),
            sizes: &sizes,
        };
        let mut nodes = Vec::new();
        let mut next = None;
        for (k, r) in roots.iter().enumerate().skip(at.from) {
            if walk.budget == 0 {
                next = Some(k);
                break;
            }
            nodes.push(self.node(r, 0, focus.is_some(), &mut walk));
        }
        // A dependency links within the page when its item is shown, else
        // to the item's own tree.
        fn link_up(n: &mut Node<'_>, shown: &std::collections::HashSet<&str>) {
            for w in &mut n.waits {
                if !shown.contains(w.id) {
                    w.href = format!("/tree?root={}", w.id);
                }
            }
            for c in &mut n.children {
                link_up(c, shown);
            }
        }
        for n in &mut nodes {
            link_up(n, &walk.shown);
        }
        let trail: Vec<J> = focus
            .map(|f| {
                let mut up = Vec::new();
                let mut at = f.parent_id.as_deref().and_then(|p| self.by_id.get(p));
                while let Some(p) = at.filter(|p| !p.archived && up.len() < 16) {
                    up.push(context! { title => &p.title, href => format!("/tree?root={}", p.id) });
                    at = p.parent_id.as_deref().and_then(|q| self.by_id.get(q));
                }
                up.reverse();
                up
            })
            .unwrap_or_default();
        Ok(context! {
            roots => serde(&nodes),
            items => self.live.len(),
            edges => self.data.waits.len(),
            shown => walk.shown.len(),
            focus => focus.map(|f| &f.title),
            trail,
            from => at.from,
            next => next.map(|k| format!("/tree?from={k}")),
            rest => next.map(|k| roots[k..].iter().map(|r| sizes.get(r.id.as_str()).copied().unwrap_or(1)).sum::<usize>()),
        })
    }

    /// Each live item's subtree size (itself included).
    fn subtree_sizes(&self) -> HashMap<&'a str, usize> {
        let mut sizes: HashMap<&str, usize> = HashMap::with_capacity(self.live.len());
        let mut deepest_first = self.live.clone();
        deepest_first.sort_by_key(|i| std::cmp::Reverse(i.depth));
        for i in deepest_first {
            let size = 1 + sizes.get(i.id.as_str()).copied().unwrap_or(0);
            sizes.insert(i.id.as_str(), size);
            if let Some(p) = i.parent_id.as_deref() {
                *sizes.entry(p).or_insert(0) += size;
            }
        }
        sizes
    }

    fn node(&self, i: &'a BoardItem, depth: usize, unfold: bool, walk: &mut Walk<'a, '_>) -> Node<'a> {
        walk.budget = walk.budget.saturating_sub(1);
        walk.shown.insert(i.id.as_str());
        let kids: &[&BoardItem] = self.children.get(i.id.as_str()).map_or(&[], Vec::as_slice);
        // A finished item folds its subtree (unless it is the page's root).
        let expand = (unfold || is_open(i)) && depth <= 8;
        let mut children = Vec::new();
        let mut hidden = 0;
        for c in kids {
            if expand && walk.budget > 0 {
                children.push(self.node(c, depth + 1, false, walk));
            } else {
                hidden += walk.sizes.get(c.id.as_str()).copied().unwrap_or(1);
            }
        }
        let waits = self
            .waits_for
            .get(i.id.as_str())
            .into_iter()
            .flatten()
            .filter_map(|w| self.by_id.get(w))
            .map(|w| Link {
                title: &w.title,
                id: &w.id,
                href: format!("#{}", anchor(&w.id)),
                done: !is_open(w),
            })
            .collect();
        Node {
            title: &i.title,
            kind: &i.item_type,
            status: &i.status,
            priority: i.priority,
            anchor: anchor(&i.id),
            waits,
            open: is_open(i) && !children.is_empty(),
            children,
            hidden,
            more: (hidden > 0).then(|| format!("/tree?root={}", i.id)),
        }
    }

    fn health(&self) -> J {
        let vendors: Vec<J> = self
            .data
            .vendors
            .iter()
            .map(|v| {
                let bar = match (v.passing, v.total) {
                    (Some(p), Some(t)) if t > 0 => Some(charts::pass_bar(p, t)),
                    _ => None,
                };
                context! {
                    name => &v.name,
                    status => &v.status,
                    extractor_version => &v.extractor_version,
                    passing => v.passing,
                    total => v.total,
                    bar => bar.map(J::from_safe_string),
                    updated => &v.updated_at[..10.min(v.updated_at.len())],
                }
            })
            .collect();
        let conflicts: Vec<J> = self
            .data
            .conflicts
            .iter()
            .take(100)
            .map(|c| {
                let record = if c.collection == "work_items" {
                    self.title_of(&c.record_id).unwrap_or(&c.record_id)
                } else {
                    &c.record_id
                };
                context! {
                    kind => &c.kind,
                    collection => &c.collection,
                    record,
                    field => &c.field,
                    values => c.values.len(),
                }
            })
            .collect();
        let broken = self.data.vendors.iter().filter(|v| v.status != "operational").count();
        context! {
            vendors,
            broken,
            health => serde(&self.data.health),
            conflicts,
            conflicts_total => self.data.conflicts.len(),
        }
    }

    fn plan(&self) -> J {
        let mut days: Vec<(String, Vec<J>)> = Vec::new();
        for d in &self.data.deployments {
            let day = d.deployed_at.get(..10).unwrap_or(&d.deployed_at).to_owned();
            let entry = context! {
                time => d.deployed_at.get(11..16).unwrap_or(""),
                commit => d.commit_hash.get(..10).unwrap_or(&d.commit_hash),
                pr_number => d.pr_number,
                pr_title => &d.pr_title,
            };
            match days.last_mut() {
                Some((last, list)) if *last == day => list.push(entry),
                _ => days.push((day, vec![entry])),
            }
        }
        let timeline: Vec<J> = days.into_iter().map(|(day, list)| context! { day, list }).collect();
        let mut quarters: BTreeMap<String, Vec<J>> = BTreeMap::new();
        for e in &self.data.enhancements {
            let q = e.target_quarter.clone().unwrap_or_else(|| "Unscheduled".to_owned());
            quarters
                .entry(q)
                .or_default()
                .push(context! { title => &e.title, status => &e.status, priority => e.priority });
        }
        let quarters: Vec<J> = quarters
            .into_iter()
            .map(|(quarter, list)| context! { quarter, list })
            .collect();
        context! { timeline, quarters }
    }
}

mod charts {
    //! Inline SVG charts: small, with a text alternative, no script.

    use std::fmt::Write;

    use crate::ops::BoardItem;
    use crate::time::Timestamp;

    pub(crate) const DAY_MICROS: i64 = 86_400_000_000;
    const W: f64 = 300.0;
    const H: f64 = 80.0;

    fn day_of(text: &str) -> Option<i64> {
        Timestamp::parse(text).map(|t| t.0.div_euclid(DAY_MICROS))
    }

    fn label(day: i64) -> String {
        Timestamp(day * DAY_MICROS).to_string()[5..10].to_owned()
    }

    /// A count per day, labelled `MM-DD`, oldest first.
    pub(crate) type Series = Vec<(String, i64)>;

    /// For each of the last `days` days (oldest first): items completed
    /// that day, and items open at its end. An item's completion time is
    /// its last update while completed.
    pub(crate) fn series(items: &[BoardItem], now: Timestamp, days: i64) -> (Series, Series) {
        let today = now.0.div_euclid(DAY_MICROS);
        let first = today - days + 1;
        let mut completed = vec![0i64; days as usize];
        // Open at the end of day d: created by then, not completed by then;
        // each item adds 1 over the days it was open (a difference array).
        let mut delta = vec![0i64; days as usize + 1];
        for i in items {
            let Some(created) = day_of(&i.created_at) else { continue };
            let done = if i.status == "completed" {
                day_of(&i.updated_at)
            } else {
                None
            };
            if let Some(d) = done
                && (first..=today).contains(&d)
            {
                completed[(d - first) as usize] += 1;
            }
            let a = created.max(first);
            let b = done.map_or(today, |d| (d - 1).min(today));
            if a <= b {
                delta[(a - first) as usize] += 1;
                delta[(b + 1 - first) as usize] -= 1;
            }
        }
        let mut open = Vec::with_capacity(days as usize);
        let mut running = 0;
        for (k, d) in delta.iter().take(days as usize).enumerate() {
            running += d;
            open.push((label(first + k as i64), running));
        }
        let per_day = completed
            .iter()
            .enumerate()
            .map(|(k, n)| (label(first + k as i64), *n))
            .collect();
        (per_day, open)
    }

    fn frame(title: &str, summary: &str, body: &str) -> String {
        format!(
            "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{title}: {summary}\"><title>{title}</title>{body}</svg>",
            H + 14.0
        )
    }

    /// A bar per day.
    pub(crate) fn bars(series: &[(String, i64)], title: &str) -> String {
        let max = series.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
        let w = W / series.len().max(1) as f64;
        let mut body = String::new();
        for (k, (day, n)) in series.iter().enumerate() {
            let h = (*n as f64 / max * H).round();
            let _ = write!(
                body,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{day}: {n}</title></rect>",
                k as f64 * w + 1.0,
                H - h,
                (w - 2.0).max(1.0)
            );
        }
        axis(&mut body, series, max as i64);
        let total: i64 = series.iter().map(|s| s.1).sum();
        frame(title, &format!("{total} in {} days", series.len()), &body)
    }

    /// A line over the days.
    pub fn line(series: &[(String, i64)], title: &str) -> String {
        let max = series.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
        let step = W / (series.len().max(2) - 1) as f64;
        let mut points = String::new();
        for (k, (_, n)) in series.iter().enumerate() {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                k as f64 * step,
                H - *n as f64 / max * (H - 2.0) - 1.0
            );
        }
        let mut body = format!("<polyline points=\"{}\"/>", points.trim_end());
        axis(&mut body, series, max as i64);
        let now = series.last().map(|s| s.1).unwrap_or(0);
        frame(
            title,
            &format!("{now} open now, at most {max} in {} days", series.len()),
            &body,
        )
    }

    fn axis(body: &mut String, series: &[(String, i64)], max: i64) {
        if let (Some(first), Some(last)) = (series.first(), series.last()) {
            let _ = write!(
                body,
                "<text x=\"0\" y=\"{y}\">{}</text><text x=\"{W}\" y=\"{y}\" text-anchor=\"end\">{}</text><text x=\"{W}\" y=\"10\" text-anchor=\"end\">{max}</text>",
                first.0,
                last.0,
                y = H + 12.0
            );
        }
    }

    /// A test pass bar: the passing share in one colour, the rest in another.
    pub(crate) fn pass_bar(passing: i64, total: i64) -> String {
        let share = (passing.clamp(0, total) as f64 / total as f64 * 100.0).round();
        format!(
            "<svg class=\"pass\" viewBox=\"0 0 100 8\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{passing} of {total} tests pass\"><rect class=\"fail\" width=\"100\" height=\"8\"/><rect class=\"ok\" width=\"{share}\" height=\"8\"/></svg>"
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn item(created: &str, status: &str, updated: &str) -> BoardItem {
            BoardItem {
                id: "x".into(),
                title: "t".into(),
                item_type: "task".into(),
                status: status.into(),
                priority: 2,
                parent_id: None,
                depth: 0,
                open_blockers: 0,
                branch_name: None,
                created_at: created.into(),
                updated_at: updated.into(),
                updated_by: "a".into(),
                archived: false,
                holder: None,
            }
        }

        #[test]
        fn completions_and_open_items_count_per_day() {
            let now = Timestamp::parse("2026-12-10T12:00:00Z").unwrap();
            let items = [
                // Open since before the window.
                item("2026-10-01T00:00:00Z", "active", "2026-10-01T00:00:00Z"),
                // Created before, completed on day 12-09.
                item("2026-10-01T00:00:00Z", "completed", "2026-12-09T10:00:00Z"),
                // Created 12-08, completed 12-10.
                item("2026-12-08T01:00:00Z", "completed", "2026-12-10T10:00:00Z"),
                // Created and completed 12-05: never open at a day's end.
                item("2026-12-05T01:00:00Z", "completed", "2026-12-05T03:00:00Z"),
                // Created 12-10, open.
                item("2026-12-10T01:00:00Z", "active", "2026-12-10T01:00:00Z"),
            ];
            let (done, open) = series(&items, now, 5);
            let days: Vec<&str> = done.iter().map(|d| d.0.as_str()).collect();
            assert_eq!(days, ["12-06", "12-07", "12-08", "12-09", "12-10"]);
            assert_eq!(done.iter().map(|d| d.1).collect::<Vec<_>>(), [0, 0, 0, 1, 1]);
            assert_eq!(open.iter().map(|d| d.1).collect::<Vec<_>>(), [2, 2, 3, 2, 2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{NewWorkItem, WorkItemUpdate};

    fn task(tracker: &Tracker, title: &str) -> crate::ops::WorkItem {
        tracker
            .create_work_item(
                "a",
                NewWorkItem {
                    item_type: "task".into(),
                    title: title.into(),
                    ..Default::default()
                },
            )
            .unwrap()
    }

    /// A page of an unchanged store is the last render, itself; any change
    /// to the store (here by another tracker on the same store, as another
    /// process would) renders afresh.
    #[test]
    fn an_unchanged_store_is_not_rendered_again() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board::new(Tracker::open(dir.path()).unwrap());
        let other = Tracker::open(dir.path()).unwrap();
        let first = task(&other, "First");
        let a = board.render(Page::Work, false).unwrap();
        let b = board.render(Page::Work, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same render");
        let part = board.render(Page::Work, true).unwrap();
        assert!(!part.contains("<html") && part.contains("First"), "{part}");
        assert!(a.contains("<html"), "each page and part has its own render");

        task(&other, "Second");
        let c = board.render(Page::Work, false).unwrap();
        assert!(!Arc::ptr_eq(&a, &c) && c.contains("Second"), "{c}");
        let part = board.render(Page::Work, true).unwrap();
        assert!(part.contains("Second"), "{part}");
        other
            .update_work_item(
                "a",
                WorkItemUpdate {
                    id: first.id,
                    version: first.version,
                    status: Some("completed".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let d = board.render(Page::Tree, false).unwrap();
        assert!(d.contains("completed"), "{d}");
        let e = board.render(Page::Work, false).unwrap();
        assert!(!Arc::ptr_eq(&c, &e), "an update moves the feed too");
    }

    /// An item an agent claims is in progress under the agent's name, and
    /// released it is ready again (the claim moves the change feed, so the
    /// render is fresh).
    #[test]
    fn a_claimed_item_is_in_progress_by_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board::new(Tracker::open(dir.path()).unwrap());
        let other = Tracker::open(dir.path()).unwrap();
        let t = task(&other, "Claimed work");
        let claim = |release: bool| {
            other
                .claim_work_item(
                    "agent-x",
                    crate::ops::ClaimRequest {
                        id: Some(t.id.clone()),
                        release,
                        ..Default::default()
                    },
                )
                .unwrap()
        };
        claim(false);
        let html = board.render(Page::Work, true).unwrap();
        assert!(html.contains("<h3 class=\"holder\">agent-x"), "{html}");
        assert!(
            board.tracker.board_stamp().unwrap().lease_end.is_some(),
            "a live lease ends some time"
        );
        claim(true);
        let html = board.render(Page::Work, true).unwrap();
        assert!(!html.contains("agent-x") && html.contains("Claimed work"), "{html}");
    }

    fn item(id: &str, status: &str, holder: Option<&str>) -> BoardItem {
        BoardItem {
            id: id.into(),
            title: format!("Item {id}"),
            item_type: "task".into(),
            status: status.into(),
            priority: 2,
            parent_id: None,
            depth: 0,
            open_blockers: 0,
            branch_name: Some("b".into()),
            created_at: "2026-12-01T00:00:00Z".into(),
            updated_at: "2026-12-02T00:00:00Z".into(),
            updated_by: "a".into(),
            archived: false,
            holder: holder.map(str::to_owned),
        }
    }

    fn data(items: Vec<BoardItem>) -> BoardData {
        BoardData {
            items,
            waits: Vec::new(),
            vendors: Vec::new(),
            deployments: Vec::new(),
            enhancements: Vec::new(),
            health: crate::ops::configuration::SyncHealth {
                hub_configured: false,
                last_sync_at: None,
                last_error: None,
                hub_reachable: None,
                pending_changes: 0,
                open_conflicts: 0,
                clock_warning: None,
            },
            conflicts: Vec::new(),
            lease_end: None,
            cursor: 0,
        }
    }

    /// The in-progress column groups its cards by holder (by name, then
    /// the items nobody holds) within one bound for the column; the others
    /// have one group, and every column counts what it leaves out.
    #[test]
    fn columns_are_bounded_and_in_progress_groups_by_holder() {
        let mut items: Vec<BoardItem> = (0..COLUMN_CARDS + 5)
            .map(|k| item(&format!("p{k:03}"), "active", None))
            .collect();
        items.push(item("zed1", "active", Some("zed")));
        items.push(item("ana1", "active", Some("ana")));
        items.push(item("ana2", "active", Some("ana")));
        items.extend((0..DONE_CARDS * 3).map(|k| item(&format!("d{k:03}"), "completed", Some("ana"))));
        let data = data(items);
        let view = View::new(&data);
        let work = serde_json::to_value(view.work()).unwrap();
        let columns = work["columns"].as_array().unwrap();
        let progress = &columns[1];
        assert_eq!(progress["key"], "progress");
        assert_eq!(progress["count"], COLUMN_CARDS + 8);
        let groups: Vec<(serde_json::Value, usize, usize)> = progress["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["holder"].clone(),
                    g["count"].as_u64().unwrap() as usize,
                    g["cards"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("ana".into(), 2, 2),
                ("zed".into(), 1, 1),
                (serde_json::Value::Null, COLUMN_CARDS + 5, COLUMN_CARDS - 3),
            ]
        );
        assert_eq!(progress["more"], 8);
        let done = &columns[3];
        assert_eq!(done["groups"].as_array().unwrap().len(), 1, "only in progress groups");
        assert_eq!(done["groups"][0]["cards"].as_array().unwrap().len(), DONE_CARDS);
        assert_eq!(done["more"], DONE_CARDS * 2);
        let html = templates()
            .get_template("work.html")
            .unwrap()
            .render(context! { work => view.work() })
            .unwrap();
        assert!(
            html.contains("<h3 class=\"holder\">ana <span class=\"n\">2</span></h3>"),
            "{html}"
        );
        assert!(html.contains(&format!("and {} more", DONE_CARDS * 2)), "{html}");
    }

    fn child(id: &str, parent: &str, status: &str) -> BoardItem {
        BoardItem {
            parent_id: Some(parent.into()),
            depth: 1,
            branch_name: None,
            ..item(id, status, None)
        }
    }

    fn tree_html(data: &BoardData, at: &At) -> (serde_json::Value, String) {
        let view = View::new(data);
        let tree = view.tree(at).unwrap();
        let html = templates()
            .get_template("tree.html")
            .unwrap()
            .render(context! { tree => tree.clone() })
            .unwrap();
        (serde_json::to_value(&tree).unwrap(), html)
    }

    /// The tree page shows at most `TREE_NODES` items whatever the store
    /// holds: a finished subtree folds into a count, a subtree cut by the
    /// bound links to its own page, the remaining top-level items to the
    /// next page; and every item is on some page.
    #[test]
    fn the_tree_is_bounded_and_every_item_is_reachable() {
        let mut items = vec![item("big", "active", None), item("done", "completed", None)];
        items.extend((0..TREE_NODES + 50).map(|k| child(&format!("b{k:04}"), "big", "pending")));
        items.extend((0..3).map(|k| child(&format!("d{k}"), "done", "completed")));
        items.extend((0..40).map(|k| item(&format!("r{k:03}"), "pending", None)));
        let mut data = data(items);
        data.waits.push(("r000".into(), "b0340".into()));
        let (tree, html) = tree_html(&data, &At::default());
        // (minijinja writes `/` in attributes as `&#x2f;`.)
        let shown = html.matches("<li ").count();
        assert_eq!(shown, TREE_NODES, "bounded");
        assert_eq!(tree["shown"], TREE_NODES);
        // The big project is first (open, created first) and eats the
        // bound: its cut children link to its own page.
        assert!(
            html.contains("51 more below</a>") && html.contains("href=\"&#x2f;tree?root=big\""),
            "{html}"
        );
        // The rest of the top-level items are on the next page.
        assert_eq!(tree["next"], "/tree?from=1");
        assert_eq!(tree["rest"], 40 + 4, "{tree}");

        // The next page: the other roots, with a dependency on an item not
        // on this page linking to that item's tree.
        let (tree, html) = tree_html(&data, &At { root: None, from: 1 });
        assert!(tree["next"].is_null());
        assert!(html.contains("Item r039"), "{html}");
        assert!(html.contains("href=\"&#x2f;tree?root=b0340\""), "{html}");
        // The finished project folds its three children into a count.
        assert!(!html.contains("Item d0") && html.contains("3 more below"), "{html}");

        // A subtree's own page unfolds it (even finished) with the way back.
        let (_, html) = tree_html(
            &data,
            &At {
                root: Some("done".into()),
                from: 0,
            },
        );
        assert!(html.contains("Item d0") && html.contains("Item d2"), "{html}");
        assert!(html.contains("<a href=\"/tree\">whole tree</a>"), "{html}");
        let (_, html) = tree_html(
            &data,
            &At {
                root: Some("b0007".into()),
                from: 0,
            },
        );
        assert!(
            html.contains("<a href=\"&#x2f;tree?root=big\">Item big</a>"),
            "the trail: {html}"
        );
        // An unknown root is not found.
        let view = View::new(&data);
        assert!(matches!(
            view.tree(&At {
                root: Some("nope".into()),
                from: 0
            }),
            Err(Error::NotFound { .. })
        ));
    }
}
