//! Reloading the configuration without a restart (SIGHUP and the admin `POST /reload`).
//!
//! Building a [`Runtime`] reads files, resolves upstream names and compiles the adblock engines:
//! with EasyList and EasyPrivacy that is a few hundred milliseconds of CPU (docs/BENCHMARKS.md,
//! "Reload"). It runs on a thread started for that reload, at a lower CPU priority, never on an
//! async worker: the runtime that asked (the admin listener, one thread of its own, or the
//! SIGHUP task) keeps serving meanwhile, and where the reload and a proxy worker compete for a
//! core the worker wins. The new runtime is then swapped in whole (arc-swap): a request sees the
//! old configuration or the new one, never a mix.
//!
//! **Two reloads never race.** They take turns: a reload asked for while another one is in
//! progress waits for it, then reads the file itself. It is not coalesced into the running one,
//! because it may have been sent for an edit made after that one read the file. The wait is
//! bounded ([`WAIT_FOR_TURN`]); past it the caller hears "busy" and nothing changes.
//!
//! **The old runtime is freed on the reload thread too, not on a proxy worker.** A request in
//! flight holds its site (`Arc<Site>`); whoever lets go of the last reference frees the site's
//! adblock engines, which takes milliseconds with large lists. So after the swap and the answer
//! the reload thread waits (polling, at most [`RETIRE_WAIT`]) until the old runtime and each of
//! its sites are no longer shared, and drops them itself. Past the bound the last request to
//! finish frees what is left.

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a reload waits for the one in progress to finish.
pub const WAIT_FOR_TURN: Duration = Duration::from_secs(60);

/// How long the old runtime is kept for requests still using it to finish, so that it is
/// freed off the proxy workers.
pub const RETIRE_WAIT: Duration = Duration::from_secs(30);

/// How much lower the reload thread's CPU priority is than the workers' (nice increment).
const RELOAD_NICE: libc::c_int = 10;

/// How often the retiring thread looks whether requests have let go of the old runtime.
const RETIRE_POLL: Duration = Duration::from_millis(20);

/// One reload at a time, across the admin and SIGHUP runtimes (a tokio mutex works across
/// runtimes: it needs no driver).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The file does not load; the message says why (`FILE:LINE: ...`).
    Refused(String),
    /// Another reload has run for longer than [`WAIT_FOR_TURN`].
    Busy,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Refused(e) => f.write_str(e),
            ReloadError::Busy => write!(
                f,
                "another reload has been in progress for over {} s",
                WAIT_FOR_TURN.as_secs()
            ),
        }
    }
}

/// Re-reads the configuration file and swaps it in whole, or keeps the current one and says why.
/// Listen addresses, the admin address, threads and max_connections are fixed at start; a
/// change to them is reported as needing a restart (or a graceful upgrade) and the rest is
/// applied. The work runs on a thread of its own; this only waits for its answer.
pub async fn reload(current: &Arc<ArcSwap<Runtime>>) -> Result<String, ReloadError> {
    let Ok(_turn) = tokio::time::timeout(WAIT_FOR_TURN, TURN.lock()).await else {
        tracing::warn!("configuration reload not started: another one is still in progress");
        return Err(ReloadError::Busy);
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    let current = current.clone();
    let thread = std::thread::Builder::new()
        .name("consentgate-reload".to_string())
        .spawn(move || {
            lower_priority();
            match swap_in(&current) {
                Ok((message, old)) => {
                    let _ = answer.send(Ok(message));
                    // After answering: nobody waits for requests still holding the old one.
                    retire(old, RETIRE_WAIT);
                }
                Err(e) => {
                    let _ = answer.send(Err(e));
                }
            }
        });
    let failed = match thread {
        Ok(_) => match answered.await {
            Ok(result) => return result,
            // The thread ended without answering: a panic while building (its message is on
            // stderr). Availability first: the running configuration stays.
            Err(_) => "building the new configuration failed (panic)".to_string(),
        },
        Err(e) => format!("cannot start the reload thread: {e}"),
    };
    crate::metrics::RELOADS.with_label_values(&["error"]).inc();
    tracing::error!(error = %failed, "configuration reload failed; keeping the current one");
    Err(ReloadError::Refused(failed))
}

/// Lowers the calling thread's CPU priority (nice +10): where the reload and a proxy worker
/// compete for a core, the worker wins, and the reload takes the idle time. On Linux the nice
/// value belongs to the thread, and this thread exists only for one reload.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: nice() only changes the calling thread's nice value; a failure (already at the
    // floor) changes nothing and is harmless.
    unsafe {
        libc::nice(RELOAD_NICE);
    }
}

