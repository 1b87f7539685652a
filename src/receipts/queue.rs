//! The bounded queue between the proxy's workers and the writer thread, and the writer: it
//! batches receipts into the store, adds hourly aggregates (deltas of the Prometheus counters)
//! and enforces retention. A full queue drops and counts; a failing store drops the batch and
//! counts; nothing here ever waits on the request path.

use super::store::{self, AggRow, InventoryRow, Store};
use crate::config::receipts::ReceiptsConfig;
use crate::metrics;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

pub enum Msg {
    Receipt(Box<super::Receipt>),
    /// Write everything queued (and the aggregates) now, then answer.
    Flush(SyncSender<()>),
}

/// The sending side, held by the recorder.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Msg>,
}

impl Queue {
    /// Never blocks: a full queue drops the message (counted).
    pub fn push(&self, m: Msg) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::RECEIPTS_DROPPED
                    .with_label_values(&["queue_full"])
                    .inc();
            }
            Err(TrySendError::Disconnected(_)) => {
                metrics::RECEIPTS_DROPPED
                    .with_label_values(&["writer_stopped"])
                    .inc();
            }
        }
    }

    /// Asks the writer to write everything queued and waits at most `timeout` (SIGTERM).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

/// Reads the HMAC key, or creates it (32 random bytes, mode 0600) when the file is missing.
pub fn load_or_create_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(k) if k.len() >= 16 => return Ok(k),
        Ok(_) => {
            return Err(format!(
                "receipt key {} is shorter than 16 bytes",
                path.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read receipt key {}: {e}", path.display())),
    }
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| "no randomness for the receipt key".to_string())?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create receipt key {}: {e}", path.display()))?;
    f.write_all(&key)
        .map_err(|e| format!("cannot write receipt key {}: {e}", path.display()))?;
    Ok(key.to_vec())
}

/// Starts the writer thread and installs the recorder. The store is opened by the writer
/// (and reopened after a failure), so an unreachable store never stops the proxy starting.
pub fn start(cfg: &ReceiptsConfig) -> Result<Queue, String> {
    let key = load_or_create_key(&cfg.key_file)?;
    let (tx, rx) = sync_channel(cfg.queue_capacity);
    let queue = Queue { tx };
    let writer_cfg = cfg.clone();
    std::thread::Builder::new()
        .name("receipt writer".into())
        .spawn(move || Writer::new(writer_cfg).run(rx))
        .map_err(|e| format!("cannot start the receipt writer: {e}"))?;
    super::recorder::install(&key, cfg.store_signal, cfg.instance.clone(), queue.clone());
    Ok(queue)
}

struct Writer {
    cfg: ReceiptsConfig,
    store: Option<Box<dyn Store>>,
    /// No reconnect before this (a down store is tried once a second, not per batch).
    retry_at: Instant,
    aggregates: Aggregator,
    /// (site, name) -> the cumulative (kept, stripped) last written from the live inventory.
    inventory_written: HashMap<(String, String), (u64, u64)>,
    next_aggregate: Instant,
    next_purge: Instant,
}

