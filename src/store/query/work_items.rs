//! Work items: one by id, a subtree, an item's dependencies and conflicts,
//! the lists (filtered, searched, ready, archived) and the archive's
//! candidates.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use super::{Total, capped_count, metadata};
use crate::domain::{ItemType, WorkStatus};
use crate::error::Result;
use crate::ops::{DependencyLink, ItemDependencies, WorkItem, WorkItemRow};
use crate::store::id::{self, get_id, get_opt_id};
use crate::store::tree;

pub(super) const ITEM_COLUMNS: &str = "id, item_type, title, description, status, priority, parent_id, path, depth, \
     branch_name, commit_hash, pr_number, metadata, deleted_at, archived_at, created_at, created_by, updated_at, \
     updated_by, version";

pub(super) const ROW_COLUMNS: &str = concat!(
    "id, title, item_type, status, priority, parent_id, updated_at, version, ",
    live_holder!()
);
/// How many columns [`ROW_COLUMNS`] names.
const ROW_COLUMN_COUNT: usize = 9;

/// The holder of a live claim on the item of alias `w` at `?2` (ms), as the
/// 9th column of a ready row (the lists above read the machine's time in
/// SQL; ready work reads the time its filter reads).
const W_CLAIMED_BY: &str = "(SELECT c.holder FROM claims c WHERE c.id = w.id AND c.expires_at > ?2)";

pub(super) fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkItem> {
    let metadata_text: String = r.get(12)?;
    Ok(WorkItem {
        id: get_id(r, 0)?,
        item_type: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        status: r.get(4)?,
        priority: r.get(5)?,
        parent_id: get_opt_id(r, 6)?,
        path: r.get(7)?,
        depth: r.get(8)?,
        branch_name: r.get(9)?,
        commit_hash: r.get(10)?,
        pr_number: r.get(11)?,
        metadata: metadata(&metadata_text),
        deleted_at: r.get(13)?,
        archived_at: r.get(14)?,
        created_at: r.get(15)?,
        created_by: r.get(16)?,
        updated_at: r.get(17)?,
        updated_by: r.get(18)?,
        version: r.get(19)?,
    })
}

pub(super) fn row_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkItemRow> {
    Ok(WorkItemRow {
        id: get_id(r, 0)?,
        title: r.get(1)?,
        item_type: r.get(2)?,
        status: r.get(3)?,
        priority: r.get(4)?,
        parent_id: get_opt_id(r, 5)?,
        updated_at: r.get(6)?,
        version: r.get(7)?,
        claimed_by: r.get(8)?,
    })
}

/// One item by id (archived and deleted ones too), its path as a reader
/// sees it.
pub(crate) fn load(conn: &Connection, id: &str) -> Result<Option<WorkItem>> {
    let item = conn
        .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM work_items WHERE id = ?1"))?
        .query_row([id::sql(id)], item_from_row)
        .optional()?;
    item.map(|mut item| {
        item.path = user_path(&item.path, &item.id, |key| tree::id_of(conn, key))?;
        Ok(item)
    })
    .transpose()
}

/// The path a reader sees, `/{root id}/.../{id}`, from the stored path (the
/// ancestors' keys, see `store::tree`).
pub(super) fn user_path(stored: &str, id: &str, mut id_of: impl FnMut(i64) -> Result<String>) -> Result<String> {
    let mut path = String::with_capacity(37 * (stored.len() / 2 + 1));
    for key in tree::keys(stored) {
        path.push('/');
        path.push_str(&id_of(key)?);
    }
    path.push('/');
    path.push_str(id);
    Ok(path)
}

