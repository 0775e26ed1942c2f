//! Claims with leases (issue 14): local rules through the operations, and
//! the race of agents on several stores decided by the real Postgres hub.

use waymark::Tracker;
use waymark::domain::claim::ClaimState;
use waymark::ops::*;

use crate::{new_item, tracker};

fn task(t: &Tracker, title: &str) -> String {
    t.create_work_item("test", new_item("task", title, None)).unwrap().id
}

fn claim(t: &Tracker, agent: &str, id: &str) -> waymark::Result<ClaimAnswer> {
    t.claim_work_item(
        agent,
        ClaimRequest {
            id: Some(id.into()),
            ..Default::default()
        },
    )
}

fn next(t: &Tracker, agent: &str) -> waymark::Result<ClaimAnswer> {
    t.claim_work_item(
        agent,
        ClaimRequest {
            next: true,
            ..Default::default()
        },
    )
}

fn ready_ids(t: &Tracker, agent: &str) -> Vec<String> {
    t.ready_work_for(agent, ReadyQuery::default())
        .unwrap()
        .page
        .items
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn update(t: &Tracker, agent: &str, id: &str, status: Option<&str>) -> waymark::Result<WorkItem> {
    t.update_work_item(
        agent,
        WorkItemUpdate {
            id: id.into(),
            version: t.get_work_item(id).unwrap().version,
            title: Some(format!("{id} touched by {agent}")),
            status: status.map(str::to_owned),
            ..Default::default()
        },
    )
}

#[test]
fn a_claim_holds_the_item_for_its_holder_and_keeps_others_out() {
    let (_d, t) = tracker();
    let (a, b) = (task(&t, "a"), task(&t, "b"));
    let answer = claim(&t, "alice", &a).unwrap();
    let c = answer.claim.unwrap();
    // No hub: nothing orders it yet.
    assert_eq!((c.holder.as_str(), c.state), ("alice", ClaimState::Tentative));
    assert_eq!(answer.item.id, a);
    // Ready work: alice still sees it (hers), bob does not; anonymous neither.
    assert!(ready_ids(&t, "alice").contains(&a));
    assert_eq!(ready_ids(&t, "bob"), vec![b.clone()]);
    assert_eq!(ready_ids(&t, ""), vec![b.clone()]);
    // The rows and the item show who holds it.
    let rows = t.list_work_items(WorkItemFilter::default()).unwrap();
    let row = rows.items.iter().find(|r| r.id == a).unwrap();
    assert_eq!(row.claimed_by.as_deref(), Some("alice"));
    let detail = t.query_work_item(&a, false, false).unwrap();
    assert_eq!(detail.claim.unwrap().holder, "alice");
    // bob's claim and bob's write are refused, naming the holder and the expiry.
    let err = claim(&t, "bob", &a).unwrap_err().to_string();
    assert!(err.contains("claimed by \"alice\" until 20"), "{err}");
    let before = t.get_work_item(&a).unwrap();
    let err = update(&t, "bob", &a, None).unwrap_err().to_string();
    assert!(err.contains("claimed by \"alice\""), "{err}");
    assert_eq!(t.get_work_item(&a).unwrap(), before, "a refused write changes nothing");
    // claim next gives bob the other item.
    assert_eq!(next(&t, "bob").unwrap().item.id, b);
    assert!(next(&t, "carol").unwrap_err().to_string().contains("nothing is ready"));
    // Claims are no conflicts.
    assert!(t.list_conflicts().unwrap().is_empty());
    assert_eq!(t.store().verify().unwrap(), Vec::<String>::new());
}

#[test]
fn the_holders_writes_renew_completing_releases_and_force_takes_over() {
    let (_d, t) = tracker();
    let a = task(&t, "a");
    let first = claim(&t, "alice", &a).unwrap().claim.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    update(&t, "alice", &a, None).unwrap();
    let renewed = t.query_work_item(&a, false, false).unwrap().claim.unwrap();
    assert!(
        renewed.expires_at > first.expires_at,
        "a write of the holder renews the lease"
    );
    // Claiming again renews too, with the lease asked for.
    let again = t
        .claim_work_item(
            "alice",
            ClaimRequest {
                id: Some(a.clone()),
                minutes: Some(120),
                ..Default::default()
            },
        )
        .unwrap()
        .claim
        .unwrap();
    assert!(again.expires_at > renewed.expires_at);
    // bob forces it over; alice's writes are now refused.
    let forced = t
        .claim_work_item(
            "bob",
            ClaimRequest {
                id: Some(a.clone()),
                force: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(forced.claim.unwrap().holder, "bob");
    assert!(update(&t, "alice", &a, None).is_err());
    // Completing it releases it.
    update(&t, "bob", &a, Some("completed")).unwrap();
    assert!(t.query_work_item(&a, false, false).unwrap().claim.is_none());
    assert!(claim(&t, "alice", &a).unwrap_err().to_string().contains("completed"));
}

#[test]
fn a_release_frees_the_item_and_an_expired_lease_frees_it_with_no_write() {
    let (_d, t) = tracker();
    let a = task(&t, "a");
    claim(&t, "alice", &a).unwrap();
    // Only the holder releases (unless forced).
    let release = |agent: &str, force: bool| {
        t.claim_work_item(
            agent,
            ClaimRequest {
                id: Some(a.clone()),
                release: true,
                force,
                ..Default::default()
            },
        )
    };
    assert!(release("bob", false).unwrap_err().to_string().contains("alice"));
    assert!(release("alice", false).unwrap().claim.is_none());
    assert!(ready_ids(&t, "bob").contains(&a));
    // A lease taken 31 minutes ago (the store's clock set back) is over now.
    t.store().set_clock_skew(-31 * 60_000);
    claim(&t, "alice", &a).unwrap();
    t.store().set_clock_skew(0);
    let writes = t.changes_cursor().unwrap();
    assert!(ready_ids(&t, "bob").contains(&a));
    assert!(t.query_work_item(&a, false, false).unwrap().claim.is_none());
    assert_eq!(t.changes_cursor().unwrap(), writes, "expiry writes nothing");
    update(&t, "bob", &a, None).unwrap();
}

#[test]
fn bad_claims_are_refused_and_change_nothing() {
    let (_d, t) = tracker();
    let a = task(&t, "a");
    let head = t.changes_cursor().unwrap();
    for (request, field) in [
        (ClaimRequest::default(), "id"),
        (
            ClaimRequest {
                id: Some(a.clone()),
                next: true,
                ..Default::default()
            },
            "next",
        ),
        (
            ClaimRequest {
                id: Some(a.clone()),
                minutes: Some(0),
                ..Default::default()
            },
            "minutes",
        ),
        (
            ClaimRequest {
                id: Some("nope".into()),
                ..Default::default()
            },
            "id",
        ),
        (
            ClaimRequest {
                next: true,
                item_type: Some("bug".into()),
                ..Default::default()
            },
            "item_type",
        ),
    ] {
        let err = t.claim_work_item("alice", request).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
    assert_eq!(t.changes_cursor().unwrap(), head);
}

/// The race: 3 stores on one Postgres hub, 2 agents each, all racing
/// `claim next` for the one ready item. Exactly one confirmed holder; the
/// others are told they lost (or were refused, having seen the winner);
/// after a full sync every store derives the same holder and no item is
/// left claimed by a loser. `WAYMARK_CLAIM_TRIALS` sets the trials (soak).
#[test]
fn racing_claims_on_three_stores_have_one_confirmed_holder() {
    use waymark::config::Settings;
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    let trials: usize = std::env::var("WAYMARK_CLAIM_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let db = block_on(TestDatabase::create("claims_race"));
    let settings = Settings::default().with_overrides(Some(crate::sync::end_to_end::url_of(&db)), Some("race".into()));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<Tracker> = dirs.iter().map(|d| Tracker::open(d.path()).unwrap()).collect();
    let sync = |t: &Tracker| {
        waymark::sync::sync_once_blocking(t.store(), &settings).unwrap_or_else(|e| panic!("sync: {e}"));
    };
    for t in &stores {
        sync(t);
    }
    let (mut lost, mut refused) = (0, 0);
    for trial in 0..trials {
        let id = task(&stores[trial % 3], &format!("trial {trial}"));
        for t in &stores {
            sync(t);
        }
        let answers: Vec<(String, Result<ClaimAnswer, String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|n| {
                    let (t, settings) = (&stores[n % 3], &settings);
                    s.spawn(move || {
                        let agent = format!("agent-{n}");
                        let request = ClaimRequest {
                            next: true,
                            ..Default::default()
                        };
                        let answer = waymark::sync::claim_blocking(t, Some(settings), &agent, request)
                            .map_err(|e| e.to_string());
                        (agent, answer)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut confirmed = Vec::new();
        lost += answers
            .iter()
            .filter(|(_, a)| matches!(a, Ok(a) if a.claim.as_ref().is_some_and(|c| c.state == ClaimState::Lost)))
            .count();
        refused += answers.iter().filter(|(_, a)| a.is_err()).count();
        for (agent, answer) in &answers {
            match answer {
                Ok(a) => {
                    assert_eq!(a.item.id, id, "trial {trial}: only one item is ready");
                    let c = a.claim.as_ref().expect("a claim answer has the claim");
                    match c.state {
                        ClaimState::Confirmed => {
                            assert_eq!(&c.holder, agent);
                            confirmed.push(agent.clone());
                        }
                        ClaimState::Lost => assert_ne!(&c.holder, agent, "a loser is told who holds it"),
                        ClaimState::Tentative => panic!("trial {trial}: {agent} online but tentative"),
                    }
                }
                // It saw the winner's claim (or the item was no longer ready).
                Err(e) => assert!(
                    e.contains("claimed by") || e.contains("nothing is ready"),
                    "trial {trial}: {agent}: {e}"
                ),
            }
        }
        assert_eq!(confirmed.len(), 1, "trial {trial}: {answers:?}");
        for t in &stores {
            sync(t);
        }
        for t in &stores {
            sync(t);
        }
        for t in &stores {
            let d = t.query_work_item(&id, false, false).unwrap();
            let c = d.claim.expect("held");
            assert_eq!(c.holder, confirmed[0], "trial {trial}: every store derives the winner");
            assert_eq!(c.state, ClaimState::Confirmed);
            for (agent, _) in &answers {
                if *agent != confirmed[0] {
                    assert!(
                        !ready_ids(t, agent).contains(&id),
                        "not shown to a loser as its to work on"
                    );
                }
            }
            assert!(t.list_conflicts().unwrap().is_empty(), "claims raise no conflicts");
        }
        // The winner completes it: nothing left claimed.
        let winner_store = &stores[confirmed[0].trim_start_matches("agent-").parse::<usize>().unwrap() % 3];
        update(winner_store, &confirmed[0], &id, Some("completed")).unwrap();
    }
    eprintln!("{trials} trials: {lost} claims lost in the hub's order, {refused} refused having seen the winner");
    for t in stores.iter().chain(&stores) {
        sync(t);
    }
    for t in &stores {
        assert_eq!(t.store().verify().unwrap(), Vec::<String>::new());
        let report = t.status_report().unwrap();
        assert!(report.claims.is_empty(), "nothing left claimed: {:?}", report.claims);
        assert!(
            report.lost_claims.is_empty(),
            "no loser left told: {:?}",
            report.lost_claims
        );
    }
}

#[test]
fn history_lists_each_fields_last_write_newest_first_in_pages() {
    let (_d, t) = tracker();
    let id = t.create_work_item("alice", new_item("task", "first", None)).unwrap().id;
    std::thread::sleep(std::time::Duration::from_millis(2));
    update(&t, "bob", &id, None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    claim(&t, "carol", &id).unwrap();
    let first = t.work_item_history(&id, Some(3), None).unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(
        (first.items[0].field.as_str(), first.items[0].author.as_str()),
        ("claim", "carol")
    );
    assert_eq!(
        (first.items[1].field.as_str(), first.items[1].author.as_str()),
        ("title", "bob")
    );
    let mut all = first.items.clone();
    let mut cursor = first.next_cursor.clone();
    while let Some(c) = cursor {
        let page = t.work_item_history(&id, Some(3), Some(&c)).unwrap();
        all.extend(page.items);
        cursor = page.next_cursor;
    }
    assert_eq!(all.len() as i64, first.total_count);
    let mut seen: Vec<(String, String)> = all.iter().map(|e| (e.dot.clone(), e.field.clone())).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all.len(), "no entry twice across pages");
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    assert!(all.iter().any(|e| e.field == "item_type" && e.author == "alice"));
    // The detail carries the first page when asked.
    let detail = t
        .query_work_item_with(WorkItemQuery {
            id: id.clone(),
            history: Some(true),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(detail.history.unwrap().items[0].field, "claim");
    assert!(
        t.work_item_history(&id, None, Some("zz"))
            .unwrap_err()
            .to_string()
            .contains("cursor")
    );
    let missing = "00000000-0000-4000-8000-000000000000";
    assert!(
        t.work_item_history(missing, None, None)
            .unwrap_err()
            .to_string()
            .contains("not found")
    );
}