impl Writer {
    fn new(cfg: ReceiptsConfig) -> Writer {
        let now = Instant::now();
        Writer {
            aggregates: Aggregator::new(cfg.instance.clone()),
            inventory_written: HashMap::new(),
            next_aggregate: now + cfg.aggregate_interval,
            next_purge: now,
            retry_at: now,
            store: None,
            cfg,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let mut batch = Vec::new();
            let mut acks = Vec::new();
            let mut stop = false;
            let deadline = Instant::now() + self.cfg.batch_interval;
            while batch.len() < self.cfg.batch_size {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Msg::Receipt(r)) => batch.push(*r),
                    Ok(Msg::Flush(ack)) => {
                        acks.push(ack);
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            let flushing = !acks.is_empty() || stop;
            if flushing {
                // Everything queued before the flush request, in batches.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Receipt(r) => batch.push(*r),
                        Msg::Flush(ack) => acks.push(ack),
                    }
                }
            }
            while !batch.is_empty() {
                let rest = batch.split_off(batch.len().min(self.cfg.batch_size));
                self.write(std::mem::replace(&mut batch, rest), flushing);
            }
            let now = Instant::now();
            if flushing || now >= self.next_aggregate {
                self.next_aggregate = now + self.cfg.aggregate_interval;
                self.write_aggregates(flushing);
                self.write_inventory(flushing);
            }
            if now >= self.next_purge {
                self.next_purge = now + Duration::from_secs(3600);
                self.purge();
            }
            for a in acks {
                let _ = a.send(());
            }
            if stop {
                return;
            }
        }
    }

    /// The store, (re)connected when needed; `None` while it is down.
    fn store(&mut self, now_anyway: bool) -> Option<&mut Box<dyn Store>> {
        if self.store.is_none() && (now_anyway || Instant::now() >= self.retry_at) {
            match store::open(&self.cfg.store) {
                Ok(s) => self.store = Some(s),
                Err(e) => {
                    metrics::RECEIPT_STORE_ERRORS
                        .with_label_values(&["connect"])
                        .inc();
                    tracing::warn!(error = %e, "receipt store unavailable");
                    self.retry_at = Instant::now() + Duration::from_secs(1);
                }
            }
        }
        self.store.as_mut()
    }

    fn write(&mut self, batch: Vec<super::Receipt>, now_anyway: bool) {
        let n = batch.len() as u64;
        let result = match self.store(now_anyway) {
            Some(s) => s.insert_receipts(batch),
            None => Err(String::new()),
        };
        match result {
            Ok(written) => metrics::RECEIPTS_WRITTEN.inc_by(written as u64),
            Err(e) => {
                if !e.is_empty() {
                    metrics::RECEIPT_STORE_ERRORS
                        .with_label_values(&["receipts"])
                        .inc();
                    tracing::warn!(error = %e, "receipts not written");
                    self.store = None;
                }
                metrics::RECEIPTS_DROPPED
                    .with_label_values(&["store_error"])
                    .inc_by(n);
            }
        }
    }

    fn write_aggregates(&mut self, now_anyway: bool) {
        let (rows, snapshot) = self.aggregates.deltas(SystemTime::now());
        if rows.is_empty() {
            return;
        }
        let Some(s) = self.store(now_anyway) else {
            return;
        };
        match s.add_aggregates(&rows) {
            // Only a written delta moves the baseline: a failed one is added next time.
            Ok(()) => self.aggregates.last = snapshot,
            Err(e) => {
                metrics::RECEIPT_STORE_ERRORS
                    .with_label_values(&["aggregates"])
                    .inc();
                tracing::warn!(error = %e, "aggregates not written");
                self.store = None;
            }
        }
    }

    /// The live cookie inventory's increases since the last write, added to table `inventory`.
    fn write_inventory(&mut self, now_anyway: bool) {
        let live = live_inventory();
        let mut rows = Vec::new();
        for c in &live {
            let key = (c.site.clone(), c.name.clone());
            let (k0, s0) = self.inventory_written.get(&key).copied().unwrap_or((0, 0));
            let (kept, stripped) = (c.kept.saturating_sub(k0), c.stripped.saturating_sub(s0));
            if kept == 0 && stripped == 0 && self.inventory_written.contains_key(&key) {
                continue;
            }
            rows.push(InventoryRow {
                site: c.site.clone(),
                name: c.name.clone(),
                instance: self.cfg.instance.clone(),
                category: c.category.clone(),
                origin: c.origin.clone(),
                kept: kept as i64,
                stripped: stripped as i64,
                first_seen: c.first_seen.clone(),
                last_seen: c.last_seen.clone(),
            });
        }
        if rows.is_empty() {
            return;
        }
        let Some(s) = self.store(now_anyway) else {
            return;
        };
        match s.add_inventory(&rows) {
            Ok(()) => {
                for c in live {
                    self.inventory_written
                        .insert((c.site, c.name), (c.kept, c.stripped));
                }
            }
            Err(e) => {
                metrics::RECEIPT_STORE_ERRORS
                    .with_label_values(&["aggregates"])
                    .inc();
                tracing::warn!(error = %e, "cookie inventory not written");
                self.store = None;
            }
        }
    }

    fn purge(&mut self) {
        let days = Duration::from_secs(86_400 * self.cfg.retention_days as u64);
        let before = super::format_time(SystemTime::now() - days);
        if let Some(s) = self.store(false) {
            if let Err(e) = s.purge(&before) {
                metrics::RECEIPT_STORE_ERRORS
                    .with_label_values(&["purge"])
                    .inc();
                tracing::warn!(error = %e, "receipt retention not applied");
                self.store = None;
            }
        }
    }
}

