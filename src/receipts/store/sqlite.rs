//! The embedded store: one SQLite file in WAL mode (readers never wait for the writer).

use super::{
    adopted_anchor, append, chain_start, hour_of_time, require_tables, split_list, tables_schema,
    tallies_before, AggRow, Filter, InventoryRow, Store, Tally, AGGREGATES_UPSERT, ANCHOR_SCHEMA,
    ANCHOR_SELECT, ANCHOR_UPSERT, CHAIN_HEAD, COLUMNS, FIRST_RECEIPT, INVENTORY_HOURS_PURGE,
    INVENTORY_HOURS_SCHEMA, INVENTORY_HOURS_UPSERT, INVENTORY_SCHEMA, INVENTORY_SELECT,
    INVENTORY_UPSERT, LAST_EXPIRED, PURGE_RECEIPTS, TALLIES_PURGE, TALLIES_SCHEMA, TALLY_INSERT,
};
use crate::receipts::{ChainStart, Receipt, GENESIS};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

pub struct SqliteStore {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        let mut conn = Connection::open(path)
            .map_err(|e| format!("cannot open receipts database {}: {e}", path.display()))?;
        // WAL: one file plus its log; readers (the CLI) never block the writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(&tables_schema("INTEGER PRIMARY KEY AUTOINCREMENT"))
            .map_err(err)?;
        conn.execute_batch(INVENTORY_SCHEMA).map_err(err)?;
        conn.execute_batch(INVENTORY_HOURS_SCHEMA).map_err(err)?;
        conn.execute_batch(TALLIES_SCHEMA).map_err(err)?;
        // The chain anchor, created (and, in a store written before it, adopted) under the
        // write lock: two processes opening one file agree on it.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        if !has_anchor_table(&tx)? {
            tx.execute_batch(ANCHOR_SCHEMA).map_err(err)?;
            let first = tx
                .query_row(FIRST_RECEIPT, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(err)?;
            if let Some((seq, sha256)) = adopted_anchor(first) {
                tx.execute(ANCHOR_UPSERT, params![seq, sha256, now(), "adopted"])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(SqliteStore { conn })
    }

    /// Opens an existing store for reading (the CLI): a missing file is an error, never a
    /// new empty database, and nothing is written to it.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, String> {
        if !path.is_file() {
            return Err(format!(
                "the receipts database {} does not exist",
                path.display()
            ));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open receipts database {}: {e}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'receipts'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
        require_tables(tables, &path.display().to_string())?;
        Ok(SqliteStore { conn })
    }

    /// Direct access for tests (e.g. editing a row to check `verify`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn has_anchor_table(conn: &Connection) -> Result<bool, String> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'chain_anchor'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(err)
}

fn now() -> String {
    crate::receipts::format_time(std::time::SystemTime::now())
}

fn row_to_receipt(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Receipt)> {
    let s = |i: usize| row.get::<_, String>(i);
    Ok((
        row.get(0)?,
        Receipt {
            receipt_id: s(1)?,
            schema_version: s(2)?,
            event_time: s(3)?,
            site: s(4)?,
            subject: s(5)?,
            subject_type: s(6)?,
            event: s(7)?,
            source: s(8)?,
            granted: split_list(&s(9)?),
            denied: split_list(&s(10)?),
            signal_sha256: s(11)?,
            signal: row.get(12)?,
            policy_version: s(13)?,
            jurisdiction: row.get(14)?,
            path: s(15)?,
            client_network: s(16)?,
            instance: s(17)?,
            prev_sha256: s(18)?,
            sha256: s(19)?,
        },
    ))
}

/// Receipts matching `f`, in chain order.
fn select_receipts(conn: &Connection, f: &Filter) -> Result<Vec<(i64, Receipt)>, String> {
    let mut st = conn
        .prepare(&format!(
            "SELECT seq, {COLUMNS} FROM receipts WHERE (?1 IS NULL OR subject = ?1) AND \
             (?2 IS NULL OR site = ?2) AND (?3 IS NULL OR event_time >= ?3) AND \
             (?4 IS NULL OR event_time < ?4) ORDER BY seq"
        ))
        .map_err(err)?;
    let rows = st
        .query_map(params![f.subject, f.site, f.since, f.until], row_to_receipt)
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

impl Store for SqliteStore {
    fn insert_receipts(&mut self, batch: Vec<Receipt>) -> Result<usize, String> {
        // IMMEDIATE: the write lock first, so the chain head read is the one extended.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let head: String = tx
            .query_row(CHAIN_HEAD, [], |r| r.get::<_, Option<String>>(0))
            .map_err(err)?
            .unwrap_or_else(|| GENESIS.to_string());
        let written = {
            let mut last = tx
                .prepare_cached(
                    "SELECT receipt_id, granted FROM receipts WHERE site = ?1 AND subject = ?2 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .map_err(err)?;
            let mut ins = tx
                .prepare_cached(&format!(
                    "INSERT INTO receipts ({COLUMNS}, dedup_key) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                     ?17, ?18, ?19, ?20) ON CONFLICT DO NOTHING"
                ))
                .map_err(err)?;
            append(
                batch,
                head,
                |r| {
                    last.query_row(params![r.site, r.subject], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(err)
                },
                |r, key| {
                    ins.execute(params![
                        r.receipt_id,
                        r.schema_version,
                        r.event_time,
                        r.site,
                        r.subject,
                        r.subject_type,
                        r.event,
                        r.source,
                        r.granted.join(","),
                        r.denied.join(","),
                        r.signal_sha256,
                        r.signal,
                        r.policy_version,
                        r.jurisdiction,
                        r.path,
                        r.client_network,
                        r.instance,
                        r.prev_sha256,
                        r.sha256,
                        key,
                    ])
                    .map(|n| n == 1)
                    .map_err(err)
                },
            )?
        };
        tx.commit().map_err(err)?;
        Ok(written)
    }

    fn add_tally(&mut self, t: &Tally) -> Result<bool, String> {
        // IMMEDIATE: the write lock first, so the id check and the rows are one step.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        if tx
            .execute(TALLY_INSERT, params![t.id, t.instance, now()])
            .map_err(err)?
            == 0
        {
            return Ok(false);
        }
        {
            let mut up = tx.prepare_cached(AGGREGATES_UPSERT).map_err(err)?;
            for a in &t.aggregates {
                up.execute(params![
                    a.hour, a.site, a.instance, a.metric, a.labels, a.value
                ])
                .map_err(err)?;
            }
            let mut up = tx.prepare_cached(INVENTORY_UPSERT).map_err(err)?;
            let mut hourly = tx.prepare_cached(INVENTORY_HOURS_UPSERT).map_err(err)?;
            for r in &t.inventory {
                hourly
                    .execute(params![
                        hour_of_time(&r.last_seen),
                        r.site,
                        r.name,
                        r.instance,
                        r.kept,
                        r.stripped
                    ])
                    .map_err(err)?;
                up.execute(params![
                    r.site,
                    r.name,
                    r.instance,
                    r.category,
                    r.origin,
                    r.kept,
                    r.stripped,
                    r.first_seen,
                    r.last_seen
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(true)
    }

    fn inventory(
        &mut self,
        since: &str,
        until: &str,
        site: Option<&str>,
    ) -> Result<Vec<InventoryRow>, String> {
        let mut st = self.conn.prepare(INVENTORY_SELECT).map_err(err)?;
        let rows = st
            .query_map(params![since, until, site], |r| {
                Ok(InventoryRow {
                    site: r.get(0)?,
                    name: r.get(1)?,
                    instance: r.get(2)?,
                    category: r.get(3)?,
                    origin: r.get(4)?,
                    kept: r.get(5)?,
                    stripped: r.get(6)?,
                    first_seen: r.get(7)?,
                    last_seen: r.get(8)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    fn purge(&mut self, before: &str) -> Result<(), String> {
        // One transaction: the anchor moves exactly when the receipts it stands for go.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let last: Option<(i64, String)> = tx
            .query_row(LAST_EXPIRED, [before], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(err)?;
        if let Some((seq, sha256)) = last {
            tx.execute(PURGE_RECEIPTS, [seq]).map_err(err)?;
            tx.execute(ANCHOR_UPSERT, params![seq, sha256, now(), "retention"])
                .map_err(err)?;
        }
        tx.execute("DELETE FROM aggregates WHERE hour < ?1", [before])
            .map_err(err)?;
        tx.execute("DELETE FROM inventory WHERE last_seen < ?1", [before])
            .map_err(err)?;
        tx.execute(INVENTORY_HOURS_PURGE, [before]).map_err(err)?;
        tx.execute(TALLIES_PURGE, [tallies_before()]).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn chain(&mut self) -> Result<(ChainStart, Vec<(i64, Receipt)>), String> {
        // A read transaction: in WAL mode, one snapshot for both reads.
        let tx = self.conn.transaction().map_err(err)?;
        let table = has_anchor_table(&tx)?;
        let row = if table {
            tx.query_row(ANCHOR_SELECT, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(err)?
        } else {
            None
        };
        let rows = select_receipts(&tx, &Filter::default())?;
        tx.commit().map_err(err)?;
        Ok((chain_start(table, row), rows))
    }

    fn receipts(&mut self, f: &Filter) -> Result<Vec<(i64, Receipt)>, String> {
        select_receipts(&self.conn, f)
    }

    fn aggregates(
        &mut self,
        since: &str,
        until: &str,
        site: Option<&str>,
    ) -> Result<Vec<AggRow>, String> {
        let mut st = self
            .conn
            .prepare(
                "SELECT hour, site, instance, metric, labels, value FROM aggregates WHERE \
                 hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR site = ?3) ORDER BY hour",
            )
            .map_err(err)?;
        let rows = st
            .query_map(params![since, until, site], |r| {
                Ok(AggRow {
                    hour: r.get(0)?,
                    site: r.get(1)?,
                    instance: r.get(2)?,
                    metric: r.get(3)?,
                    labels: r.get(4)?,
                    value: r.get(5)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new empty directory `NAME-PID` under the temp dir and the database path in it (the
    /// test removes the directory at its end).
    fn fresh_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.db");
        (dir, path)
    }

    /// A receipt of `subject` at `time`, for the chain tests.
    fn at(id: &str, subject: &str, time: &str) -> Receipt {
        Receipt::sample(id, subject, time)
    }

    #[test]
    fn retention_deletes_only_a_leading_range_of_the_chain_and_it_still_verifies() {
        let (dir, path) = fresh_db("cg-sqlite-skew");
        let mut s = SqliteStore::open(&path).unwrap();
        // Chain order (seq) is not time order: instance b's clock is behind, so its receipt
        // (seq 3) is stamped before the one written ahead of it (seq 2).
        let rows = [
            at("1", "s1", "2020-01-01T00:00:00.000Z"),
            at("2", "s2", "2025-06-01T00:00:00.000Z"),
            at("3", "s3", "2020-01-02T00:00:00.000Z"),
            at("4", "s4", "2025-06-02T00:00:00.000Z"),
        ];
        assert_eq!(s.insert_receipts(rows.to_vec()).unwrap(), 4);
        s.purge("2025-01-01T00:00:00.000Z").unwrap();
        let left = s.receipts(&Filter::default()).unwrap();
        let ids: Vec<&str> = left.iter().map(|(_, r)| r.receipt_id.as_str()).collect();
        // Receipt 3 is past retention but waits for receipt 2 to expire: taking it out of
        // the middle would break the chain.
        assert_eq!(ids, ["2", "3", "4"]);
        // The first remaining receipt follows the one deleted, which the anchor records.
        assert_ne!(left[0].1.prev_sha256, crate::receipts::GENESIS);
        let (start, chain) = s.chain().unwrap();
        assert_eq!(chain, left);
        assert!(
            matches!(start, ChainStart::After { seq: 1, .. }),
            "{start:?}"
        );
        assert_eq!(
            crate::receipts::verify_chain(&start, left.clone()),
            (3, vec![])
        );
        let last_4 = left[2].1.sha256.clone();
        // Once receipt 2 expires too, 2 and 3 go together.
        s.purge("2025-06-01T12:00:00.000Z").unwrap();
        let left = s.receipts(&Filter::default()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.receipt_id, "4");
        let start = s.chain().unwrap().0;
        assert_eq!(crate::receipts::verify_chain(&start, left), (1, vec![]));
        // A purge with nothing to delete leaves the anchor as it was.
        s.purge("2000-01-01T00:00:00.000Z").unwrap();
        assert_eq!(s.chain().unwrap().0, start);
        // Every receipt expired: all go, and the next one goes on from the last deleted.
        s.purge("2030-01-01T00:00:00.000Z").unwrap();
        assert!(s.receipts(&Filter::default()).unwrap().is_empty());
        s.insert_receipts(vec![at("5", "s5", "2030-01-02T00:00:00.000Z")])
            .unwrap();
        let left = s.receipts(&Filter::default()).unwrap();
        assert_eq!(left[0].1.prev_sha256, last_4);
        let start = s.chain().unwrap().0;
        assert_eq!(crate::receipts::verify_chain(&start, left), (1, vec![]));
        // A batch sent again (its answer lost with the connection) writes nothing twice.
        assert_eq!(
            s.insert_receipts(vec![at("5", "s5", "2030-01-02T00:00:00.000Z")])
                .unwrap(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store written before the `chain_anchor` table, whose retention had already deleted
    /// its first receipts: the first writer to open it adopts what its first receipt follows,
    /// and verify holds from then on.
    #[test]
    fn a_store_without_an_anchor_adopts_its_first_receipt_once() {
        let (dir, path) = fresh_db("cg-sqlite-adopt");
        let mut s = SqliteStore::open(&path).unwrap();
        let rows = [
            at("1", "s1", "2020-01-01T00:00:00.000Z"),
            at("2", "s2", "2025-06-01T00:00:00.000Z"),
        ];
        s.insert_receipts(rows.to_vec()).unwrap();
        // As an older consentgate left it: receipt 1 purged, no anchor table.
        s.connection()
            .execute_batch("DELETE FROM receipts WHERE seq = 1; DROP TABLE chain_anchor;")
            .unwrap();
        assert_eq!(s.chain().unwrap().0, ChainStart::Unrecorded);
        drop(s);
        let mut s = SqliteStore::open(&path).unwrap();
        let left = s.receipts(&Filter::default()).unwrap();
        let start = s.chain().unwrap().0;
        assert!(
            matches!(&start, ChainStart::After { seq: 1, sha256 } if *sha256 == left[0].1.prev_sha256),
            "{start:?}"
        );
        assert_eq!(crate::receipts::verify_chain(&start, left), (1, vec![]));
        // Adopted once only: a deletion after that is found.
        s.insert_receipts(vec![at("3", "s3", "2025-06-02T00:00:00.000Z")])
            .unwrap();
        s.connection()
            .execute("DELETE FROM receipts WHERE seq = 2", [])
            .unwrap();
        drop(s);
        let mut s = SqliteStore::open(&path).unwrap();
        let start = s.chain().unwrap().0;
        let (_, p) = crate::receipts::verify_chain(&start, s.receipts(&Filter::default()).unwrap());
        assert!(
            p[0].problem.starts_with("first receipt(s) missing"),
            "{p:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_deletes_old_receipts_and_aggregates_and_duplicates_are_refused() {
        let (dir, path) = fresh_db("cg-sqlite");
        let mut s = SqliteStore::open(&path).unwrap();
        let mk = |id: &str, subject: &str, time: &str, granted: &[&str]| Receipt {
            granted: granted.iter().map(|g| g.to_string()).collect(),
            ..Receipt::sample(id, subject, time)
        };
        let old = mk("1", "old", "2020-01-01T00:00:00.000Z", &["necessary"]);
        let new = mk("2", "new", "2026-11-28T00:00:00.000Z", &["necessary"]);
        // The same subject and decision again (another instance, a forgotten cache): refused.
        let again = mk("3", "new", "2026-11-28T00:00:01.000Z", &["necessary"]);
        assert_eq!(s.insert_receipts(vec![old, new, again]).unwrap(), 2);
        let agg = |hour: &str| AggRow {
            hour: hour.into(),
            site: "shop".into(),
            instance: "a".into(),
            metric: "consentgate_requests_total".into(),
            labels: "consent=none".into(),
            value: 2,
        };
        let tally = |aggregates, inventory| Tally::new("a", aggregates, inventory);
        s.add_tally(&tally(
            vec![
                agg("2020-01-01T00:00:00.000Z"),
                agg("2026-11-28T00:00:00.000Z"),
            ],
            vec![],
        ))
        .unwrap();
        let again = tally(vec![agg("2026-11-28T00:00:00.000Z")], vec![]);
        assert!(s.add_tally(&again).unwrap());
        // A tally sent again (its answer lost, or written meanwhile by a store thread given
        // up on) adds nothing.
        assert!(!s.add_tally(&again).unwrap());
        s.purge("2025-01-01T00:00:00.000Z").unwrap();
        let left = s.receipts(&Filter::default()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.subject, "new");
        let rows = s
            .aggregates("2000-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z", None)
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].value, 4, "upserts add");
        // The cookie inventory of two instances: counts add, first/last seen widen, and the
        // report shows one row per (site, name).
        let inv = |instance: &str, kept: i64, first: &str, last: &str| InventoryRow {
            site: "shop".into(),
            name: "_ga".into(),
            instance: instance.into(),
            category: "analytics".into(),
            origin: "rule".into(),
            kept,
            stripped: 1,
            first_seen: first.into(),
            last_seen: last.into(),
        };
        s.add_tally(&tally(
            vec![],
            vec![inv(
                "a",
                2,
                "2026-11-28T10:00:00.000Z",
                "2026-11-28T11:00:00.000Z",
            )],
        ))
        .unwrap();
        s.add_tally(&tally(
            vec![],
            vec![inv(
                "a",
                3,
                "2026-11-28T12:00:00.000Z",
                "2026-11-28T12:00:00.000Z",
            )],
        ))
        .unwrap();
        s.add_tally(&tally(
            vec![],
            vec![inv(
                "b",
                4,
                "2026-11-28T09:00:00.000Z",
                "2026-11-28T09:30:00.000Z",
            )],
        ))
        .unwrap();
        let req = crate::report::ReportRequest {
            since: "2026-11-28T00:00:00.000Z",
            until: "2026-11-29T00:00:00.000Z",
            site: None,
        };
        let v = crate::report::build(&mut s, &req).unwrap();
        let inv = &v["inventory"];
        assert_eq!(inv.as_array().unwrap().len(), 1);
        assert_eq!(inv[0]["kept"], 9);
        assert_eq!(inv[0]["stripped"], 3);
        assert_eq!(inv[0]["first_seen"], "2026-11-28T09:00:00.000Z");
        assert_eq!(inv[0]["last_seen"], "2026-11-28T12:00:00.000Z");
        assert!(crate::report::html(&v).contains("<td>_ga</td><td>analytics</td><td>rule</td>"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