/// The bounds of the stored paths of every item below item `id`.
pub(crate) fn subtree_of(conn: &Connection, id: &str) -> Result<(String, String)> {
    let (key, path): (i64, String) = conn
        .prepare_cached("SELECT key, path FROM work_items WHERE id = ?1")?
        .query_row([id::sql(id)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(tree::subtree_range(&path, key))
}

/// The depth of the deepest item below item `id`, if it has any.
pub(crate) fn deepest_below(conn: &Connection, id: &str) -> Result<Option<i64>> {
    let (low, high) = subtree_of(conn, id)?;
    Ok(conn
        .prepare_cached("SELECT max(depth) FROM work_items WHERE path >= ?1 AND path < ?2")?
        .query_row([low, high], |r| r.get(0))?)
}

/// Whether item `ancestor` is `item` or one of its ancestors, by the
/// parent links (not the stored paths, which the depth rule cuts).
pub(crate) fn links_reach(conn: &Connection, item: &str, ancestor: &str) -> Result<bool> {
    tree::links_reach(conn, item, ancestor)
}

/// The rows of the given items that exist, in the order given.
pub(crate) fn rows<'a>(conn: &Connection, ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<WorkItemRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM work_items WHERE id = ?1"))?;
    let mut out = Vec::new();
    for a in ids {
        if let Some(row) = stmt.query_row([id::sql(a)], row_from_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// A place in the tree order: an item's `(path, key)`.
pub(crate) type TreePos = (String, i64);

/// The items below item `id`, depth first in tree order: at most `max`
/// after the tree position `after` (`(path, key)` of the last one shown),
/// how many there are in all, and the position of the last one returned
/// when more follow.
pub(crate) fn descendants(
    conn: &Connection,
    id: &str,
    after: Option<TreePos>,
    max: i64,
) -> Result<(Vec<WorkItemRow>, i64, Option<TreePos>)> {
    let (low, high) = subtree_of(conn, id)?;
    // The range starts at the cursor's path (an index seek), not at the
    // subtree's start, so a late page costs what the first one does.
    let (from, after_key) = match &after {
        Some((path, key)) if *path >= low => (path.clone(), *key),
        _ => (low.clone(), i64::MIN),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS}, path, key FROM work_items WHERE path >= ?1 AND path < ?2
           AND (path, key) > (?1, ?3)
         ORDER BY path, key LIMIT ?4"
    ))?;
    let mut rows: Vec<(WorkItemRow, String, i64)> = stmt
        .query_map(rusqlite::params![from, high, after_key, max + 1], |r| {
            let n = ROW_COLUMN_COUNT;
            Ok((row_from_row(r)?, r.get(n)?, r.get(n + 1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let more = rows.len() as i64 > max;
    rows.truncate(max as usize);
    // A subtree that fits in one answer is counted by it.
    let count = if !more && after.is_none() {
        rows.len() as i64
    } else {
        conn.prepare_cached("SELECT count(*) FROM work_items WHERE path >= ?1 AND path < ?2")?
            .query_row([&low, &high], |r| r.get(0))?
    };
    let next = if more {
        rows.last().map(|(_, path, key)| (path.clone(), *key))
    } else {
        None
    };
    Ok((rows.into_iter().map(|(row, _, _)| row).collect(), count, next))
}

/// The fields of item `id` with open conflicts: `field` for a value
/// conflict, `field (kind)` for the others.
pub(crate) fn conflicted_fields(conn: &Connection, id: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT CASE kind WHEN 'value' THEN field ELSE field || ' (' || kind || ')' END
             FROM conflicts WHERE collection = 'work_items' AND record_id = ?1 ORDER BY field, kind",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Item `id`'s live dependencies, both ways.
pub(crate) fn dependencies(conn: &Connection, id: &str) -> Result<ItemDependencies> {
    // (dependency id, type, other item) for edges where this item waits
    // (depends_on) or others wait for it (blocks).
    let query = |sql: &str| -> Result<Vec<DependencyLink>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map([id::sql(id)], |r| {
                Ok(DependencyLink {
                    dependency_id: get_id(r, 0)?,
                    dependency_type: r.get(1)?,
                    item: WorkItemRow {
                        id: get_id(r, 2)?,
                        title: r.get(3)?,
                        item_type: r.get(4)?,
                        status: r.get(5)?,
                        priority: r.get(6)?,
                        parent_id: get_opt_id(r, 7)?,
                        updated_at: r.get(8)?,
                        version: r.get(9)?,
                        claimed_by: None,
                    },
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    };
    let cols = "d.id, d.dependency_type, w.id, w.title, w.item_type, w.status, w.priority, w.parent_id, w.updated_at, w.version";
    let depends_on = query(&format!(
        "SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.target_id
           WHERE d.source_id = ?1 AND d.removed = 0 AND d.dependency_type = 'depends_on'
         UNION ALL
         SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.source_id
           WHERE d.target_id = ?1 AND d.removed = 0 AND d.dependency_type = 'blocks'
         ORDER BY 3"
    ))?;
    let blocks = query(&format!(
        "SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.target_id
           WHERE d.source_id = ?1 AND d.removed = 0 AND d.dependency_type = 'blocks'
         UNION ALL
         SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.source_id
           WHERE d.target_id = ?1 AND d.removed = 0 AND d.dependency_type = 'depends_on'
         ORDER BY 3"
    ))?;
    Ok(ItemDependencies { depends_on, blocks })
}

/// An FTS5 query from search words: every word must appear, as a prefix.
fn match_words(words: &[&str]) -> String {
    words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" ")
}

/// What `list` selects; every value already checked.
#[derive(Debug, Default)]
pub(crate) struct ItemList<'a> {
    pub item_type: Option<ItemType>,
    pub status: Option<WorkStatus>,
    /// A canonical id.
    pub parent_id: Option<&'a str>,
    /// Words every match holds (as prefixes) in its title or description.
    pub words: Option<&'a [&'a str]>,
    pub include_deleted: bool,
    /// The key of the last row of the previous page.
    pub after_key: Option<i64>,
    pub limit: i64,
}

/// Unarchived items, in the order this store recorded them (by key: the
/// order the full-text index and every index of work items share, so no
/// page costs a sort): up to `limit + 1` rows with their keys, and the
/// count of matches.
pub(crate) fn list(conn: &Connection, q: &ItemList<'_>) -> Result<(Vec<(WorkItemRow, i64)>, Total)> {
    let mut clauses = vec!["archived_at IS NULL".to_owned()];
    let mut args: Vec<SqlValue> = Vec::new();
    let mut arg = |clauses: &mut Vec<String>, sql: &str, v: SqlValue| {
        args.push(v);
        clauses.push(sql.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = q.item_type {
        arg(&mut clauses, "item_type = ?", t.as_str().to_owned().into());
    }
    if let Some(s) = q.status {
        arg(&mut clauses, "status = ?", s.as_str().to_owned().into());
    }
    if let Some(p) = q.parent_id {
        arg(&mut clauses, "parent_id = ?", id::value(p));
    }
    if let Some(words) = q.words {
        arg(
            &mut clauses,
            "rowid IN (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH ?)",
            match_words(words).into(),
        );
    }
    if !q.include_deleted {
        clauses.push("deleted_at IS NULL".to_owned());
    }
    let filters = clauses.join(" AND ");
    let mut page_clauses = filters.clone();
    let count_args = args.len();
    if let Some(key) = q.after_key {
        args.push(key.into());
        page_clauses.push_str(&format!(" AND key > ?{}", args.len()));
    }
    let total = capped_count(conn, &format!("work_items WHERE {filters}"), &args[..count_args])?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS}, key FROM work_items WHERE {page_clauses} ORDER BY key LIMIT {}",
        q.limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(9)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}

/// Active, live, and nothing it waits for is still open (an item is open
/// until it is completed or deleted).
const READY_FILTER: &str =
    "w.status = 'active' AND w.deleted_at IS NULL AND w.archived_at IS NULL AND w.open_blockers = 0";

/// Ready work, highest priority (lowest number), then oldest, first: up to
/// `limit + 1` rows with their created times, after the row `(priority,
/// created_at, id)` when given, and the count.
/// Items claimed by others than `agent` whose lease is not over at `now`
/// (ms) are left out (a point lookup per item the page walks).
pub(crate) fn ready(
    conn: &Connection,
    item_type: Option<ItemType>,
    after: Option<(i64, String, String)>,
    limit: i64,
    agent: &str,
    now: i64,
) -> Result<(Vec<(WorkItemRow, String)>, Total)> {
    let mut args: Vec<SqlValue> = vec![agent.to_owned().into(), now.into()];
    let mut extra =
        " AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.id = w.id AND c.holder != ?1 AND c.expires_at > ?2)"
            .to_owned();
    if let Some(t) = item_type {
        args.push(t.as_str().to_owned().into());
        extra.push_str(&format!(" AND w.item_type = ?{}", args.len()));
    }
    let filters = format!("{READY_FILTER}{extra}");
    let count_args = args.len();
    let mut page_filters = filters.clone();
    if let Some((priority, at, id)) = after {
        args.extend([priority.into(), at.into(), id::value(&id)]);
        let n = args.len();
        page_filters.push_str(&format!(
            " AND (w.priority, w.created_at, w.id) > (?{}, ?{}, ?{n})",
            n - 2,
            n - 1
        ));
    }
    let total = capped_count(conn, &format!("work_items w WHERE {filters}"), &args[..count_args])?;
    // The ready index walks items in page order, so the page stops after
    // `limit + 1` hits; left to itself the planner picks work_items_status
    // and sorts every active item (300 ms at 100k).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT w.id, w.title, w.item_type, w.status, w.priority, w.parent_id, w.updated_at, w.version,
                {W_CLAIMED_BY}, w.created_at
         FROM work_items w INDEXED BY work_items_ready WHERE {page_filters}
         ORDER BY w.priority, w.created_at, w.id LIMIT {}",
        limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(9)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}

/// Completed or deleted, not archived, untouched since the cutoff, and with
/// no live descendant that is still open (a subtree is archived whole or
/// not at all); oldest first.
pub(crate) fn archive_candidates(conn: &Connection, cutoff: &str) -> Result<Vec<WorkItemRow>> {
    const CANDIDATES: &str = "SELECT id, title, item_type, status, priority, parent_id, updated_at, version, NULL
    FROM work_items w
    WHERE w.archived_at IS NULL AND (w.status = 'completed' OR w.deleted_at IS NOT NULL) AND w.updated_at < ?1
      AND NOT EXISTS (SELECT 1 FROM work_items d
          WHERE d.path >= w.path || w.key || '/' AND d.path < w.path || w.key || '0' AND d.archived_at IS NULL
            AND d.status != 'completed' AND d.deleted_at IS NULL)
    ORDER BY w.updated_at, w.id";
    Ok(conn
        .prepare(CANDIDATES)?
        .query_map([cutoff], row_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Archived items, most recently archived first: up to `limit + 1` rows
/// with their archive times, after the row `(archived_at, id)` when given,
/// and the count.
pub(crate) fn archived(
    conn: &Connection,
    item_type: Option<ItemType>,
    words: Option<&[&str]>,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<(Vec<(WorkItemRow, String)>, Total)> {
    let mut clauses = vec!["archived_at IS NOT NULL".to_owned()];
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(t) = item_type {
        args.push(t.as_str().to_owned().into());
        clauses.push(format!("item_type = ?{}", args.len()));
    }
    if let Some(words) = words {
        args.push(match_words(words).into());
        clauses.push(format!(
            "rowid IN (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH ?{})",
            args.len()
        ));
    }
    let filters = clauses.join(" AND ");
    let count_args = args.len();
    let mut page_filters = filters.clone();
    if let Some((at, id)) = after {
        args.extend([at.into(), id::value(&id)]);
        let n = args.len();
        page_filters.push_str(&format!(" AND (archived_at, id) < (?{}, ?{n})", n - 1));
    }
    let total = capped_count(conn, &format!("work_items WHERE {filters}"), &args[..count_args])?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS}, archived_at FROM work_items WHERE {page_filters}
         ORDER BY archived_at DESC, id DESC LIMIT {}",
        limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(9)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}
