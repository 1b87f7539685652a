//! The receipt stores: one table `receipts` (columns named as [`Receipt`]'s fields, plus `seq`,
//! the chain order, and `dedup_key`, the unique key that drops a duplicate), one table
//! `aggregates` (hourly counter deltas per site and instance; several instances add up), and
//! the cookie inventory: `inventory` (per site, name and instance: category, origin, lifetime
//! counts, first/last seen) and `inventory_hours` (its kept/stripped counts per hour, so a
//! report covers exactly its period); `chain_anchor`, where the chain starts after retention
//! ([`ANCHOR_SCHEMA`]); and `tallies`, the ids of the aggregate writes already counted
//! ([`TALLIES_SCHEMA`]).
//!
//! Used from the writer thread and the CLI only, never from a proxy worker. The CLI opens the
//! store read-only ([`open_read_only`]): a mistyped path must not create an empty store that
//! then "verifies".

pub mod postgres;
pub mod sqlite;

use super::Receipt;
use crate::config::receipts::StoreTarget;

/// One hourly aggregate: `value` added to the row (hour, site, instance, metric, labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggRow {
    /// The hour's start, `2026-11-28T19:00:00Z`.
    pub hour: String,
    pub site: String,
    pub instance: String,
    /// The Prometheus counter's name (`consentgate_requests_total`).
    pub metric: String,
    /// Its other labels, `name=value` joined by `,` in label order.
    pub labels: String,
    pub value: i64,
}

/// One cookie name of the inventory, as stored: `kept`/`stripped` are added to the row
/// (site, name, instance) like aggregates, the times widen its first/last seen. The same
/// counts are added to the row of the hour of `last_seen` in `inventory_hours`: the writer
/// sends the increases since its last write (every `aggregate_interval_seconds`), and they
/// happened before the latest sighting, so at most one interval's worth lands in the next hour
/// at an hour's turn, as with the aggregates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryRow {
    pub site: String,
    pub name: String,
    pub instance: String,
    pub category: String,
    /// Where the category came from (rule, catalogue, database, consent cookie, unknown).
    pub origin: String,
    pub kept: i64,
    pub stripped: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// One aggregate write of the writer: the counters' and the cookie inventory's increases since
/// its last write, under an id that makes it count once. The writer sends it again, unchanged,
/// until the store says it was written: a write whose answer was lost with the connection, or
/// one still running on a store thread given up on, must not add the same increases twice, and
/// a failed one must not lose them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// A random UUID (v4).
    pub id: String,
    pub instance: String,
    pub aggregates: Vec<AggRow>,
    pub inventory: Vec<InventoryRow>,
}

impl Tally {
    pub fn new(instance: &str, aggregates: Vec<AggRow>, inventory: Vec<InventoryRow>) -> Tally {
        Tally {
            id: uuid::Uuid::new_v4().to_string(),
            instance: instance.to_string(),
            aggregates,
            inventory,
        }
    }
}