/// One cookie name of this process's live inventory, cumulative since start.
pub struct LiveCookie {
    pub site: String,
    pub name: String,
    pub category: String,
    pub origin: String,
    pub kept: u64,
    pub stripped: u64,
    /// UTC, in the stored form ([`super::format_time`]).
    pub first_seen: String,
    pub last_seen: String,
}

/// The live cookie inventory to persist (src/inventory.rs, cumulative counts since start;
/// `write_inventory` turns them into increases).
fn live_inventory() -> Vec<LiveCookie> {
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    crate::inventory::INVENTORY
        .snapshot()
        .into_iter()
        .map(|e| LiveCookie {
            category: e.category.as_str().to_string(),
            // Its `explain` spelling (`rule`, `catalogue`, ...); `none` for an unknown name.
            origin: e
                .origin
                .and_then(|o| serde_json::to_value(o).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "none".to_string()),
            kept: e.kept,
            stripped: e.stripped,
            first_seen: time(e.first_seen),
            last_seen: time(e.last_seen),
            site: e.site,
            name: e.name,
        })
        .collect()
}

/// (metric, site, other labels) -> counter value.
type Snapshot = HashMap<(String, String, String), f64>;

/// Hourly aggregates as deltas of the process's Prometheus counters since the last snapshot
/// written: they survive restarts, and the rows of several instances add up.
pub struct Aggregator {
    instance: String,
    last: Snapshot,
}

impl Aggregator {
    pub fn new(instance: String) -> Aggregator {
        Aggregator {
            instance,
            last: Snapshot::new(),
        }
    }

    /// The rows to add for the hour of `now`, and the snapshot they lead to.
    pub fn deltas(&self, now: SystemTime) -> (Vec<AggRow>, Snapshot) {
        let hour = hour_of(now);
        let mut snapshot = Snapshot::new();
        let mut rows = Vec::new();
        for family in prometheus::gather() {
            if family.get_field_type() != prometheus::proto::MetricType::COUNTER
                || !family.get_name().starts_with("consentgate_")
            {
                continue;
            }
            for m in family.get_metric() {
                let mut site = String::new();
                let mut labels = Vec::new();
                for l in m.get_label() {
                    if l.get_name() == "site" {
                        site = l.get_value().to_string();
                    } else {
                        labels.push(format!("{}={}", l.get_name(), l.get_value()));
                    }
                }
                let key = (family.get_name().to_string(), site, labels.join(","));
                let value = m.get_counter().get_value();
                let before = self.last.get(&key).copied().unwrap_or(0.0);
                // A counter that went down was reset (unknown-cookie labels on reload).
                let delta = if value >= before {
                    value - before
                } else {
                    value
                };
                if delta >= 1.0 {
                    rows.push(AggRow {
                        hour: hour.clone(),
                        site: key.1.clone(),
                        instance: self.instance.clone(),
                        metric: key.0.clone(),
                        labels: key.2.clone(),
                        value: delta as i64,
                    });
                }
                snapshot.insert(key, value);
            }
        }
        (rows, snapshot)
    }
}

/// The start of the hour, in the stored time form.
pub fn hour_of(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    super::format_time(std::time::UNIX_EPOCH + Duration::from_secs(secs - secs % 3600))
}
