//! Property: random sequences of creates, moves, deletes and dependency
//! edits keep every path and depth consistent with the parent links, never
//! create a cycle (of parents or of dependencies), never pass the depth
//! limit, and succeed or fail exactly when a simple model says they should.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use waymark::Error;
use waymark::ops::{DependencyAction, DependencyChange, WorkItemFilter, WorkItemUpdate};

use crate::{new_item, tracker};

#[derive(Clone, Debug)]
enum Op {
    Create { parent: Option<usize> },
    Move { item: usize, parent: Option<usize> },
    Delete { item: usize },
    AddDep { source: usize, target: usize, blocks: bool },
    RemoveDep { source: usize, target: usize, blocks: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::weighted(0.8, 0..40usize).prop_map(|parent| Op::Create { parent }),
        3 => (0..40usize, proptest::option::weighted(0.85, 0..40usize)).prop_map(|(item, parent)| Op::Move { item, parent }),
        1 => (0..40usize).prop_map(|item| Op::Delete { item }),
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
        // The dependency graph in the store is acyclic: no item waits for itself.
        for id in &m.ids {
            let d = t.query_work_item(id, false, true).unwrap().dependencies.unwrap();
            for link in &d.depends_on {
                prop_assert!(!m.waits_for(&link.item.id, id), "cycle through {} and {}", id, link.item.id);
            }
        }
    }
}
