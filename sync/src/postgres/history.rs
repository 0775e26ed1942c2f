//! The Postgres hub's bounded history (issue 13): replicas' frontiers,
//! retiring them, compaction into snapshots and reading snapshots.
//!
//! **Compaction** runs in transactions of at most `batch` changes. Each
//! locks the space's `spaces` row (so it waits for a push in progress, and
//! a push waits for at most one batch), reads the lowest cursor of the
//! space's live replicas, reads the changes above the floor up to it,
//! folds them into their records' snapshots with the same pure code the
//! in-memory hub uses ([`crate::snapshot::fold`]), writes the snapshots and
//! each replica's highest folded counter, deletes the folded changes and
//! moves the floor, and commits: a crash leaves either the batch done or
//! nothing, and a second run goes on from the floor.
//!
//! Every statement here filters on `space_id` first.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Done, Failure, Op, PostgresHub, pool::Conn, to_i64};
use crate::change::Change;
use crate::clock::ReplicaId;
use crate::merge::RecordState;
use crate::protocol::{CompactOptions, CompactReport, Frontier, HubAdmin, HubError, ReplicaInfo, SnapshotPage};
use crate::snapshot::{RecordKey, Snapshot};

pub(super) const SNAPSHOTS: &str = "SELECT 0 AS part, floor, NULL::text AS collection, NULL::text AS record_id, \
     NULL::bytea AS body FROM spaces WHERE space_id = $1 \
     UNION ALL (SELECT 1, 0, collection, record_id, body FROM snapshots WHERE space_id = $1 \
     AND (collection, record_id) > ($2, $3) ORDER BY collection, record_id LIMIT $4) \
     ORDER BY part, collection, record_id";

/// A report that changes nothing the hub keeps (the same cursor, name and
/// host of a live replica, last seen under five minutes ago) writes
/// nothing: no row is inserted or locked, so a no-op round's report costs a
/// read, not a flush of the hub's WAL.
pub(super) const REPORT: &str = "INSERT INTO replicas (space_id, replica_id, name, host, acked_seq) \
     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.space_id = $1 \
     AND r.replica_id = $2 AND r.acked_seq = $5 AND r.name = $3 AND r.host = $4 AND r.retired_at IS NULL \
     AND r.last_seen > now() - interval '5 minutes') \
     ON CONFLICT (space_id, replica_id) DO UPDATE SET name = excluded.name, \
     host = excluded.host, acked_seq = excluded.acked_seq, last_seen = now(), retired_at = NULL";

const REPLICAS: &str = "SELECT replica_id, name, host, acked_seq, \
     (extract(epoch FROM last_seen) * 1000)::bigint, retired_at IS NOT NULL \
     FROM replicas WHERE space_id = $1 ORDER BY last_seen DESC, replica_id";

const FORGET: &str =
    "UPDATE replicas SET retired_at = now() WHERE space_id = $1 AND replica_id = $2 AND retired_at IS NULL";

const RETIRE: &str = "UPDATE replicas SET retired_at = now() WHERE space_id = $1 AND retired_at IS NULL \
     AND last_seen <= now() - $2::bigint * interval '1 millisecond'";

const LOCK_FOR_COMPACTION: &str = "SELECT head, floor FROM spaces WHERE space_id = $1 FOR UPDATE";

const LOWEST_LIVE: &str = "SELECT min(acked_seq) FROM replicas WHERE space_id = $1 AND retired_at IS NULL";

const TO_FOLD: &str = "SELECT seq, body FROM changes WHERE space_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq";

const SNAPSHOTS_OF: &str = "SELECT s.collection, s.record_id, s.body FROM snapshots s \
     JOIN unnest($2::text[], $3::text[]) AS k (collection, record_id) \
     ON s.collection = k.collection AND s.record_id = k.record_id WHERE s.space_id = $1";

const WRITE_SNAPSHOTS: &str = "INSERT INTO snapshots (space_id, collection, record_id, body) \
     SELECT $1, t.collection, t.record_id, t.body FROM unnest($2::text[], $3::text[], $4::bytea[]) \
     AS t (collection, record_id, body) \
     ON CONFLICT (space_id, collection, record_id) DO UPDATE SET body = excluded.body";

const WRITE_FOLDED: &str = "INSERT INTO folded (space_id, replica_id, counter) \
     SELECT $1, t.replica_id, t.counter FROM unnest($2::uuid[], $3::bigint[]) AS t (replica_id, counter) \
     ON CONFLICT (space_id, replica_id) DO UPDATE SET counter = greatest(folded.counter, excluded.counter)";

