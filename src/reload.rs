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
//! The previous runtime is dropped on the reload thread after the swap, unless a request still
//! holds one of its sites: then that request frees the site when it ends. Freeing a site with
//! both EasyList lists measured 0.1 ms (median) to 1.3 ms (docs/BENCHMARKS.md, "Reload"), too
//! little to make requests' ends wait for.

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How long a reload waits for the one in progress to finish.
pub const WAIT_FOR_TURN: Duration = Duration::from_secs(60);

/// How much lower the reload thread's CPU priority is than the workers' (nice increment).
#[cfg(target_os = "linux")]
const RELOAD_NICE: libc::c_int = 10;

/// One reload at a time, across the admin and SIGHUP runtimes (a tokio mutex works across
/// runtimes: it needs no driver). The reload thread holds the turn until it has swapped, so
/// that a caller that stops waiting (its client went away) does not let a second build race it.
static TURN: LazyLock<Arc<tokio::sync::Mutex<()>>> = LazyLock::new(Default::default);

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
    let Ok(turn) = tokio::time::timeout(WAIT_FOR_TURN, TURN.clone().lock_owned()).await else {
        tracing::warn!("configuration reload not started: another one is still in progress");
        return Err(ReloadError::Busy);
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    let current = current.clone();
    let thread = std::thread::Builder::new()
        .name("consentgate-reload".to_string())
        .spawn(move || {
            lower_priority();
            let swapped = swap_in(&current);
            drop(turn);
            match swapped {
                Ok((message, old)) => {
                    let _ = answer.send(Ok(message));
                    // After answering, so that the answer does not wait for it.
                    let started = Instant::now();
                    drop(old);
                    tracing::debug!(
                        freed_us = started.elapsed().as_micros() as u64,
                        "previous configuration released"
                    );
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
        || new.proxy.tls.listen_tls != old.proxy.tls.listen_tls
        || new.proxy.admin != old.proxy.admin
        || new.proxy.threads != old.proxy.threads
        || new.proxy.connections.max_connections != old.proxy.connections.max_connections
    {
        "; listen/listen_tls/admin/threads/max_connections changes take effect after a restart"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(listen: &str, threads: usize) -> Runtime {
        let text = format!(
            "[proxy]\nlisten = [\"{listen}\"]\nthreads = {threads}\n[[site]]\nname = \"a\"\nhosts = [\"*\"]\nupstreams = [\"127.0.0.1:2\"]\n"
        );
        Runtime::build(crate::config::parse(&text, "t".as_ref()).unwrap()).unwrap()
    }

    #[test]
    fn settings_fixed_at_start_are_reported_as_needing_a_restart() {
        let before = runtime("127.0.0.1:1", 1);
        assert_eq!(restart_note(&before, &runtime("127.0.0.1:1", 1)), "");
        for after in [runtime("127.0.0.1:3", 1), runtime("127.0.0.1:1", 2)] {
            assert!(restart_note(&before, &after).contains("after a restart"));
        }
    }
}
