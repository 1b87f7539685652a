//! The bounded queue between the proxy's workers and the writer thread, and the writer: it
//! batches receipts into the store, adds hourly aggregates (deltas of the Prometheus counters)
//! and enforces retention.
//!
//! Nothing here waits on the request path, and the writer never waits on the store: a store
//! thread does the store's work, one job at a time, and answers through the queue. A store that
//! fails or stops answering costs no receipt: the writer keeps them, oldest first, and retries
//! with backoff. What bounds memory is the queue's capacity, counted over the receipts queued
//! and held by the writer alike: only a full queue drops a receipt (counted), and the recorder
//! then forgets it, so the visitor's next request tries again.

use super::store::{self, AggRow, InventoryRow, Store, Tally};
use super::Receipt;
use crate::config::receipts::ReceiptsConfig;
use crate::metrics;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A store job that has not answered after this long is given up: the store thread is left to
/// end on its own and a new one (with a new connection) takes over. Longer than the stores'
/// own limits (PostgreSQL: 3 s to connect, 10 s per statement; SQLite: 5 s busy wait), so it
/// only fires when those cannot: a PostgreSQL server that is frozen or whose host vanished
/// mid-statement (the kernel's retransmissions take minutes to give up).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(15);
/// The first retry after a failure; each further failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Short enough that a store back from a failover is used within seconds; a refused connect
/// costs little.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The writer looks at its timers at least this often.
const MAX_WAIT: Duration = Duration::from_secs(1);

pub enum Msg {
    Receipt(Box<Receipt>),
    /// Write everything queued and held (and the aggregates) now; answer `true` once written,
    /// `false` when `deadline` passes first.
    Flush {
        ack: SyncSender<bool>,
        deadline: Instant,
    },
    /// A store thread's answer to its job.
    Done {
        generation: u64,
        outcome: Outcome,
    },
}

/// What a store job came to: the receipts written, or the operation that failed and why.
pub type Outcome = Result<usize, (Op, String)>;

/// The store operations, as counted in `consentgate_receipt_store_errors_total{op}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Connect,
    Receipts,
    /// A tally: the aggregates and the inventory, written in one transaction.
    Aggregates,
    Purge,
    /// A job that did not answer within [`STORE_TIMEOUT`].
    Timeout,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Receipts => "receipts",
            Op::Aggregates => "aggregates",
            Op::Purge => "purge",
            Op::Timeout => "timeout",
        }
    }
}

enum Job {
    Receipts(Vec<Receipt>),
    Tally(Arc<Tally>),
    /// Retention: delete what is older than this time (stored form).
    Purge(String),
}

impl Job {
    fn op(&self) -> Op {
        match self {
            Job::Receipts(_) => Op::Receipts,
            Job::Tally(..) => Op::Aggregates,
            Job::Purge(_) => Op::Purge,
        }
    }
}

/// Opens the store (a new connection each time it is called).
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Store>, String> + Send + Sync>;

/// The sending side, held by the recorder.
#[derive(Clone)]
pub struct Queue {
    tx: Sender<Msg>,
    /// Receipts queued or held by the writer; a receipt leaves when it is written.
    held: Arc<AtomicUsize>,
    capacity: usize,
}

impl Queue {
    /// Never blocks. `false`: the receipt was dropped (counted), the queue being full
    /// (`queue_capacity` receipts not yet written) or the writer gone.
    pub fn push(&self, r: Receipt) -> bool {
        if self.held.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.held.fetch_sub(1, Ordering::AcqRel);
            metrics::RECEIPTS_DROPPED
                .with_label_values(&["queue_full"])
                .inc();
            return false;
        }
        if self.tx.send(Msg::Receipt(Box::new(r))).is_err() {
            self.held.fetch_sub(1, Ordering::AcqRel);
            metrics::RECEIPTS_DROPPED
                .with_label_values(&["writer_stopped"])
                .inc();
            return false;
        }
        true
    }

    /// Receipts queued or held, not yet written.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// Asks the writer to write everything queued and waits at most `timeout` (SIGTERM):
    /// `true` when everything was written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        if self.tx.send(Msg::Flush { ack, deadline }).is_err() {
            return false;
        }
        done.recv_timeout(timeout).unwrap_or(false)
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