const DROP_FOLDED: &str = "DELETE FROM changes WHERE space_id = $1 AND seq > $2 AND seq <= $3";

const MOVE_FLOOR: &str = "UPDATE spaces SET floor = $2 WHERE space_id = $1";

const COUNT_SNAPSHOTS: &str = "SELECT count(*) FROM snapshots WHERE space_id = $1";

const SNAPSHOT_OF: &str = "SELECT body FROM snapshots WHERE space_id = $1 AND collection = $2 AND record_id = $3";

impl PostgresHub {
    /// The snapshot of `change`'s record, inside a push's transaction.
    pub(super) async fn snapshot_in(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        space: &str,
        change: &Change,
    ) -> Result<Option<RecordState>, Failure> {
        let row = tx
            .query_opt(SNAPSHOT_OF, &[&space, &change.collection, &change.record_id])
            .await
            .map_err(|e| self.db_failure(e))?;
        row.map(|row| {
            Snapshot::from_body(&row.get::<_, Vec<u8>>(0))
                .map(|s| s.state)
                .map_err(|e| HubError::Other(format!("a snapshot of space {space:?} is unreadable: {e}")).into())
        })
        .transpose()
    }

    pub(super) async fn snapshots_once(
        &self,
        conn: &mut Conn,
        space: &str,
        after: Option<&RecordKey>,
        limit: i64,
    ) -> Result<SnapshotPage, Failure> {
        let db = |e| self.db_failure(e);
        let stmt = self.statements(conn).await.map_err(db)?.snapshots.clone();
        let (collection, record) = after.map_or(("", ""), |(c, r)| (c.as_str(), r.as_str()));
        let rows = conn
            .client
            .query(&stmt, &[&space, &collection, &record, &(limit + 1)])
            .await
            .map_err(db)?;
        let mut page = SnapshotPage::default();
        let mut more = false;
        for row in rows {
            if row.get::<_, i32>(0) == 0 {
                page.floor = row.get::<_, i64>(1) as u64;
                continue;
            }
            if page.records.len() as i64 == limit {
                more = true;
                break;
            }
            let body: Vec<u8> = row.get(4);
            let snapshot = Snapshot::from_body(&body).map_err(|e| {
                HubError::Other(format!(
                    "the hub's snapshot of {}/{} in space {space:?} is unreadable: {e}",
                    row.get::<_, String>(2),
                    row.get::<_, String>(3)
                ))
            })?;
            page.records.push(snapshot);
        }
        if more {
            page.next = page.records.last().map(Snapshot::key);
        }
        Ok(page)
    }

    pub(super) async fn report_once(&self, conn: &mut Conn, space: &str, frontier: &Frontier) -> Result<(), Failure> {
        let db = |e| self.db_failure(e);
        let stmt = self.statements(conn).await.map_err(db)?.report.clone();
        let cursor = to_i64(frontier.cursor, "cursor")?;
        conn.client
            .execute(
                &stmt,
                &[&space, &frontier.replica.0, &frontier.name, &frontier.host, &cursor],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    pub(super) async fn replicas_once(&self, conn: &mut Conn, space: &str) -> Result<Vec<ReplicaInfo>, Failure> {
        let db = |e| self.db_failure(e);
        let rows = conn.client.query(REPLICAS, &[&space]).await.map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|row| ReplicaInfo {
                replica: ReplicaId(row.get(0)),
                name: row.get(1),
                host: row.get(2),
                cursor: row.get::<_, i64>(3) as u64,
                last_seen_ms: row.get::<_, i64>(4).max(0) as u64,
                retired: row.get(5),
            })
            .collect())
    }

    pub(super) async fn forget_once(&self, conn: &mut Conn, space: &str, replica: ReplicaId) -> Result<u64, Failure> {
        let db = |e| self.db_failure(e);
        conn.client.execute(FORGET, &[&space, &replica.0]).await.map_err(db)
    }

    pub(super) async fn retire_once(&self, conn: &mut Conn, space: &str, retention_ms: i64) -> Result<u64, Failure> {
        let db = |e| self.db_failure(e);
        conn.client.execute(RETIRE, &[&space, &retention_ms]).await.map_err(db)
    }

