//! Property: random sequences of creates, moves, deletes and dependency
//! edits keep every path and depth consistent with the parent links, never
//! create a cycle (of parents or of dependencies), never pass the depth
//! limit, and succeed or fail exactly when a simple model says they should.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use waymark::Error;
use waymark::ops::{DependencyAction, DependencyChange, WorkItemFilter, WorkItemUpdate};
use waymark::store::id::get_id;

use crate::{new_item, tracker};

#[derive(Clone, Debug)]
enum Op {
    Create { parent: Option<usize> },
    Move { item: usize, parent: Option<usize> },
    Delete { item: usize },
    Complete { item: usize },
    AddDep { source: usize, target: usize, blocks: bool },
    RemoveDep { source: usize, target: usize, blocks: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::weighted(0.8, 0..40usize).prop_map(|parent| Op::Create { parent }),
        3 => (0..40usize, proptest::option::weighted(0.85, 0..40usize)).prop_map(|(item, parent)| Op::Move { item, parent }),
        1 => (0..40usize).prop_map(|item| Op::Delete { item }),
        1 => (0..40usize).prop_map(|item| Op::Complete { item }),
        3 => (0..40usize, 0..40usize, any::<bool>()).prop_map(|(source, target, blocks)| Op::AddDep { source, target, blocks }),
        1 => (0..40usize, 0..40usize, any::<bool>()).prop_map(|(source, target, blocks)| Op::RemoveDep { source, target, blocks }),
    ]
}

/// What the test believes about the store.
#[derive(Default)]
struct Model {
    ids: Vec<String>,
    parent: HashMap<String, Option<String>>,
    deleted: HashSet<String>,
    /// (waiter, awaited) edges by their (source, target, blocks) key.
    deps: HashMap<(String, String, bool), (String, String)>,
}

impl Model {
    fn depth(&self, id: &str) -> usize {
        let mut d = 0;
        let mut at = id.to_owned();
        while let Some(Some(p)) = self.parent.get(&at) {
            d += 1;
            at = p.clone();
        }
        d
    }

    fn height(&self, id: &str) -> usize {
        self.ids
            .iter()
            .filter(|c| self.parent.get(*c) == Some(&Some(id.to_owned())))
            .map(|c| 1 + self.height(c))
            .max()
            .unwrap_or(0)
    }

    fn is_ancestor_or_self(&self, maybe: &str, of: &str) -> bool {
        let mut at = Some(of.to_owned());
        while let Some(a) = at {
            if a == maybe {
                return true;
            }
            at = self.parent.get(&a).cloned().flatten();
        }
        false
    }

    fn waits_for(&self, from: &str, to: &str) -> bool {
        let mut stack = vec![from.to_owned()];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(self.deps.values().filter(|(w, _)| *w == n).map(|(_, a)| a.clone()));
            }
        }
        false
    }
}

