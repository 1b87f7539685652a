//! The shared store for fleets: PostgreSQL, through the synchronous `postgres` client (it runs
//! its own small runtime on the writer thread, never on the proxy's).
//!
//! Several instances append to one chain: each batch takes a transaction-scoped advisory lock,
//! so the head read and the rows written are one step in a single order.

use super::{
    adopted_anchor, append, chain_start, hour_of_time, require_tables, split_list, tables_schema,
    tallies_before, AggRow, Filter, InventoryRow, Store, Tally, AGGREGATES_UPSERT, ANCHOR_SCHEMA,
    ANCHOR_SELECT, ANCHOR_UPSERT, CHAIN_HEAD, COLUMNS, FIRST_RECEIPT, INVENTORY_HOURS_PURGE,
    INVENTORY_HOURS_SCHEMA, INVENTORY_HOURS_UPSERT, INVENTORY_SCHEMA, INVENTORY_SELECT,
    INVENTORY_UPSERT, LAST_EXPIRED, PURGE_RECEIPTS, TALLIES_PURGE, TALLIES_SCHEMA, TALLY_INSERT,
};
use crate::receipts::{ChainStart, Receipt, GENESIS};
use postgres::{Client, NoTls};
use std::time::Duration;

/// The advisory lock key of the chain (any constant; "cgrc" in ASCII).
const CHAIN_LOCK: i64 = 0x6367_7263;

pub struct PgStore {
    client: Client,
}

fn err(e: postgres::Error) -> String {
    format!("postgres: {}", describe(&e))
}

/// What went wrong, in words an operator can act on. `postgres::Error` displays only its kind
/// ("db error", "error connecting to server"): the server's own message (with its detail, hint
/// and SQLSTATE) is in the error, and an I/O failure's reason in its source chain.
pub fn describe(e: &postgres::Error) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    if let Some(db) = e.as_db_error() {
        let _ = write!(text, "{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            let _ = write!(text, " (detail: {detail})");
        }
        if let Some(hint) = db.hint() {
            let _ = write!(text, " (hint: {hint})");
        }
        let _ = write!(text, " [SQLSTATE {}]", db.code().code());
        return text;
    }
    let _ = write!(text, "{e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let _ = write!(text, ": {c}");
        cause = c.source();
    }
    text
}

/// Where `cfg` connects, for a failed connection's message: host(s) and port(s), database and
/// user. Never the password (it is not part of it).
fn target(cfg: &postgres::Config) -> String {
    use postgres::config::Host;
    let ports = cfg.get_ports();
    // One port applies to every host; otherwise one each (libpq's rule), 5432 by default.
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut places: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if places.is_empty() {
        places = cfg
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| std::net::SocketAddr::new(*a, port(i)).to_string())
            .collect();
    }
    let user = cfg.get_user().unwrap_or("(none)");
    format!(
        "PostgreSQL at {} (database \"{}\", user \"{user}\")",
        places.join(", "),
        cfg.get_dbname().unwrap_or(user)
    )
}

/// A connection that failed: where to, and why (the server's message when it answered: no
/// such database or role, authentication failed, too many connections...).
fn connect_error(cfg: &postgres::Config, e: &postgres::Error) -> String {
    format!("cannot connect to {}: {}", target(cfg), describe(e))
}