    /// One batch of compaction, one transaction. `folded` 0 means there is
    /// nothing (more) to fold; that answer also counts the snapshots.
    pub(super) async fn compact_batch_once(
        &self,
        conn: &mut Conn,
        space: &str,
        opts: CompactOptions,
    ) -> Result<CompactReport, Failure> {
        let db = |e| self.db_failure(e);
        let tx = conn.client.transaction().await.map_err(db)?;
        let Some(row) = tx.query_opt(LOCK_FOR_COMPACTION, &[&space]).await.map_err(db)? else {
            return Ok(CompactReport::default());
        };
        let (head, floor): (i64, i64) = (row.get(0), row.get(1));
        let live: Option<i64> = tx.query_one(LOWEST_LIVE, &[&space]).await.map_err(db)?.get(0);
        let up_to = opts.up_to.map_or(Ok(i64::MAX), |u| to_i64(u, "seq"))?;
        let target = live.unwrap_or(i64::MAX).min(up_to).min(head);
        let upto = target.min(floor.saturating_add(opts.batch.max(1) as i64));
        if upto <= floor {
            let snapshots: i64 = tx.query_one(COUNT_SNAPSHOTS, &[&space]).await.map_err(db)?.get(0);
            tx.rollback().await.map_err(db)?;
            return Ok(CompactReport {
                floor: floor as u64,
                head: head as u64,
                snapshots: snapshots as u64,
                ..CompactReport::default()
            });
        }
        let rows = tx.query(TO_FOLD, &[&space, &floor, &upto]).await.map_err(db)?;
        let mut changes: Vec<Change> = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.get(0);
            let body: Vec<u8> = row.get(1);
            changes.push(serde_json::from_slice(&body).map_err(|e| {
                HubError::Other(format!(
                    "the hub's change at seq {seq} of space {space:?} is unreadable: {e}"
                ))
            })?);
        }
        if changes.len() as i64 != upto - floor {
            return Err(HubError::Other(format!(
                "space {space:?} lacks changes between seq {floor} and {upto}: the log is not dense"
            ))
            .into());
        }
        let mut keys: Vec<RecordKey> = changes
            .iter()
            .map(|c| (c.collection.clone(), c.record_id.clone()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let (collections, records): (Vec<&str>, Vec<&str>) = keys.iter().map(|(c, r)| (c.as_str(), r.as_str())).unzip();
        let stored = tx
            .query(SNAPSHOTS_OF, &[&space, &collections, &records])
            .await
            .map_err(db)?;
        let mut states: BTreeMap<RecordKey, RecordState> = BTreeMap::new();
        for row in stored {
            let body: Vec<u8> = row.get(2);
            let snapshot = Snapshot::from_body(&body)
                .map_err(|e| HubError::Other(format!("a snapshot of space {space:?} is unreadable: {e}")))?;
            states.insert(snapshot.key(), snapshot.state);
        }
        let folded = crate::snapshot::fold(&mut states, &changes);
        let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(states.len());
        let (mut cols, mut ids): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for ((collection, record_id), state) in states {
            let snapshot = Snapshot {
                collection,
                record_id,
                state,
            };
            bodies.push(snapshot.body());
            cols.push(snapshot.collection);
            ids.push(snapshot.record_id);
        }
        tx.execute(WRITE_SNAPSHOTS, &[&space, &cols, &ids, &bodies])
            .await
            .map_err(db)?;
        let (replicas, counters): (Vec<Uuid>, Vec<i64>) = folded.iter().map(|(r, &c)| (r.0, c as i64)).unzip();
        tx.execute(WRITE_FOLDED, &[&space, &replicas, &counters])
            .await
            .map_err(db)?;
        tx.execute(DROP_FOLDED, &[&space, &floor, &upto]).await.map_err(db)?;
        tx.execute(MOVE_FLOOR, &[&space, &upto]).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(CompactReport {
            folded: changes.len(),
            floor: upto as u64,
            head: head as u64,
            ..CompactReport::default()
        })
    }
}

impl HubAdmin for PostgresHub {
    async fn replicas(&self, space: &str) -> Result<Vec<ReplicaInfo>, HubError> {
        match self.with_retries(Op::Replicas { space }).await? {
            Done::Replicas(all) => Ok(all),
            _ => unreachable!("replicas answer with a list"),
        }
    }

    async fn forget(&self, space: &str, replica: ReplicaId) -> Result<bool, HubError> {
        match self.with_retries(Op::Forget { space, replica }).await? {
            Done::Count(n) => Ok(n > 0),
            _ => unreachable!("forget answers with a count"),
        }
    }