/// Starts the writer thread and installs the recorder. The store is opened by the store thread
/// (and reopened after a failure), so an unreachable store never stops the proxy starting.
pub fn start(cfg: &ReceiptsConfig) -> Result<Queue, String> {
    let key = load_or_create_key(&cfg.key_file)?;
    let target = cfg.store.clone();
    let queue = start_with(cfg, Arc::new(move || store::open(&target)), STORE_TIMEOUT)?;
    super::recorder::install(&key, cfg.store_signal, cfg.instance.clone(), queue.clone());
    Ok(queue)
}

/// The writer with its store opened by `open` and jobs given up after `timeout` (tests give a
/// store of their own and a short time).
pub fn start_with(cfg: &ReceiptsConfig, open: Opener, timeout: Duration) -> Result<Queue, String> {
    let (tx, rx) = channel();
    let held = Arc::new(AtomicUsize::new(0));
    let queue = Queue {
        tx: tx.clone(),
        held: held.clone(),
        capacity: cfg.queue_capacity,
    };
    let writer = Writer::new(cfg.clone(), open, tx, held, timeout)?;
    std::thread::Builder::new()
        .name("receipt writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| format!("cannot start the receipt writer: {e}"))?;
    Ok(queue)
}

/// A store thread: runs jobs in order on its own connection (opened when needed, dropped after
/// a failure) and answers each through the queue, tagged with its generation.
fn spawn_store(open: Opener, generation: u64, tx: Sender<Msg>) -> Result<Sender<Job>, String> {
    let (jobs, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("receipt store".into())
        .spawn(move || {
            let mut store: Option<Box<dyn Store>> = None;
            for job in rx {
                let op = job.op();
                let outcome = catch_unwind(AssertUnwindSafe(|| run_job(&open, &mut store, job)))
                    .unwrap_or_else(|_| {
                        store = None;
                        Err((op, "the store panicked".to_string()))
                    });
                if tx
                    .send(Msg::Done {
                        generation,
                        outcome,
                    })
                    .is_err()
                {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the receipt store thread: {e}"))?;
    Ok(jobs)
}

fn run_job(open: &Opener, store: &mut Option<Box<dyn Store>>, job: Job) -> Outcome {
    let s = match store {
        Some(s) => s,
        None => store.insert(open().map_err(|e| (Op::Connect, e))?),
    };
    let outcome = match job {
        Job::Receipts(batch) => s.insert_receipts(batch).map_err(|e| (Op::Receipts, e)),
        Job::Tally(tally) => s
            .add_tally(&tally)
            .map(|_| 0)
            .map_err(|e| (Op::Aggregates, e)),
        Job::Purge(before) => s.purge(&before).map(|()| 0).map_err(|e| (Op::Purge, e)),
    };
    if outcome.is_err() {
        // The next job reconnects: after a failover the old connection is useless.
        *store = None;
    }
    outcome
}

/// The job the store thread is working on, with what the writer needs when it answers.
enum InFlight {
    /// The receipts sent (put back, oldest first, if they were not written).
    Receipts(Vec<Receipt>),
    /// The writer's [`Unwritten`] tally.
    Tally,
    Purge,
}

/// A tally computed and not yet known to be written. It is sent again, unchanged (its id
/// makes a second write add nothing), until a store thread answers that it was written; only
/// then do the baselines move to what it was computed from. So whatever fails (a refused
/// connection, a statement error, a timeout, a store thread given up on that still writes it
/// later), its increases are counted once, and those since wait for the next tally.
struct Unwritten {
    tally: Arc<Tally>,
    /// The counters the aggregates were computed from: the next baseline.
    snapshot: Snapshot,
    /// The live inventory the inventory rows were computed from.
    live: Vec<LiveCookie>,
    /// Computed after the flush waiting now asked (writing it answers that flush).
    for_flush: bool,
}

struct Busy {
    job: InFlight,
    since: Instant,
    /// Counted as a timeout already (it is counted once).
    timed_out: bool,
}

struct Writer {
    cfg: ReceiptsConfig,
    open: Opener,
    /// For new store threads' answers.
    tx: Sender<Msg>,
    held: Arc<AtomicUsize>,
    timeout: Duration,
    store: Sender<Job>,
    /// The current store thread's; answers of older ones (given up) are told apart by it.
    generation: u64,
    /// Store threads given up on that have not answered yet: at most one, so a store that
    /// hangs every connection costs two threads, not one per timeout.
    abandoned: usize,
    /// Receipts taken from the queue, oldest first, not yet sent to the store.
    pending: VecDeque<Receipt>,
    /// Since when `pending` has been waiting (the batch interval runs from it).
    pending_since: Option<Instant>,
    busy: Option<Busy>,
    /// Failed jobs in a row; the next one waits until `retry_at`.
    failures: u32,
    retry_at: Instant,
    flushes: Vec<(SyncSender<bool>, Instant)>,
    /// A flush also writes the aggregates, after the receipts.
    tally_for_flush: bool,
    unwritten: Option<Unwritten>,
    aggregates: Aggregator,
    /// (site, name) -> the cumulative (kept, stripped) last written from the live inventory.
    inventory_written: HashMap<(String, String), (u64, u64)>,
    next_aggregate: Instant,
    next_purge: Instant,
}

impl Writer {
    fn new(
        cfg: ReceiptsConfig,
        open: Opener,
        tx: Sender<Msg>,
        held: Arc<AtomicUsize>,
        timeout: Duration,
    ) -> Result<Writer, String> {
        let now = Instant::now();
        Ok(Writer {
            store: spawn_store(open.clone(), 0, tx.clone())?,
            generation: 0,
            abandoned: 0,
            open,
            tx,
            held,
            timeout,
            pending: VecDeque::new(),
            pending_since: None,
            busy: None,
            failures: 0,
            retry_at: now,
            flushes: Vec::new(),
            tally_for_flush: false,
            unwritten: None,
            aggregates: Aggregator::new(cfg.instance.clone()),
            inventory_written: HashMap::new(),
            next_aggregate: now + cfg.aggregate_interval,
            next_purge: now,
            cfg,
        })
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let now = Instant::now();
            self.check_timeout(now);
            self.dispatch(now);
            self.answer_flushes(now);
            let wait = self.next_wake(now).saturating_duration_since(now);
            match rx.recv_timeout(wait) {
                Ok(Msg::Receipt(r)) => {
                    self.pending_since.get_or_insert(now);
                    self.pending.push_back(*r);
                }
                Ok(Msg::Flush { ack, deadline }) => {
                    self.flushes.push((ack, deadline));
                    self.tally_for_flush = true;
                    // A tally computed before this flush lacks what was counted since.
                    if let Some(u) = &mut self.unwritten {
                        u.for_flush = false;
                    }
                }
                Ok(Msg::Done {
                    generation,
                    outcome,
                }) => self.done(generation, outcome),
                Err(RecvTimeoutError::Timeout) => {}
                // Every sender gone: nobody can queue or wait for anything any more.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// The earliest time something may be due.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + MAX_WAIT;
        let mut at = |t: Instant| wake = wake.min(t);
        for (_, deadline) in &self.flushes {
            at(*deadline);
        }
        match &self.busy {
            // Its answer wakes the writer; otherwise its timeout.
            Some(b) if !b.timed_out => at(b.since + self.timeout),
            Some(_) => {}
            None if self.failures > 0 => at(self.retry_at),
            None => {
                at(self.next_aggregate);
                at(self.next_purge);
                if let Some(since) = self.pending_since {
                    at(since + self.cfg.batch_interval);
                }
            }
        }
        wake
    }

    /// Gives the store thread its next job, if one is due and it is free.
    fn dispatch(&mut self, now: Instant) {
        if self.busy.is_some() || (self.failures > 0 && now < self.retry_at) {
            return;
        }
        let flushing = !self.flushes.is_empty();
        if now >= self.next_purge {
            self.next_purge = now + Duration::from_secs(3600);
            let days = Duration::from_secs(86_400 * self.cfg.retention_days as u64);
            let before = super::format_time(SystemTime::now() - days);
            self.send(now, InFlight::Purge, Job::Purge(before));
            return;
        }
        let for_flush = flushing && self.tally_for_flush && self.pending.is_empty();
        if now >= self.next_aggregate || for_flush {
            self.next_aggregate = now + self.cfg.aggregate_interval;
            if self.unwritten.is_none() {
                let (rows, snapshot) = self.aggregates.deltas(SystemTime::now());
                let live = live_inventory();
                let inventory = self.inventory_rows(&live);
                if !rows.is_empty() || !inventory.is_empty() {
                    self.unwritten = Some(Unwritten {
                        tally: Arc::new(Tally::new(&self.cfg.instance, rows, inventory)),
                        snapshot,
                        live,
                        for_flush,
                    });
                }
            }
            if let Some(u) = &self.unwritten {
                let job = Job::Tally(u.tally.clone());
                self.send(now, InFlight::Tally, job);
                return;
            }
            if for_flush {
                self.tally_for_flush = false;
            }
        }
        let due = match self.pending_since {
            None => false,
            Some(since) => {
                self.pending.len() >= self.cfg.batch_size
                    || flushing
                    || self.failures > 0
                    || now >= since + self.cfg.batch_interval
            }
        };
        if due {
            let n = self.pending.len().min(self.cfg.batch_size);
            let batch: Vec<Receipt> = self.pending.drain(..n).collect();
            self.pending_since = (!self.pending.is_empty()).then_some(now);
            self.send(now, InFlight::Receipts(batch.clone()), Job::Receipts(batch));
        }
    }

    fn send(&mut self, now: Instant, job: InFlight, work: Job) {
        self.busy = Some(Busy {
            job,
            since: now,
            timed_out: false,
        });
        if let Err(e) = self.store.send(work) {
            // The store thread has gone (it cannot, short of a bug): start another.
            let op = e.0.op();
            self.replace_store();
            self.done(
                self.generation,
                Err((op, "the store thread had stopped".into())),
            );
        }
    }

    /// The store thread's answer to the job in flight (or to one given up on).
    fn done(&mut self, generation: u64, outcome: Outcome) {
        if generation != self.generation {
            // A store thread given up on has ended. Receipts it wrote after all stay written:
            // sent again, the store skips them (a receipt_id is written once).
            self.abandoned = self.abandoned.saturating_sub(1);
            if let Ok(n) = outcome {
                metrics::RECEIPTS_WRITTEN.inc_by(n as u64);
            }
            return;
        }
        let Some(busy) = self.busy.take() else {
            return;
        };
        let now = Instant::now();
        match (busy.job, outcome) {
            (InFlight::Receipts(batch), Ok(written)) => {
                metrics::RECEIPTS_WRITTEN.inc_by(written as u64);
                self.held.fetch_sub(batch.len(), Ordering::AcqRel);
                self.succeeded();
            }
            (InFlight::Receipts(batch), Err(e)) => {
                self.put_back(batch, now);
                self.failed(e, now);
            }
            (InFlight::Tally, Ok(_)) => {
                // Written (now, or before by a store thread given up on): the baselines move.
                if let Some(u) = self.unwritten.take() {
                    self.aggregates.last = u.snapshot;
                    for c in u.live {
                        self.inventory_written
                            .insert((c.site, c.name), (c.kept, c.stripped));
                    }
                    if u.for_flush {
                        self.tally_for_flush = false;
                    }
                }
                self.succeeded();
            }
            // Not known to be written: it stays unwritten and is sent again at the next tick.
            (InFlight::Tally, Err(e)) => self.failed(e, now),
            (InFlight::Purge, Ok(_)) => self.succeeded(),
            (InFlight::Purge, Err(e)) => self.failed(e, now),
        }
    }

    /// Receipts not written go back to the front, in their order.
    fn put_back(&mut self, batch: Vec<Receipt>, now: Instant) {
        for r in batch.into_iter().rev() {
            self.pending.push_front(r);
        }
        if !self.pending.is_empty() {
            self.pending_since.get_or_insert(now);
        }
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "receipt store available again; held receipts are being written"
            );
        }
        self.failures = 0;
    }

    fn failed(&mut self, (op, error): (Op, String), now: Instant) {
        metrics::RECEIPT_STORE_ERRORS
            .with_label_values(&[op.label()])
            .inc();
        if self.failures == 0 {
            tracing::warn!(
                op = op.label(),
                error = %error,
                held = self.held.load(Ordering::Acquire),
                "receipt store unavailable; receipts are kept and retried"
            );
        } else {
            tracing::debug!(op = op.label(), error = %error, "receipt store still unavailable");
        }
        self.failures = self.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_BACKOFF);
        self.retry_at = now + backoff;
    }

    /// A job the store thread has not answered within the timeout: counted once; the thread
    /// is given up (when none is already) and its receipts go to a new one.
    fn check_timeout(&mut self, now: Instant) {
        let Some(busy) = &mut self.busy else {
            return;
        };
        if now < busy.since + self.timeout {
            return;
        }
        if !busy.timed_out {
            busy.timed_out = true;
            metrics::RECEIPT_STORE_ERRORS
                .with_label_values(&[Op::Timeout.label()])
                .inc();
            tracing::warn!(
                seconds = self.timeout.as_secs_f64(),
                "receipt store not answering"
            );
        }
        if self.abandoned > 0 {
            // One given up already and still stuck: wait for either to answer.
            return;
        }
        if self.replace_store() {
            self.abandoned += 1;
            // Its receipts go to the new thread, and a tally stays unwritten and is sent to it
            // again: written twice they are not, a receipt_id and a tally id being stored
            // once, whichever thread gets there first.
            if let Some(Busy {
                job: InFlight::Receipts(batch),
                ..
            }) = self.busy.take()
            {
                self.put_back(batch, now);
            }
            self.failures = self.failures.saturating_add(1);
            self.retry_at = now;
        }
    }

    /// Starts a new store thread in place of the current one (which ends after its job).
    fn replace_store(&mut self) -> bool {
        match spawn_store(self.open.clone(), self.generation + 1, self.tx.clone()) {
            Ok(jobs) => {
                self.generation += 1;
                self.store = jobs;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "receipt store thread not replaced");
                false
            }
        }
    }

    /// Answers the flushes: `true` once nothing is left to write, `false` at their deadline.
    fn answer_flushes(&mut self, now: Instant) {
        if self.flushes.is_empty() {
            return;
        }
        if self.pending.is_empty() && self.busy.is_none() && !self.tally_for_flush {
            for (ack, _) in self.flushes.drain(..) {
                let _ = ack.send(true);
            }
            return;
        }
        let held = self.held.load(Ordering::Acquire);
        self.flushes.retain(|(ack, deadline)| {
            if now < *deadline {
                return true;
            }
            tracing::warn!(held, "receipt flush timed out; receipts not written");
            let _ = ack.send(false);
            false
        });
    }

    /// The live cookie inventory's increases since the last write, as rows of table
    /// `inventory`.
    fn inventory_rows(&self, live: &[LiveCookie]) -> Vec<InventoryRow> {
        let mut rows = Vec::new();
        for c in live {
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
        rows
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::receipts::StoreTarget;
    use std::sync::Mutex;

    /// A store in memory that can refuse (as a stopped server does) or hang (as a frozen one).
    #[derive(Default)]
    struct Shared {
        written: Vec<String>,
        /// The tallies written, each id once (as the real stores' `tallies` table).
        tallies: Vec<Tally>,
        refuse: bool,
        /// Connections opened; the first `hanging` of them never answer until released.
        opens: usize,
        hanging: usize,
        /// Only their tally writes hang (the start-up purge goes through).
        hang_only_tallies: bool,
        released: bool,
        /// Operations that hung, and went on once released.
        unhung: usize,
        attempts: usize,
        /// The next tally is written but its answer is lost (the connection dropped after
        /// the commit).
        lose_tally_answer: bool,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Shared>>);

    struct FakeStore {
        shared: Fake,
        hangs: bool,
    }

    impl Fake {
        fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
            f(&mut self.0.lock().unwrap())
        }

        fn opener(&self) -> Opener {
            let fake = self.clone();
            Arc::new(move || {
                let hangs = fake.with(|s| {
                    s.opens += 1;
                    if s.refuse {
                        s.attempts += 1;
                        return Err("connection refused".to_string());
                    }
                    Ok(s.opens <= s.hanging)
                })?;
                Ok(Box::new(FakeStore {
                    shared: fake.clone(),
                    hangs,
                }) as Box<dyn Store>)
            })
        }

        fn written(&self) -> Vec<String> {
            self.with(|s| s.written.clone())
        }
    }

    impl FakeStore {
        fn op(&self) -> Result<(), String> {
            let hangs = self.hangs && !self.shared.with(|s| s.hang_only_tallies);
            self.run(hangs, |_| Ok(()))
        }

        /// Hangs (when `hangs`) until released, then refuses, or does `then` (under the same
        /// lock as the counting, so a test that sees `unhung` sees what it did).
        fn run<T>(
            &self,
            hangs: bool,
            then: impl FnOnce(&mut Shared) -> Result<T, String>,
        ) -> Result<T, String> {
            let mut waited = false;
            while hangs && !self.shared.with(|s| s.released) {
                waited = true;
                std::thread::sleep(Duration::from_millis(5));
            }
            self.shared.with(|s| {
                s.unhung += waited as usize;
                s.attempts += 1;
                if s.refuse {
                    Err("server closed the connection".to_string())
                } else {
                    then(s)
                }
            })
        }
    }

    impl Store for FakeStore {
        fn insert_receipts(&mut self, batch: Vec<Receipt>) -> Result<usize, String> {
            self.op()?;
            // As the real stores: a receipt_id already written is skipped.
            Ok(self.shared.with(|s| {
                let before = s.written.len();
                for r in batch {
                    if !s.written.contains(&r.receipt_id) {
                        s.written.push(r.receipt_id);
                    }
                }
                s.written.len() - before
            }))
        }
        fn add_tally(&mut self, tally: &Tally) -> Result<bool, String> {
            self.run(self.hangs, |s| {
                let new = !s.tallies.iter().any(|t| t.id == tally.id);
                if new {
                    s.tallies.push(tally.clone());
                }
                if std::mem::take(&mut s.lose_tally_answer) {
                    return Err("server closed the connection".to_string());
                }
                Ok(new)
            })
        }
        fn inventory(
            &mut self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<Vec<InventoryRow>, String> {
            Ok(vec![])
        }
        fn purge(&mut self, _: &str) -> Result<(), String> {
            self.op()
        }
        fn chain(&mut self) -> Result<(crate::receipts::ChainStart, Vec<(i64, Receipt)>), String> {
            Ok((crate::receipts::ChainStart::Genesis, vec![]))
        }
        fn receipts(&mut self, _: &store::Filter) -> Result<Vec<(i64, Receipt)>, String> {
            Ok(vec![])
        }
        fn aggregates(&mut self, _: &str, _: &str, _: Option<&str>) -> Result<Vec<AggRow>, String> {
            Ok(vec![])
        }
    }

    fn cfg(queue_capacity: usize) -> ReceiptsConfig {
        ReceiptsConfig {
            store: StoreTarget::Sqlite("unused.db".into()),
            key_file: "unused.key".into(),
            retention_days: 400,
            store_signal: false,
            queue_capacity,
            batch_size: 2,
            batch_interval: Duration::from_millis(10),
            aggregate_interval: Duration::from_secs(3600),
            instance: "t".into(),
        }
    }

    fn receipt(n: usize) -> Receipt {
        Receipt {
            instance: "t".into(),
            ..Receipt::sample(
                &format!("r{n}"),
                &format!("s{n}"),
                "2026-11-28T19:00:00.000Z",
            )
        }
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| format!("r{n}")).collect()
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_refusing_store_loses_no_receipt_and_only_a_full_queue_drops() {
        let fake = Fake::default();
        fake.with(|s| s.refuse = true);
        let q = start_with(&cfg(5), fake.opener(), Duration::from_secs(10)).unwrap();
        let pushed: Vec<bool> = (0..8).map(|n| q.push(receipt(n))).collect();
        assert_eq!(pushed, [true, true, true, true, true, false, false, false]);
        // Retried with backoff (100 ms, 200 ms, ...), never dropped.
        wait_for("three attempts", || fake.with(|s| s.attempts) >= 3);
        assert_eq!(q.held(), 5);
        assert!(fake.written().is_empty());
        // The store is back: everything held is written, in order, and there is room again.
        fake.with(|s| s.refuse = false);
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(fake.written(), ids(0..5));
        assert_eq!(q.held(), 0);
        assert!(q.push(receipt(8)));
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(fake.written().last().unwrap(), "r8");
    }

    #[test]
    fn a_store_that_stops_answering_is_replaced_and_a_flush_is_bounded() {
        let fake = Fake::default();
        // The first connection hangs on its first statement (the start-up purge).
        fake.with(|s| s.hanging = 1);
        let q = start_with(&cfg(100), fake.opener(), Duration::from_millis(300)).unwrap();
        for n in 0..3 {
            assert!(q.push(receipt(n)));
        }
        let t = Instant::now();
        assert!(
            !q.flush(Duration::from_millis(100)),
            "nothing can be written yet"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the flush waits at most its time"
        );
        // Past the timeout the hung connection is given up and a new one writes them.
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(fake.written(), ids(0..3));
        assert_eq!(fake.with(|s| s.opens), 2);
        // The given-up thread ends when its statement does; what it wrote is not doubled.
        fake.with(|s| s.released = true);
        assert!(q.push(receipt(3)));
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(fake.written(), ids(0..4));
    }

    /// A counter of these tests' own, in the registry the aggregates are read from: each test
    /// counts under its own label, and checks that its store got exactly that many.
    static TALLIED: std::sync::LazyLock<prometheus::IntCounterVec> =
        std::sync::LazyLock::new(|| {
            prometheus::register_int_counter_vec!(
                "consentgate_test_tallied_total",
                "counted by the receipt queue tests",
                &["test"]
            )
            .unwrap()
        });

    /// What `fake` was given of `test`'s count, over every tally written.
    fn tallied(fake: &Fake, test: &str) -> i64 {
        let labels = format!("test={test}");
        fake.with(|s| {
            s.tallies
                .iter()
                .flat_map(|t| &t.aggregates)
                .filter(|a| a.metric == "consentgate_test_tallied_total" && a.labels == labels)
                .map(|a| a.value)
                .sum()
        })
    }

    /// Tallies every 20 ms.
    fn aggregating() -> ReceiptsConfig {
        ReceiptsConfig {
            aggregate_interval: Duration::from_millis(20),
            ..cfg(100)
        }
    }

    #[test]
    fn aggregates_counted_while_the_store_refuses_connections_are_written_once_it_is_back() {
        let fake = Fake::default();
        fake.with(|s| s.refuse = true);
        let counter = TALLIED.with_label_values(&["refused"]);
        counter.inc_by(5);
        let q = start_with(&aggregating(), fake.opener(), Duration::from_secs(10)).unwrap();
        // The start-up purge, then tallies, each refused at connect.
        wait_for("tallies refused", || fake.with(|s| s.attempts) >= 3);
        counter.inc_by(3);
        wait_for("more tallies refused", || fake.with(|s| s.attempts) >= 5);
        assert_eq!(tallied(&fake, "refused"), 0);
        fake.with(|s| s.refuse = false);
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(tallied(&fake, "refused"), 8, "every count, once");
    }

    #[test]
    fn a_tally_whose_answer_was_lost_is_sent_again_and_counted_once() {
        let fake = Fake::default();
        fake.with(|s| s.lose_tally_answer = true);
        let counter = TALLIED.with_label_values(&["lost-answer"]);
        counter.inc_by(7);
        let q = start_with(&aggregating(), fake.opener(), Duration::from_secs(10)).unwrap();
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(tallied(&fake, "lost-answer"), 7);
        counter.inc_by(2);
        assert!(q.flush(Duration::from_secs(5)));
        assert_eq!(tallied(&fake, "lost-answer"), 9);
    }

    #[test]
    fn a_tally_on_store_threads_given_up_on_counts_once_whichever_writes_it() {
        let fake = Fake::default();
        // The first two connections hang in their tally: the first is given up on, its
        // tally goes to the second, which hangs too; both then go on at once.
        fake.with(|s| {
            s.hanging = 2;
            s.hang_only_tallies = true;
        });
        let counter = TALLIED.with_label_values(&["given-up"]);
        counter.inc_by(4);
        let q = start_with(&aggregating(), fake.opener(), Duration::from_millis(300)).unwrap();
        wait_for("the tally sent to a second connection", || {
            fake.with(|s| s.opens) == 2
        });
        counter.inc_by(1);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(tallied(&fake, "given-up"), 0);
        fake.with(|s| s.released = true);
        counter.inc_by(2);
        assert!(q.flush(Duration::from_secs(5)));
        // The given-up thread's write is done too (it may end after the flush).
        wait_for("both hung writes done", || fake.with(|s| s.unhung) == 2);
        assert_eq!(tallied(&fake, "given-up"), 7, "every count, once");
    }
}