impl PgStore {
    /// Connects (3 s at most) and creates the tables. Statements time out after 10 s: a stuck
    /// server costs the writer a bounded wait, and receipts queue (then drop, counted) meanwhile.
    pub fn connect(url: &str) -> Result<PgStore, String> {
        let mut cfg: postgres::Config = url
            .parse()
            .map_err(|e| format!("bad PostgreSQL url: {e}"))?;
        cfg.connect_timeout(Duration::from_secs(3))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options("-c statement_timeout=10000 -c lock_timeout=10000");
        let mut client = cfg.connect(NoTls).map_err(|e| connect_error(&cfg, &e))?;
        // Instances starting together would race on CREATE TABLE; the lock orders them.
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
            .map_err(err)?;
        tx.batch_execute(&tables_schema("BIGSERIAL PRIMARY KEY"))
            .map_err(err)?;
        tx.batch_execute(INVENTORY_SCHEMA).map_err(err)?;
        tx.batch_execute(INVENTORY_HOURS_SCHEMA).map_err(err)?;
        tx.batch_execute(TALLIES_SCHEMA).map_err(err)?;
        // The chain anchor; a store written before it adopts what its first receipt follows,
        // once, under the chain lock (every instance of a fleet agrees).
        if !has_anchor_table(&mut tx)? {
            tx.batch_execute(ANCHOR_SCHEMA).map_err(err)?;
            let first = tx
                .query_opt(FIRST_RECEIPT, &[])
                .map_err(err)?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
            if let Some((seq, sha256)) = adopted_anchor(first) {
                tx.execute(ANCHOR_UPSERT, &[&seq, &sha256, &now(), &"adopted"])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(PgStore { client })
    }

    /// Connects for reading (the CLI): every transaction is read-only and no table is
    /// created; a database without the tables is an error.
    pub fn connect_read_only(url: &str) -> Result<PgStore, String> {
        let mut cfg: postgres::Config = url
            .parse()
            .map_err(|e| format!("bad PostgreSQL url: {e}"))?;
        cfg.connect_timeout(Duration::from_secs(3))
            .options("-c statement_timeout=60000 -c default_transaction_read_only=on");
        let mut client = cfg.connect(NoTls).map_err(|e| connect_error(&cfg, &e))?;
        let tables: i64 = client
            .query_one("SELECT COUNT(to_regclass('receipts'))", &[])
            .map_err(err)?
            .get(0);
        let name = format!(
            "PostgreSQL database {}",
            cfg.get_dbname().unwrap_or("(default)")
        );
        require_tables(tables, &name)?;
        Ok(PgStore { client })
    }

    /// Direct access for tests.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

fn has_anchor_table(c: &mut impl postgres::GenericClient) -> Result<bool, String> {
    Ok(
        c.query_one("SELECT to_regclass('chain_anchor') IS NOT NULL", &[])
            .map_err(err)?
            .get(0),
    )
}

fn now() -> String {
    crate::receipts::format_time(std::time::SystemTime::now())
}

/// Receipts matching `f`, in chain order.
fn select_receipts(
    c: &mut impl postgres::GenericClient,
    f: &Filter,
) -> Result<Vec<(i64, Receipt)>, String> {
    let rows = c
        .query(
            &format!(
                "SELECT seq, {COLUMNS} FROM receipts WHERE ($1::text IS NULL OR subject = $1) \
                 AND ($2::text IS NULL OR site = $2) AND ($3::text IS NULL OR event_time >= $3) \
                 AND ($4::text IS NULL OR event_time < $4) ORDER BY seq"
            ),
            &[&f.subject, &f.site, &f.since, &f.until],
        )
        .map_err(err)?;
    Ok(rows.iter().map(row_to_receipt).collect())
}

fn row_to_receipt(row: &postgres::Row) -> (i64, Receipt) {
    let s = |i: usize| row.get::<_, String>(i);
    (
        row.get(0),
        Receipt {
            receipt_id: s(1),
            schema_version: s(2),
            event_time: s(3),
            site: s(4),
            subject: s(5),
            subject_type: s(6),
            event: s(7),
            source: s(8),
            granted: split_list(&s(9)),
            denied: split_list(&s(10)),
            signal_sha256: s(11),
            signal: row.get(12),
            policy_version: s(13),
            jurisdiction: row.get(14),
            path: s(15),
            client_network: s(16),
            instance: s(17),
            prev_sha256: s(18),
            sha256: s(19),
        },
    )
}

impl Store for PgStore {
    fn insert_receipts(&mut self, batch: Vec<Receipt>) -> Result<usize, String> {
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
            .map_err(err)?;
        let head: String = tx
            .query_one(CHAIN_HEAD, &[])
            .map_err(err)?
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| GENESIS.to_string());
        let last = tx
            .prepare(
                "SELECT receipt_id, granted FROM receipts WHERE site = $1 AND subject = $2 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .map_err(err)?;
        let ins = tx
            .prepare(&format!(
                "INSERT INTO receipts ({COLUMNS}, dedup_key) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
                 ON CONFLICT DO NOTHING"
            ))
            .map_err(err)?;
        // Both closures use the transaction: one at a time, through a RefCell.
        let tx_cell = std::cell::RefCell::new(&mut tx);
        let appended = append(
            batch,
            head,
            |r| {
                Ok(tx_cell
                    .borrow_mut()
                    .query_opt(&last, &[&r.site, &r.subject])
                    .map_err(err)?
                    .map(|row| (row.get(0), row.get(1))))
            },
            |r, key| {
                let granted = r.granted.join(",");
                let denied = r.denied.join(",");
                tx_cell
                    .borrow_mut()
                    .execute(
                        &ins,
                        &[
                            &r.receipt_id,
                            &r.schema_version,
                            &r.event_time,
                            &r.site,
                            &r.subject,
                            &r.subject_type,
                            &r.event,
                            &r.source,
                            &granted,
                            &denied,
                            &r.signal_sha256,
                            &r.signal,
                            &r.policy_version,
                            &r.jurisdiction,
                            &r.path,
                            &r.client_network,
                            &r.instance,
                            &r.prev_sha256,
                            &r.sha256,
                            &key,
                        ],
                    )
                    .map(|n| n == 1)
                    .map_err(err)
            },
        );
        let written = appended?;
        tx.commit().map_err(err)?;
        Ok(written)
    }

    fn add_tally(&mut self, t: &Tally) -> Result<bool, String> {
        let mut tx = self.client.transaction().map_err(err)?;
        // The id first: a second write of this tally waits here for the first to commit,
        // then adds nothing.
        if tx
            .execute(TALLY_INSERT, &[&t.id, &t.instance, &now()])
            .map_err(err)?
            == 0
        {
            return Ok(false);
        }
        let up = tx.prepare(AGGREGATES_UPSERT).map_err(err)?;
        for a in &t.aggregates {
            tx.execute(
                &up,
                &[
                    &a.hour,
                    &a.site,
                    &a.instance,
                    &a.metric,
                    &a.labels,
                    &a.value,
                ],
            )
            .map_err(err)?;
        }
        let up = tx.prepare(INVENTORY_UPSERT).map_err(err)?;
        let hourly = tx.prepare(INVENTORY_HOURS_UPSERT).map_err(err)?;
        for r in &t.inventory {
            tx.execute(
                &hourly,
                &[
                    &hour_of_time(&r.last_seen),
                    &r.site,
                    &r.name,
                    &r.instance,
                    &r.kept,
                    &r.stripped,
                ],
            )
            .map_err(err)?;
            tx.execute(
                &up,
                &[
                    &r.site,
                    &r.name,
                    &r.instance,
                    &r.category,
                    &r.origin,
                    &r.kept,
                    &r.stripped,
                    &r.first_seen,
                    &r.last_seen,
                ],
            )
            .map_err(err)?;
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
        let select = INVENTORY_SELECT.replace("$3 IS NULL", "$3::text IS NULL");
        let rows = self
            .client
            .query(&select, &[&since, &until, &site])
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| InventoryRow {
                site: r.get(0),
                name: r.get(1),
                instance: r.get(2),
                category: r.get(3),
                origin: r.get(4),
                kept: r.get(5),
                stripped: r.get(6),
                first_seen: r.get(7),
                last_seen: r.get(8),
            })
            .collect())
    }

    fn purge(&mut self, before: &str) -> Result<(), String> {
        // One transaction under the chain lock: the anchor moves exactly when the receipts it
        // stands for go, and no instance appends to the chain meanwhile (its head may be the
        // anchor, once every receipt has expired).
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
            .map_err(err)?;
        let last = tx
            .query_opt(LAST_EXPIRED, &[&before])
            .map_err(err)?
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
        if let Some((seq, sha256)) = last {
            tx.execute(PURGE_RECEIPTS, &[&seq]).map_err(err)?;
            tx.execute(ANCHOR_UPSERT, &[&seq, &sha256, &now(), &"retention"])
                .map_err(err)?;
        }
        tx.execute("DELETE FROM aggregates WHERE hour < $1", &[&before])
            .map_err(err)?;
        tx.execute("DELETE FROM inventory WHERE last_seen < $1", &[&before])
            .map_err(err)?;
        tx.execute(INVENTORY_HOURS_PURGE, &[&before]).map_err(err)?;
        tx.execute(TALLIES_PURGE, &[&tallies_before()])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn chain(&mut self) -> Result<(ChainStart, Vec<(i64, Receipt)>), String> {
        // REPEATABLE READ: one snapshot for both reads.
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(err)?;
        let table = has_anchor_table(&mut tx)?;
        let row = if table {
            tx.query_opt(ANCHOR_SELECT, &[])
                .map_err(err)?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        } else {
            None
        };
        let rows = select_receipts(&mut tx, &Filter::default())?;
        tx.commit().map_err(err)?;
        Ok((chain_start(table, row), rows))
    }

    fn receipts(&mut self, f: &Filter) -> Result<Vec<(i64, Receipt)>, String> {
        select_receipts(&mut self.client, f)
    }

    fn aggregates(
        &mut self,
        since: &str,
        until: &str,
        site: Option<&str>,
    ) -> Result<Vec<AggRow>, String> {
        let rows = self
            .client
            .query(
                "SELECT hour, site, instance, metric, labels, value FROM aggregates WHERE \
                 hour >= $1 AND hour < $2 AND ($3::text IS NULL OR site = $3) ORDER BY hour",
                &[&since, &until, &site],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| AggRow {
                hour: r.get(0),
                site: r.get(1),
                instance: r.get(2),
                metric: r.get(3),
                labels: r.get(4),
                value: r.get(5),
            })
            .collect())
    }
}