/// Loads the file, swaps the new runtime in and returns the message and the old runtime.
/// Blocking: runs on the reload thread.
fn swap_in(current: &ArcSwap<Runtime>) -> Result<(String, Arc<Runtime>), ReloadError> {
    let path = current.load().config_path.clone();
    let new = match Runtime::load(&path) {
        Ok(new) => new,
        Err(e) => {
            crate::metrics::RELOADS.with_label_values(&["error"]).inc();
            tracing::error!(error = %e, "configuration reload failed; keeping the current one");
            return Err(ReloadError::Refused(e));
        }
    };
    let note = restart_note(&current.load(), &new);
    let sites = new.sites.len();
    // `swap`, not `store`: the old runtime comes back to be freed here, not wherever the last
    // reference happens to be dropped.
    let old = current.swap(Arc::new(new));
    // Unknown-cookie labels admitted under the old configuration go with it.
    crate::metrics::reset_unknown_cookie_labels();
    crate::metrics::RELOADS.with_label_values(&["ok"]).inc();
    tracing::info!(path = %path.display(), sites, "configuration reloaded");
    Ok((
        format!("reloaded {} ({sites} sites){note}", path.display()),
        old,
    ))
}

/// What a reload cannot apply: settings the listeners and runtimes were built with.
fn restart_note(old: &Runtime, new: &Runtime) -> &'static str {
    if new.proxy.listen != old.proxy.listen
        || new.proxy.admin != old.proxy.admin
        || new.proxy.threads != old.proxy.threads
        || new.proxy.connections.max_connections != old.proxy.connections.max_connections
    {
        "; listen/admin/threads/max_connections changes take effect after a restart"
    } else {
        ""
    }
}

/// Drops the old runtime on this thread once no request shares it or its sites any more,
/// waiting at most `wait`. `Arc::try_unwrap` makes "no longer shared" and taking it one step,
/// so a request cannot pick it up in between (the swap already hides it from new ones).
fn retire(old: Arc<Runtime>, wait: Duration) {
    let started = Instant::now();
    let deadline = started + wait;
    let Some(mut runtime) = sole_owner(old, deadline) else {
        tracing::debug!("previous configuration still in use; the last request frees it");
        return;
    };
    let sites: Vec<_> = std::mem::take(&mut runtime.sites)
        .into_iter()
        .filter_map(|site| sole_owner(site, deadline))
        .collect();
    let waited = started.elapsed();
    drop(sites);
    drop(runtime);
    tracing::debug!(
        waited_ms = waited.as_millis() as u64,
        freed_us = (started.elapsed() - waited).as_micros() as u64,
        "previous configuration freed"
    );
}

/// `Some(value)` once `shared` is the last reference to it; `None` (letting go of it) when the
/// deadline passes first.
fn sole_owner<T>(mut shared: Arc<T>, deadline: Instant) -> Option<T> {
    loop {
        match Arc::try_unwrap(shared) {
            Ok(value) => return Some(value),
            Err(still) if Instant::now() < deadline => {
                shared = still;
                std::thread::sleep(RETIRE_POLL);
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retiring_waits_for_the_last_user_and_frees_on_its_own_thread() {
        struct Marks(Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>);
        impl Drop for Marks {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(std::thread::current().id());
            }
        }
        let dropped_on = Arc::new(std::sync::Mutex::new(None));
        let value = Arc::new(Marks(dropped_on.clone()));
        let user = value.clone();
        let retiring = std::thread::spawn(move || {
            if let Some(v) = sole_owner(value, Instant::now() + Duration::from_secs(10)) {
                drop(v);
            }
            std::thread::current().id()
        });
        // A "request" still holds it for a while, then lets go.
        std::thread::sleep(RETIRE_POLL * 3);
        assert!(dropped_on.lock().unwrap().is_none(), "freed while in use");
        drop(user);
        let retiring_thread = retiring.join().unwrap();
        assert_eq!(*dropped_on.lock().unwrap(), Some(retiring_thread));
    }

    #[test]
    fn retiring_gives_up_at_the_deadline() {
        let value = Arc::new(1);
        let user = value.clone();
        assert_eq!(sole_owner(value, Instant::now()), None);
        assert_eq!(Arc::strong_count(&user), 1, "the retiring side let go");
    }
}