fn check_tree(t: &waymark::Tracker, model: &Model) {
    let mut items = HashMap::new();
    let mut cursor = None;
    loop {
        let page = t
            .list_work_items(WorkItemFilter {
                include_deleted: true,
                limit: Some(100),
                cursor,
                ..Default::default()
            })
            .unwrap();
        for row in page.items {
            let full = t.get_work_item(&row.id).unwrap();
            items.insert(full.id.clone(), full);
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(items.len(), model.ids.len());
    for item in items.values() {
        assert_eq!(item.parent_id, model.parent[&item.id], "parent of {}", item.id);
        let expected_path = match &item.parent_id {
            Some(p) => format!("{}/{}", items[p].path, item.id),
            None => format!("/{}", item.id),
        };
        assert_eq!(item.path, expected_path);
        assert_eq!(item.depth as usize, item.path.matches('/').count() - 1);
        assert!(item.depth <= 5, "depth {} past the limit", item.depth);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hierarchy_and_dependencies_stay_consistent(ops in proptest::collection::vec(op(), 1..60)) {
        let (_dir, t) = tracker();
        let mut m = Model::default();
        let pick = |m: &Model, i: usize| (!m.ids.is_empty()).then(|| m.ids[i % m.ids.len()].clone());
        for op in ops {
            match op {
                Op::Create { parent } => {
                    let parent = parent.and_then(|p| pick(&m, p));
                    let ok_expected = parent.as_ref().is_none_or(|p| !m.deleted.contains(p) && m.depth(p) < 5);
                    let result = t.create_work_item("prop", new_item("task", "t", parent.as_deref()));
                    prop_assert_eq!(result.is_ok(), ok_expected, "create under {:?}: {:?}", parent, result.as_ref().err());
                    if let Ok(item) = result {
                        m.ids.push(item.id.clone());
                        m.parent.insert(item.id, parent);
                    } else {
                        let refused_for_a_rule = matches!(result, Err(Error::DepthLimit { .. } | Error::Invalid { .. }));
                        prop_assert!(refused_for_a_rule);
                    }
                }
                Op::Move { item, parent } => {
                    let Some(id) = pick(&m, item) else { continue };
                    let parent = parent.and_then(|p| pick(&m, p));
                    let version = t.get_work_item(&id).unwrap().version;
                    let expected = match &parent {
                        None => Ok(()),
                        Some(p) if m.deleted.contains(p) => Err("invalid"),
                        Some(p) if m.is_ancestor_or_self(&id, p) => Err("cycle"),
                        Some(p) if m.depth(p) + 1 + m.height(&id) > 5 => Err("depth"),
                        Some(_) => Ok(()),
                    };
                    let result = t.update_work_item("prop", WorkItemUpdate {
                        id: id.clone(), version, parent_id: Some(parent.clone().unwrap_or_default()), ..Default::default()
                    });
                    match (&expected, &result) {
                        (Ok(()), Ok(_)) => { m.parent.insert(id, parent); }
                        (Err("invalid"), Err(Error::Invalid { .. }))
                        | (Err("cycle"), Err(Error::Cycle(_)))
                        | (Err("depth"), Err(Error::DepthLimit { .. })) => {}
                        _ => prop_assert!(false, "move {} under {:?}: expected {:?}, got {:?}", id, parent, expected, result),
                    }
                }
                Op::Delete { item } => {
                    let Some(id) = pick(&m, item) else { continue };
                    let version = t.get_work_item(&id).unwrap().version;
                    t.update_work_item("prop", WorkItemUpdate { id: id.clone(), version, deleted: Some(true), ..Default::default() }).unwrap();
                    m.deleted.insert(id);
                }
                Op::Complete { item } => {
                    let Some(id) = pick(&m, item) else { continue };
                    let version = t.get_work_item(&id).unwrap().version;
                    t.update_work_item("prop", WorkItemUpdate { id, version, status: Some("completed".into()), ..Default::default() }).unwrap();
                }
                Op::AddDep { source, target, blocks } => {
                    let (Some(s), Some(tg)) = (pick(&m, source), pick(&m, target)) else { continue };
                    let (waiter, awaited) = if blocks { (tg.clone(), s.clone()) } else { (s.clone(), tg.clone()) };
                    let key = (s.clone(), tg.clone(), blocks);
                    let expected = if s == tg || m.deleted.contains(&s) || m.deleted.contains(&tg) {
                        Err("invalid")
                    } else if m.deps.contains_key(&key) {
                        Ok(())
                    } else if m.waits_for(&awaited, &waiter) {
                        Err("cycle")
                    } else {
                        Ok(())
                    };
                    let result = t.manage_dependency("prop", DependencyChange {
                        action: DependencyAction::Add, source_id: s.clone(), target_id: tg.clone(),
                        dependency_type: if blocks { "blocks" } else { "depends_on" }.into(),
                    });
                    match (&expected, &result) {
                        (Ok(()), Ok(_)) => { m.deps.insert(key, (waiter, awaited)); }
                        (Err("invalid"), Err(Error::Invalid { .. })) | (Err("cycle"), Err(Error::Cycle(_))) => {}
                        _ => prop_assert!(false, "add {:?}: expected {:?}, got {:?}", key, expected, result),
                    }
                }
                Op::RemoveDep { source, target, blocks } => {
                    let (Some(s), Some(tg)) = (pick(&m, source), pick(&m, target)) else { continue };
                    let key = (s.clone(), tg.clone(), blocks);
                    let result = t.manage_dependency("prop", DependencyChange {
                        action: DependencyAction::Remove, source_id: s, target_id: tg,
                        dependency_type: if blocks { "blocks" } else { "depends_on" }.into(),
                    });
                    prop_assert_eq!(result.is_ok(), m.deps.remove(&key).is_some());
                }
            }
        }
        check_tree(&t, &m);
        // Ready work (from the derived count of open blockers) equals the
        // definition evaluated directly.
        let ready: std::collections::BTreeSet<String> = t
            .ready_work(waymark::ops::ReadyQuery { limit: Some(100), ..Default::default() })
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        let expected: std::collections::BTreeSet<String> = t
            .store()
            .read(|tx| {
                let mut stmt = tx.prepare(
                    "SELECT id FROM work_items w WHERE status = 'active' AND deleted_at IS NULL AND archived_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM dependencies d JOIN work_items b ON b.id = d.target_id
                           WHERE d.source_id = w.id AND d.removed = 0 AND d.dependency_type = 'depends_on'
                             AND b.status != 'completed' AND b.deleted_at IS NULL)
                       AND NOT EXISTS (SELECT 1 FROM dependencies d JOIN work_items b ON b.id = d.source_id
                           WHERE d.target_id = w.id AND d.removed = 0 AND d.dependency_type = 'blocks'
                             AND b.status != 'completed' AND b.deleted_at IS NULL)",
                )?;
                let ids = stmt.query_map([], |r| get_id(r, 0))?.collect::<rusqlite::Result<_>>()?;
                Ok(ids)
            })
            .unwrap();
        prop_assert_eq!(ready, expected);
        // Everything derived is what a rebuild from the registers derives.
        prop_assert_eq!(t.store().verify().unwrap(), Vec::<String>::new());
        // The dependency graph in the store is acyclic: no item waits for itself.
        for id in &m.ids {
            let d = t.query_work_item(id, false, true).unwrap().dependencies.unwrap();
            for link in &d.depends_on {
                prop_assert!(!m.waits_for(&link.item.id, id), "cycle through {} and {}", id, link.item.id);
            }
        }
    }
}

mod derived_tree {
    //! Merged parent links that break the tree's rules (cycles from
    //! concurrent moves, chains past the depth limit, children that arrive
    //! before their parent) are resolved the same way on every replica,
    //! whatever order the changes arrive in, and match the rule computed
    //! from the final links alone.

    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde_json::{Value, json};
    use waymark::store::id::get_id;
    use waymark_sync::{Change, Dot, Hlc, ReplicaId, SCHEMA_VERSION, VersionVector};

    use crate::tracker;

    fn replica(n: u128) -> ReplicaId {
        ReplicaId(uuid::Uuid::from_u128(0xabc0 + n))
    }

    /// Ids as replicas send them: mostly canonical (stored as 16 bytes),
    /// every third in capitals, as a foreign writer might (stored as text).
    fn item_id(n: usize) -> String {
        let id = uuid::Uuid::from_u128(0x1000 + n as u128 * 7919 % 97).to_string();
        if n.is_multiple_of(3) { id.to_uppercase() } else { id }
    }

    fn change(record: &str, dot: Dot, context: &VersionVector, hlc: u64, fields: Value) -> Change {
        Change {
            collection: "work_items".into(),
            record_id: record.into(),
            dot,
            context: context.clone(),
            fields: serde_json::from_value(fields).unwrap(),
            hlc: Hlc::from_parts(1_700_000_000_000 + hlc, 0),
            author: "peer".into(),
            schema_version: SCHEMA_VERSION,
        }
    }

    /// The rule, from the final links alone: cut each cycle above its
    /// smallest member, then every sixth level starts a new root; unknown
    /// parents make roots.
    fn reference(links: &BTreeMap<String, Option<String>>) -> BTreeMap<String, (String, i64)> {
        let mut parent: HashMap<String, Option<String>> = links
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().filter(|p| links.contains_key(p))))
            .collect();
        for start in links.keys() {
            let mut seen = Vec::new();
            let mut at = Some(start.clone());
            while let Some(n) = at {
                if let Some(pos) = seen.iter().position(|s| *s == n) {
                    let min = seen[pos..].iter().min().cloned().unwrap();
                    parent.insert(min, None);
                    break;
                }
                seen.push(n.clone());
                at = parent[&n].clone();
            }
        }
        let mut out = BTreeMap::new();
        for id in links.keys() {
            let mut chain = vec![id.clone()];
            while let Some(Some(p)) = parent.get(chain.last().unwrap()) {
                chain.push(p.clone());
            }
            chain.reverse();
            let from = 6 * ((chain.len() - 1) / 6);
            let path = chain[from..].iter().map(|s| format!("/{s}")).collect::<String>();
            out.insert(id.clone(), (path, (chain.len() - 1 - from) as i64));
        }
        out
    }

    /// Each item's stored place, its path spelled with ids (`/{root}/../{id}`)
    /// rather than the stored ancestor keys.
    fn derived(t: &waymark::Tracker) -> BTreeMap<String, (String, i64)> {
        let rows: Vec<(i64, String, String, i64)> = t
            .store()
            .read(|tx| {
                let mut stmt = tx.prepare("SELECT key, id, path, depth FROM work_items")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, get_id(r, 1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .unwrap();
        let id_of: HashMap<i64, String> = rows.iter().map(|(k, id, _, _)| (*k, id.clone())).collect();
        rows.iter()
            .map(|(_, id, path, depth)| {
                let mut spelled: String = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|k| format!("/{}", id_of[&k.parse::<i64>().unwrap()]))
                    .collect();
                spelled.push_str(&format!("/{id}"));
                (id.clone(), (spelled, *depth))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn every_arrival_order_derives_the_same_tree(
            n in 2usize..12,
            initial in proptest::collection::vec(proptest::option::of(0usize..12), 12),
            moves in proptest::collection::vec(
                (0usize..12, proptest::option::of(0usize..12), 0u128..3, 0u8..6),
                0..25,
            ),
            deps in proptest::collection::vec((0usize..12, 0usize..12, any::<bool>(), 0u128..3, 0u8..4), 0..30),
            // Half the cases start from one long chain: past the depth
            // limit, and moves then make cycles longer than it.
            chain in any::<bool>(),
            seed in any::<u64>(),
        ) {
            // Creations (with an initial parent each) from one replica,
            // then concurrent moves from three others that all saw every creation.
            let n = if chain { 11 } else { n };
            let creator = replica(9);
            let mut creations = Vec::new();
            let mut seen = VersionVector::new();
            for (i, initial) in initial.iter().enumerate().take(n) {
                let dot = Dot { replica: creator, counter: i as u64 + 1 };
                let initial = if chain { i.checked_sub(1) } else { *initial };
                let parent = initial.filter(|p| *p < n && *p != i).map(item_id);
                creations.push(change(&item_id(i), dot, &VersionVector::new(), i as u64, json!({
                    "item_type": "task", "title": format!("item {i}"), "status": "active", "priority": 2,
                    "parent_id": parent, "created_at": "2026-01-01T00:00:00.000000Z", "created_by": "peer",
                })));
                seen.insert(dot);
            }
            // Each mover has seen every creation and its own earlier moves.
            let mut contexts: Vec<VersionVector> = vec![seen.clone(); 3];
            let mut counters = [0u64; 3];
            let mut hlc = 1_000;
            let mut by_replica: Vec<Vec<Change>> = vec![Vec::new(); 3];
            let mut written = Vec::new();
            for (item, parent, r, life) in moves.into_iter().filter(|(item, _, _, _)| *item < n) {
                let r = r as usize;
                counters[r] += 1;
                hlc += 1;
                let dot = Dot { replica: replica(r as u128), counter: counters[r] };
                let parent = parent.filter(|p| *p < n).map(item_id);
                // Some moves delete or restore the item too (a live child of a
                // deleted parent is a `parent_deleted` conflict).
                let fields = match life {
                    0 => json!({ "parent_id": parent, "deleted_at": "2026-02-01T00:00:00.000000Z" }),
                    1 => json!({ "parent_id": parent, "deleted_at": null }),
                    _ => json!({ "parent_id": parent }),
                };
                let c = change(&item_id(item), dot, &contexts[r], hlc, fields);
                contexts[r].insert(dot);
                by_replica[r].push(c.clone());
                written.push(c);
            }
            // Dependency edges added and removed by the movers, so that
            // edges made on different replicas can close cycles.
            for (source, target, blocks, r, life) in deps.into_iter().filter(|(s, t, _, _, _)| *s < n && *t < n && s != t) {
                let r = r as usize;
                counters[r] += 1;
                hlc += 1;
                let dot = Dot { replica: replica(r as u128), counter: counters[r] };
                let kind = if blocks { "blocks" } else { "depends_on" };
                let id = uuid::Uuid::from_u128(0x9000 + (source * 100 + target * 2 + usize::from(blocks)) as u128).to_string();
                let mut c = change(&id, dot, &contexts[r], hlc, json!({
                    "source_id": item_id(source), "target_id": item_id(target), "dependency_type": kind,
                    "removed": life == 0, "created_at": "2026-01-01T00:00:00.000000Z", "created_by": "peer",
                }));
                c.collection = "dependencies".into();
                contexts[r].insert(dot);
                by_replica[r].push(c.clone());
                written.push(c);
            }

            // Order one: as written. Order two: creations shuffled, and the
            // movers' changes interleaved at random (each mover's own in order,
            // as the hub delivers them).
            let mut rng = seed;
            let mut next = |bound: usize| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (rng >> 33) as usize % bound
            };
            let mut shuffled_creations = creations.clone();
            for i in (1..shuffled_creations.len()).rev() {
                shuffled_creations.swap(i, next(i + 1));
            }
            let mut interleaved = Vec::new();
            let mut queues: Vec<std::collections::VecDeque<Change>> = by_replica.into_iter().map(Into::into).collect();
            while queues.iter().any(|q| !q.is_empty()) {
                let live: Vec<usize> = (0..3).filter(|r| !queues[*r].is_empty()).collect();
                let r = live[next(live.len())];
                interleaved.push(queues[r].pop_front().unwrap());
            }
            let orders = [
                [creations.clone(), written].concat(),
                [shuffled_creations, interleaved].concat(),
            ];
            let mut results = Vec::new();
            for order in orders {
                let (_dir, t) = tracker();
                t.store()
                    .write("test", move |tx| {
                        for c in &order {
                            tx.apply_remote(c)?;
                        }
                        Ok(())
                    })
                    .unwrap();
                prop_assert_eq!(t.store().verify().unwrap(), Vec::<String>::new());
                results.push((derived(&t), t.export_json().unwrap()));
            }
            prop_assert_eq!(&results[0].0, &results[1].0);
            prop_assert_eq!(&results[0].1, &results[1].1);
            let links: BTreeMap<String, Option<String>> = results[0].1["work_items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| (w["id"].as_str().unwrap().to_owned(), w["parent_id"].as_str().map(str::to_owned)))
                .collect();
            prop_assert_eq!(&results[0].0, &reference(&links));
        }
    }
}