    async fn compact(&self, space: &str, opts: CompactOptions) -> Result<CompactReport, HubError> {
        let mut report = CompactReport::default();
        if let Some(retention) = opts.retention_ms {
            let retention_ms = to_i64(retention, "retention")?;
            match self.with_retries(Op::Retire { space, retention_ms }).await? {
                Done::Count(n) => report.retired = n as usize,
                _ => unreachable!("retiring answers with a count"),
            }
        }
        loop {
            let batch = match self.with_retries(Op::CompactBatch { space, opts }).await? {
                Done::Compacted(batch) => batch,
                _ => unreachable!("a compaction batch answers with a report"),
            };
            report.floor = batch.floor;
            report.head = batch.head;
            if batch.folded == 0 {
                report.snapshots = batch.snapshots;
                return Ok(report);
            }
            report.folded += batch.folded;
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every statement the hub protocol runs, read from this module's
    /// source: each `const NAME: &str = "..."`.
    fn statements() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for source in [include_str!("mod.rs"), include_str!("history.rs")] {
            let mut rest = source;
            while let Some(at) = rest.find("const ") {
                rest = &rest[at + 6..];
                let Some((name, after)) = rest.split_once(": &str =") else {
                    continue;
                };
                if name.contains(char::is_whitespace) {
                    continue;
                }
                let after = after.trim_start();
                let Some(body) = after.strip_prefix('"') else { continue };
                let Some(end) = body.find("\";") else { continue };
                let sql = body[..end].split("\\\n").map(str::trim).collect::<Vec<_>>().join(" ");
                out.push((name.trim().to_owned(), sql));
            }
        }
        out
    }

    const TABLES: [&str; 5] = ["spaces", "changes", "replicas", "folded", "snapshots"];

    /// Every hub statement is keyed by space (issue 13, spec "Scale past one
    /// Postgres"): each table it reads, updates or deletes from is filtered
    /// on `space_id = $1`, and each row it inserts starts with `space_id`,
    /// so on a hub distributed by `space_id` each is routed to one node.
    #[test]
    fn every_hub_statement_is_keyed_by_space() {
        let all = statements();
        assert!(
            all.len() >= 20,
            "the statements were found: {:?}",
            all.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        for (name, sql) in &all {
            let lower = sql.to_lowercase();
            let words: Vec<&str> = lower
                .split(|c: char| c.is_whitespace() || c == '(' || c == ',')
                .filter(|w| !w.is_empty())
                .collect();
            let mut refs = 0;
            for pair in words.windows(2) {
                if matches!(pair[0], "from" | "join" | "update") && TABLES.contains(&pair[1]) {
                    refs += 1;
                }
            }
            for (i, pair) in words.windows(3).enumerate() {
                if pair[0] == "insert" && pair[1] == "into" && TABLES.contains(&pair[2]) {
                    assert_eq!(
                        words.get(i + 3),
                        Some(&"space_id"),
                        "{name}: an insert into {} starts with space_id",
                        pair[2]
                    );
                }
            }
            let keyed = lower.matches("space_id = $1").count();
            assert!(
                keyed >= refs,
                "{name} reads or writes {refs} hub tables but filters on space_id = $1 only {keyed} times: {sql}"
            );
            let writes = words
                .windows(2)
                .any(|p| matches!(p[0], "update" | "delete") && (TABLES.contains(&p[1]) || p[1] == "from"));
            if writes {
                assert!(
                    lower.contains(" where "),
                    "{name}: an update or delete without WHERE: {sql}"
                );
            }
        }
    }

    /// Every table of the hub schema is keyed by space first.
    #[test]
    fn every_hub_table_is_keyed_by_space_first() {
        for (version, sql) in super::super::MIGRATIONS {
            let lower = sql.to_lowercase();
            for table in lower.split("create table ").skip(1) {
                let name = table.split_whitespace().next().unwrap_or_default();
                let keyed = table.contains("primary key (space_id") || table.contains("space_id text primary key");
                assert!(
                    keyed,
                    "migration {version}: table {name} is not keyed by space_id first"
                );
                for unique in table.split("unique (").skip(1) {
                    assert!(
                        unique.starts_with("space_id"),
                        "migration {version}: a unique key of {name} does not start with space_id"
                    );
                }
            }
        }
    }
}