/// Which receipts to list (times in the stored form, see [`super::parse_time`]).
#[derive(Default, Debug)]
pub struct Filter {
    pub subject: Option<String>,
    pub site: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

pub trait Store: Send {
    /// Appends receipts to the chain (a subject's repeated decision is skipped); returns how
    /// many were written.
    fn insert_receipts(&mut self, batch: Vec<Receipt>) -> Result<usize, String>;
    /// Adds a tally's aggregates and inventory rows, in one transaction that first records its
    /// id in `tallies`: `Ok(false)` when the id was there already (written before; nothing
    /// added again).
    fn add_tally(&mut self, tally: &Tally) -> Result<bool, String>;
    /// Inventory rows (per site, name, instance) counted in an hour of `since <= hour <
    /// until`: `kept`/`stripped` are that period's counts, `first_seen`/`last_seen` stay the
    /// lifetime ones (summed over instances by the caller).
    fn inventory(
        &mut self,
        since: &str,
        until: &str,
        site: Option<&str>,
    ) -> Result<Vec<InventoryRow>, String>;
    /// Retention: deletes the receipts older than `before` that lead the chain (see
    /// [`LAST_EXPIRED`]) and records the last one deleted as the chain anchor, in one
    /// transaction; and the aggregates and inventory rows older than it, and the tally ids
    /// older than [`TALLY_IDS_KEPT`].
    fn purge(&mut self, before: &str) -> Result<(), String>;
    /// The whole chain for `verify`, read in one snapshot: what its first receipt must follow
    /// ([`ANCHOR_SCHEMA`]) and every receipt in `seq` order. One snapshot, so a purge running
    /// meanwhile cannot pair an old anchor with the receipts after it.
    fn chain(&mut self) -> Result<(crate::receipts::ChainStart, Vec<(i64, Receipt)>), String>;
    /// Receipts in chain order, with their `seq`.
    fn receipts(&mut self, f: &Filter) -> Result<Vec<(i64, Receipt)>, String>;
    /// Aggregates with `since <= hour < until`, summed over instances by the caller.
    fn aggregates(
        &mut self,
        since: &str,
        until: &str,
        site: Option<&str>,
    ) -> Result<Vec<AggRow>, String>;
}

/// Opens (and creates the tables of) the configured store.
pub fn open(target: &StoreTarget) -> Result<Box<dyn Store>, String> {
    Ok(match target {
        StoreTarget::Sqlite(path) => Box::new(sqlite::SqliteStore::open(path)?),
        StoreTarget::Postgres(url) => Box::new(postgres::PgStore::connect(url)?),
    })
}

/// Opens the configured store for reading (the CLI): nothing is created, and a store that is
/// not there (no SQLite file, no tables) is an error, not an empty store.
pub fn open_read_only(target: &StoreTarget) -> Result<Box<dyn Store>, String> {
    Ok(match target {
        StoreTarget::Sqlite(path) => Box::new(sqlite::SqliteStore::open_read_only(path)?),
        StoreTarget::Postgres(url) => Box::new(postgres::PgStore::connect_read_only(url)?),
    })
}

/// Whether a read-only store has the `receipts` table (`n`: how many tables of that name).
pub(crate) fn require_tables(n: i64, store: &str) -> Result<(), String> {
    if n == 0 {
        return Err(format!(
            "{store} has no table `receipts`: it is not a consentgate receipt store, or no \
             consentgate instance has written to it yet (`consentgate run` creates the tables)"
        ));
    }
    Ok(())
}

/// The tables `receipts` and `aggregates`, the same in both stores but for `seq`, the chain
/// order, whose auto-increment each dialect spells its own way (SQLite reads BIGINT as
/// INTEGER).
pub(crate) fn tables_schema(seq: &str) -> String {
    TABLES_SCHEMA.replace("{seq}", seq)
}

const TABLES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS receipts (
    seq {seq},
    receipt_id TEXT NOT NULL UNIQUE,
    schema_version TEXT NOT NULL,
    event_time TEXT NOT NULL,
    site TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    granted TEXT NOT NULL,
    denied TEXT NOT NULL,
    signal_sha256 TEXT NOT NULL,
    signal TEXT,
    policy_version TEXT NOT NULL,
    jurisdiction TEXT,
    path TEXT NOT NULL,
    client_network TEXT NOT NULL,
    instance TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS receipts_subject ON receipts (site, subject, seq);
CREATE INDEX IF NOT EXISTS receipts_time ON receipts (event_time);
CREATE TABLE IF NOT EXISTS aggregates (
    hour TEXT NOT NULL,
    site TEXT NOT NULL,
    instance TEXT NOT NULL,
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (hour, site, instance, metric, labels)
);
";

/// The ids of the tallies written ([`Tally`]), the same in both stores. Inserted first in the
/// tally's transaction: of two writes of one tally (a resend racing a store thread given up
/// on), the second waits for the first's row and then adds nothing.
pub(crate) const TALLIES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tallies (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    written_at TEXT NOT NULL
);
";

/// Records a tally's id: `$1` id, `$2` instance, `$3` time; 0 rows changed: written before.
pub(crate) const TALLY_INSERT: &str = "INSERT INTO tallies (id, instance, written_at) VALUES \
    ($1, $2, $3) ON CONFLICT (id) DO NOTHING";

/// How long a tally id is remembered. A tally is sent again within seconds of the store
/// answering (the writer's backoff is at most 2 s), so an id is only needed while its write's
/// answer is outstanding; a day is ample, and keeps the table to about 1,440 rows per instance.
pub const TALLY_IDS_KEPT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Deletes the tally ids written before `$1` ([`tallies_before`]).
pub(crate) const TALLIES_PURGE: &str = "DELETE FROM tallies WHERE written_at < $1";

/// The cutoff of [`TALLIES_PURGE`]: [`TALLY_IDS_KEPT`] ago.
pub(crate) fn tallies_before() -> String {
    crate::receipts::format_time(std::time::SystemTime::now() - TALLY_IDS_KEPT)
}

/// The aggregates' upsert: `$1` hour, `$2` site, `$3` instance, `$4` metric, `$5` labels, `$6`
/// value (added to the row's).
pub(crate) const AGGREGATES_UPSERT: &str = "INSERT INTO aggregates (hour, site, instance, metric, \
    labels, value) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hour, site, instance, metric, \
    labels) DO UPDATE SET value = aggregates.value + excluded.value";

/// The inventory table, the same in both stores (TEXT times, BIGINT counts).
pub(crate) const INVENTORY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inventory (
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    instance TEXT NOT NULL,
    category TEXT NOT NULL,
    origin TEXT NOT NULL,
    kept BIGINT NOT NULL,
    stripped BIGINT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (site, name, instance)
);
";

/// The inventory's counts per hour (the hour of the row's `last_seen`, see [`InventoryRow`]),
/// the same in both stores.
pub(crate) const INVENTORY_HOURS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inventory_hours (
    hour TEXT NOT NULL,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    instance TEXT NOT NULL,
    kept BIGINT NOT NULL,
    stripped BIGINT NOT NULL,
    PRIMARY KEY (hour, site, name, instance)
);
";

/// Adds one inventory row's counts to its hour: `$1` hour, `$2` site, `$3` name, `$4`
/// instance, `$5` kept, `$6` stripped.
pub(crate) const INVENTORY_HOURS_UPSERT: &str = "INSERT INTO inventory_hours (hour, site, name, \
    instance, kept, stripped) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hour, site, name, \
    instance) DO UPDATE SET kept = inventory_hours.kept + excluded.kept, \
    stripped = inventory_hours.stripped + excluded.stripped";

/// Deletes the hourly inventory counts older than `$1` (retention, with the aggregates).
pub(crate) const INVENTORY_HOURS_PURGE: &str = "DELETE FROM inventory_hours WHERE hour < $1";

/// The start of the hour of a stored time (`2026-11-28T19:04:05.123Z` ->
/// `2026-11-28T19:00:00.000Z`, the form of the aggregates' `hour`).
pub(crate) fn hour_of_time(t: &str) -> String {
    match t.get(..13) {
        Some(h) if t.len() >= 20 => format!("{h}:00:00.000Z"),
        _ => t.to_string(),
    }
}

/// Upsert of one inventory row; `$n` placeholders (SQLite reads them as `?n` too).
pub(crate) const INVENTORY_UPSERT: &str = "INSERT INTO inventory (site, name, instance, \
    category, origin, kept, stripped, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, \
    $7, $8, $9) ON CONFLICT (site, name, instance) DO UPDATE SET category = excluded.category, \
    origin = excluded.origin, kept = inventory.kept + excluded.kept, \
    stripped = inventory.stripped + excluded.stripped, \
    first_seen = CASE WHEN excluded.first_seen < inventory.first_seen \
        THEN excluded.first_seen ELSE inventory.first_seen END, \
    last_seen = CASE WHEN excluded.last_seen > inventory.last_seen \
        THEN excluded.last_seen ELSE inventory.last_seen END";

/// The inventory rows of every (site, name) counted in an hour of the period (`$1 <= hour <
/// $2`, `$3` the site or NULL), each instance's with its counts in the period (0 when it did
/// not see the cookie then), so that first/last seen, category and origin are the cookie's
/// own over all instances.
pub(crate) const INVENTORY_SELECT: &str = "SELECT i.site, i.name, i.instance, i.category, \
    i.origin, CAST(COALESCE(SUM(h.kept), 0) AS BIGINT), \
    CAST(COALESCE(SUM(h.stripped), 0) AS BIGINT), i.first_seen, i.last_seen FROM inventory i \
    LEFT JOIN inventory_hours h ON h.site = i.site AND h.name = i.name \
        AND h.instance = i.instance AND h.hour >= $1 AND h.hour < $2 \
    WHERE ($3 IS NULL OR i.site = $3) AND EXISTS (SELECT 1 FROM inventory_hours e \
        WHERE e.site = i.site AND e.name = i.name AND e.hour >= $1 AND e.hour < $2) \
    GROUP BY i.site, i.name, i.instance, i.category, i.origin, i.first_seen, i.last_seen \
    ORDER BY i.site, i.name";

/// Retention of receipts: only a leading range of the chain goes, the receipts before (in `seq`
/// order) the first one still within retention. `event_time` is not in `seq` order (clocks of
/// a fleet differ, a writer batches), so deleting by time alone could take a receipt out of
/// the middle of the chain, and `verify` would then rightly call it tampering. A receipt out of
/// order waits for the ones before it to expire: none is deleted while within retention.
/// `$1` is the cutoff (SQLite reads it as `?1`); with every receipt expired, all go. This
/// selects the last receipt of that range (its `seq` and `sha256`: the new chain anchor);
/// [`PURGE_RECEIPTS`] then deletes up to it, in the same transaction as [`ANCHOR_UPSERT`].
pub(crate) const LAST_EXPIRED: &str = "SELECT seq, sha256 FROM receipts WHERE seq < COALESCE(\
    (SELECT MIN(seq) FROM receipts WHERE event_time >= $1), \
    (SELECT MAX(seq) + 1 FROM receipts)) ORDER BY seq DESC LIMIT 1";

/// Deletes the receipts up to `$1`, the `seq` [`LAST_EXPIRED`] found.
pub(crate) const PURGE_RECEIPTS: &str = "DELETE FROM receipts WHERE seq <= $1";

/// The chain anchor: one row, the last receipt retention deleted (`reason = 'retention'`), or,
/// in a store written before this table existed, what its first receipt followed when a writer
/// first opened it (`reason = 'adopted'`: taken on trust once). No row: retention has deleted
/// nothing and the chain starts from [`GENESIS`](crate::receipts::GENESIS). `verify` requires
/// the first remaining receipt to follow it, so deleting the first receipt(s) by hand shows.
pub(crate) const ANCHOR_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chain_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
";

/// Sets the anchor: `$1` seq, `$2` sha256, `$3` time, `$4` reason.
pub(crate) const ANCHOR_UPSERT: &str = "INSERT INTO chain_anchor (id, seq, sha256, updated_at, \
    reason) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, \
    sha256 = excluded.sha256, updated_at = excluded.updated_at, reason = excluded.reason";

pub(crate) const ANCHOR_SELECT: &str = "SELECT seq, sha256 FROM chain_anchor WHERE id = 1";

/// What the next receipt follows: the last one in the store, else the anchor (every receipt
/// expired: the chain goes on from the last one deleted), else NULL ([`GENESIS`]).
///
/// [`GENESIS`]: crate::receipts::GENESIS
pub(crate) const CHAIN_HEAD: &str = "SELECT COALESCE(\
    (SELECT sha256 FROM receipts ORDER BY seq DESC LIMIT 1), \
    (SELECT sha256 FROM chain_anchor WHERE id = 1))";

/// The first receipt, for [`adopted_anchor`].
pub(crate) const FIRST_RECEIPT: &str = "SELECT seq, prev_sha256 FROM receipts ORDER BY seq LIMIT 1";

/// A store written before the `chain_anchor` table: when its first receipt follows one already
/// deleted (by retention, before anchors were kept), that is the anchor from now on. Only
/// called when the table is created, so a later deletion is never adopted.
pub(crate) fn adopted_anchor(first: Option<(i64, String)>) -> Option<(i64, String)> {
    first
        .filter(|(_, prev)| prev != crate::receipts::GENESIS)
        .map(|(seq, prev)| (seq - 1, prev))
}

/// The chain start read from the anchor table (`table`: whether it exists).
pub(crate) fn chain_start(table: bool, row: Option<(i64, String)>) -> crate::receipts::ChainStart {
    use crate::receipts::ChainStart;
    match (table, row) {
        (false, _) => ChainStart::Unrecorded,
        (true, None) => ChainStart::Genesis,
        (true, Some((seq, sha256))) => ChainStart::After { seq, sha256 },
    }
}

/// The receipt columns in [`Receipt`]'s field order (after `seq`).
pub(crate) const COLUMNS: &str = "receipt_id, schema_version, event_time, site, subject, \
    subject_type, event, source, granted, denied, signal_sha256, signal, policy_version, \
    jurisdiction, path, client_network, instance, prev_sha256, sha256";

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// The chain logic both stores share, inside their transaction: `last_of_subject` gives the
/// subject's last (receipt_id, granted), `insert` writes one sealed receipt and says whether
/// the unique keys let it in: `dedup_key` (two instances racing) and `receipt_id` (a batch sent
/// again after its answer was lost with the connection: the writer retries until it hears).
pub(crate) fn append(
    batch: Vec<Receipt>,
    mut head: String,
    mut last_of_subject: impl FnMut(&Receipt) -> Result<Option<(String, String)>, String>,
    mut insert: impl FnMut(&Receipt, &str) -> Result<bool, String>,
) -> Result<usize, String> {
    let mut written = 0;
    for mut r in batch {
        let last = last_of_subject(&r)?;
        if let Some((_, granted)) = &last {
            if *granted == r.granted.join(",") {
                continue;
            }
            // Another instance (or this one before a restart) recorded the subject already:
            // for the store it is a change, not a first consent.
            if r.event == super::Event::Given.as_str() {
                r.event = if r.granted.len() == 1 {
                    super::Event::Withdrawn
                } else {
                    super::Event::Updated
                }
                .as_str()
                .to_string();
            }
        }
        let key = r.dedup_key(last.as_ref().map(|(id, _)| id.as_str()));
        r.seal(&head);
        if insert(&r, &key)? {
            head = r.sha256.clone();
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts::GENESIS;

    fn receipt(subject: &str, granted: &[&str]) -> Receipt {
        let id = format!("r-{subject}-{}", granted.len());
        Receipt {
            granted: granted.iter().map(|s| s.to_string()).collect(),
            instance: "b".into(),
            ..Receipt::sample(&id, subject, "2026-11-28T19:00:00.000Z")
        }
    }

    #[test]
    fn an_inventory_row_counts_in_the_hour_of_its_last_sighting() {
        assert_eq!(
            hour_of_time("2026-11-28T19:59:59.999Z"),
            "2026-11-28T19:00:00.000Z"
        );
        // The aggregates' hour of the same instant: one period boundary for both tables.
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_900_000);
        assert_eq!(
            hour_of_time(&crate::receipts::format_time(t)),
            crate::receipts::queue::hour_of(t)
        );
    }

    #[test]
    fn the_store_decides_duplicates_and_events_across_instances() {
        // Instance a recorded "v" granting analytics; instance b (which never saw "v") sends
        // a first-seen receipt with the same decision, then one withdrawing.
        let stored = ("r-a".to_string(), "necessary,analytics".to_string());
        let mut written = Vec::new();
        let n = append(
            vec![
                receipt("v", &["necessary", "analytics"]),
                receipt("v", &["necessary"]),
            ],
            GENESIS.to_string(),
            |_| Ok(Some(stored.clone())),
            |r, _| {
                written.push(r.clone());
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(n, 1, "the same decision is a duplicate");
        assert_eq!(written[0].event, "withdrawn");
        assert_eq!(written[0].prev_sha256, GENESIS);
    }
}
