//! consentgate command line: wiring only. See `consentgate --help`.

use clap::{Parser, Subcommand};
use consentgate::runtime::Runtime;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// mimalloc; every call counted in a build with the `alloc-count` feature (benchmarks).
consentgate::global_allocator!();

/// mimalloc commits each new arena eagerly on Linux, which costs ~9 MiB of RSS at start for
/// nothing (measured with `benches/connections.py`: 22.7 -> 12.1 MiB at start, 5,000 idle
/// connections 94.5 -> 82.5 MiB; docs/RELIABILITY.md). Committing on demand costs nothing
/// measurable per request. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
///
/// It must run before the first allocation creates mimalloc's first arena, so it is an ELF
/// constructor (`.init_array`, run before Rust's runtime starts) and allocates nothing itself.
extern "C" fn tune_allocator() {
    // The index of `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e`
    // (libmimalloc-sys 0.1.49 builds v3 and exports no constant for it).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // SAFETY: getenv with a NUL-terminated name, before any thread exists; mi_option_set
    // stores a process-wide option.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

#[derive(Parser)]
#[command(
    name = "consentgate",
    version,
    about = "A reverse proxy that enforces cookie consent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of its largest variant (explain's options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve: proxy to the configured origins, gating cookies on consent.
    Run {
        #[arg(long, default_value = "conf/consentgate.toml")]
        config: PathBuf,
        /// Take over the listening sockets of a running consentgate (graceful binary upgrade;
        /// then send SIGQUIT to the old process).
        #[arg(long)]
        upgrade: bool,
        /// Socket used to hand listeners over during an upgrade.
        #[arg(long, default_value = "/tmp/consentgate-upgrade.sock")]
        upgrade_sock: String,
    },
    /// Validate a configuration file: exit 0, or print every problem as FILE:LINE: ... and exit 1.
    Check {
        #[arg(long, default_value = "conf/consentgate.toml")]
        config: PathBuf,
    },
    /// Dry-run the decision for one request and print it as JSON.
    Explain {
        #[arg(long, default_value = "conf/consentgate.toml")]
        config: PathBuf,
        /// Host header (picks the site); defaults to the URL's host, else the "*" site.
        #[arg(long)]
        host: Option<String>,
        /// A Cookie header value, e.g. 'consent=analytics; _ga=GA1.2.3.4'. Repeat for several lines.
        #[arg(long)]
        cookie: Vec<String>,
        /// A response Set-Cookie line to judge. Repeatable.
        #[arg(long = "set-cookie")]
        set_cookie: Vec<String>,
        /// The request carries Sec-GPC: 1.
        #[arg(long)]
        gpc: bool,
        /// The request URL: also reports whether a blocklist blocks it.
        #[arg(long)]
        url: Option<String>,
        /// The page the request comes from (Referer), for third-party rules.
        #[arg(long)]
        referer: Option<String>,
        /// The request's Sec-Fetch-Dest (script, image, iframe, document, empty), or `ping` for a
        /// beacon (sendBeacon, `<a ping>`); default: inferred from the URL's extension.
        #[arg(long)]
        dest: Option<String>,
        /// The response's status (default 200). With any of the response options (this one,
        /// the three below, --set-cookie) the response plan is printed too, under "response".
        #[arg(long)]
        status: Option<u16>,
        /// The response's Content-Type, e.g. 'text/html; charset=utf-8'.
        #[arg(long)]
        content_type: Option<String>,
        /// The response's Content-Encoding (gzip, br, deflate, ...).
        #[arg(long)]
        content_encoding: Option<String>,
        /// The response's Cache-Control.
        #[arg(long)]
        cache_control: Option<String>,
        /// The address the request comes from: prints the forwarding decision (client,
        /// scheme, header edits for the origin) under "forwarded".
        #[arg(long)]
        peer: Option<String>,
        /// A request header line 'Name: value', e.g. 'X-Consent: analytics' (read by the
        /// site's [[site.consent.header]] sources) or, with --peer, 'X-Forwarded-For:
        /// 203.0.113.7' for the forwarding decision. Repeatable.
        #[arg(long)]
        header: Vec<String>,
        /// Where the visitor is: an ISO 3166-1 country code (US, DE). Prints the site's
        /// jurisdiction rule under "jurisdiction"; the decisions follow its consent model.
        #[arg(long)]
        country: Option<String>,
        /// The visitor's region: ISO 3166-2 (US-CA), or the subdivision alone (CA). Needs
        /// --country: the proxy believes a region only beside the visitor's country.
        #[arg(long)]
        region: Option<String>,
    },
    /// List consent receipts (a subject's full history answers an access request), or check
    /// their hash chain with `receipts verify`.
    Receipts {
        #[command(subcommand)]
        action: Option<ReceiptsAction>,
        /// Global: `receipts --config F verify` and `receipts verify --config F` both read F.
        #[arg(long, global = true, default_value = "conf/consentgate.toml")]
        config: PathBuf,
        /// Only this subject (the CMP's consent id, or the keyed hash).
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        site: Option<String>,
        /// From this time (2026-11-01 or RFC 3339), inclusive.
        #[arg(long)]
        since: Option<String>,
        /// Up to this time, exclusive.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ListFormat,
    },
    /// What was enforced in a period, from the receipt store's hourly aggregates (summed over
    /// every instance sharing the store).
    Report {
        #[arg(long, default_value = "conf/consentgate.toml")]
        config: PathBuf,
        /// From this day or time (2026-11-01 or RFC 3339), inclusive.
        #[arg(long)]
        since: String,
        /// Up to this day or time, exclusive (default: now; the hour in progress is included).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
    },
    /// Start a built-in example origin behind the proxy and print what to try.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        #[arg(long, default_value = "127.0.0.1:8081")]
        origin: String,
    },
}

#[derive(Subcommand)]
enum ReceiptsAction {
    /// Recompute every receipt's hash and the chain; exit 1 naming each broken link.
    /// `--config` is the one of `receipts` (global: before or after `verify`).
    Verify,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Json,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            host,
            cookie,
            set_cookie,
            gpc,
            url,
            referer,
            dest,
            status,
            content_type,
            content_encoding,
            cache_control,
            peer,
            header,
            country,
            region,
        } => {
            let req = consentgate::explain::ExplainRequest {
                host: host.as_deref(),
                cookies: &cookie,
                set_cookies: &set_cookie,
                gpc,
                url: url.as_deref(),
                referer: referer.as_deref(),
                dest: dest.as_deref(),
                country: country.as_deref(),
                region: region.as_deref(),
                headers: &header,
            };
            let given = status.is_some()
                || content_type.is_some()
                || content_encoding.is_some()
                || cache_control.is_some()
                || !set_cookie.is_empty();
            let response = consentgate::explain::ExplainResponse {
                status: status.unwrap_or(200),
                content_type: content_type.as_deref(),
                content_encoding: content_encoding.as_deref(),
                cache_control: cache_control.as_deref(),
            };
            let forwarded = peer.as_deref().map(|p| (p, header.as_slice()));
            explain(&config, &req, given.then_some(&response), forwarded)
        }
        Command::Run {
            config,
            upgrade,
            upgrade_sock,
        } => run(
            &config,
            consentgate::server::RunOptions {
                upgrade,
                upgrade_sock: Some(upgrade_sock),
            },
        ),
        Command::Receipts {
            action: Some(ReceiptsAction::Verify),
            config,
            ..
        } => verify_receipts(&config),
        Command::Receipts {
            action: None,
            config,
            subject,
            site,
            since,
            until,
            format,
        } => list_receipts(&config, subject, site, since, until, format),
        Command::Report {
            config,
            since,
            until,
            site,
            format,
        } => report(&config, &since, until.as_deref(), site.as_deref(), format),
        Command::Demo {
            listen,
            admin,
            origin,
        } => demo(&listen, &admin, &origin),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `check`: every problem as FILE:LINE: ..., or a one-line summary.
fn check(config: &Path) -> Result<(), String> {
    let c = consentgate::config::load(config).map_err(|e| e.to_string())?;
    // Warnings do not fail the check: the configuration is valid, only risky.
    for w in consentgate::config::warnings_for_file(&c.proxy, config) {
        eprintln!("{w}");
    }
    let text = std::fs::read_to_string(config).unwrap_or_default();
    for w in consentgate::config::jurisdiction_warnings(&c.sites, config, &text) {
        eprintln!("{w}");
    }
    println!("{}: ok ({} sites)", config.display(), c.sites.len());
    Ok(())
}

/// `explain`: the decision for one request, as pretty JSON on stdout.
fn explain(
    config: &Path,
    req: &consentgate::explain::ExplainRequest<'_>,
    response: Option<&consentgate::explain::ExplainResponse<'_>>,
    forwarded: Option<(&str, &[String])>,
) -> Result<(), String> {
    let rt = Runtime::load(config).map_err(|e| e.to_string())?;
    let mut v = consentgate::explain::explain_with_response(&rt, req, response)?;
    if let Some((peer, headers)) = forwarded {
        // The request's Host is `--host` (what X-Forwarded-Host and host= would carry).
        v["forwarded"] = consentgate::explain::explain_forwarded(&rt, peer, req.host, headers)?;
    }
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(())
}

/// `run`: serves until stopped; returns only when the configuration does not load.
fn run(config: &Path, opts: consentgate::server::RunOptions) -> Result<(), String> {
    consentgate::server::init_logging();
    let c = consentgate::config::load(config).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(config).unwrap_or_default();
    for w in consentgate::config::warnings_for_file(&c.proxy, config)
        .into_iter()
        .chain(consentgate::config::jurisdiction_warnings(
            &c.sites, config, &text,
        ))
    {
        tracing::warn!("{w}");
    }
    let rt = Runtime::build(c)?;
    consentgate::server::run(rt, opts, Vec::new())
}

/// The receipt store named by the configuration's `[receipts]` table, opened read-only: a
/// mistyped path must fail, not create an empty store that lists nothing and "verifies".
fn open_store(config: &Path) -> Result<Box<dyn consentgate::receipts::store::Store>, String> {
    use consentgate::config::receipts::StoreTarget;
    let c = consentgate::config::load(config).map_err(|e| e.to_string())?;
    let cfg = c.proxy.receipts.ok_or_else(|| {
        format!(
            "{}: no [receipts] table: receipts are off",
            config.display()
        )
    })?;
    consentgate::receipts::store::open_read_only(&cfg.store).map_err(|e| match &cfg.store {
        StoreTarget::Sqlite(_) => format!(
            "{}: {e}. Check `path` in [receipts] (a relative path starts from the \
             configuration file's folder), or start `consentgate run --config {}` once: the \
             proxy creates the database",
            config.display(),
            config.display()
        ),
        StoreTarget::Postgres(_) => format!(
            "{}: the receipt store of `url` in [receipts]: {e}",
            config.display()
        ),
    })
}

/// `receipts`: the receipts matching the filters, as a JSON array or CSV.
fn list_receipts(
    config: &Path,
    subject: Option<String>,
    site: Option<String>,
    since: Option<String>,
    until: Option<String>,
    format: ListFormat,
) -> Result<(), String> {
    use consentgate::receipts::parse_time;
    let filter = consentgate::receipts::store::Filter {
        subject,
        site,
        since: since.as_deref().map(parse_time).transpose()?,
        until: until.as_deref().map(parse_time).transpose()?,
    };
    let rows = open_store(config)?.receipts(&filter)?;
    let receipts: Vec<_> = rows.into_iter().map(|(_, r)| r).collect();
    match format {
        ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&receipts).map_err(|e| e.to_string())?
        ),
        ListFormat::Csv => print!("{}", consentgate::receipts::to_csv(&receipts)?),
    }
    Ok(())
}

/// `receipts verify`: every hash and link of the chain.
fn verify_receipts(config: &Path) -> Result<(), String> {
    use consentgate::receipts::ChainStart;
    let (start, rows) = open_store(config)?.chain()?;
    let (n, problems) = consentgate::receipts::verify_chain(&start, rows);
    if start == ChainStart::Unrecorded {
        eprintln!(
            "note: this store has no chain_anchor table (written by an older consentgate): the \
             first receipt's prev_sha256 is taken as given, so deleting the first receipt(s) \
             cannot be detected until `consentgate run` opens the store once"
        );
    }
    if problems.is_empty() {
        println!("{n} receipts, chain valid");
        return Ok(());
    }
    for p in &problems {
        eprintln!("receipt seq {} ({}): {}", p.seq, p.receipt_id, p.problem);
    }
    Err(format!(
        "{n} receipts, {} problem(s): the chain is broken",
        problems.len()
    ))
}

/// `report`: JSON or one self-contained HTML page on stdout.
fn report(
    config: &Path,
    since: &str,
    until: Option<&str>,
    site: Option<&str>,
    format: ReportFormat,
) -> Result<(), String> {
    use consentgate::receipts::{format_time, parse_time};
    let since = parse_time(since)?;
    let until = match until {
        Some(u) => parse_time(u)?,
        // Now: the hour in progress is in the period (its rows are stamped with its start),
        // and the period shown is the one covered.
        None => format_time(std::time::SystemTime::now()),
    };
    let req = consentgate::report::ReportRequest {
        since: &since,
        until: &until,
        site,
    };
    let v = consentgate::report::build(open_store(config)?.as_mut(), &req)?;
    match format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        ),
        ReportFormat::Html => print!("{}", consentgate::report::html(&v)),
    }
    Ok(())
}

/// `demo`: the example configuration and origin, in this process.
fn demo(listen: &str, admin: &str, origin: &str) -> Result<(), String> {
    consentgate::server::init_logging();
    let lists = consentgate::demo::write_lists()
        .map_err(|e| format!("cannot write the demo's blocklists to the temp folder: {e}"))?;
    let text = consentgate::demo::config_text(listen, admin, origin, &lists);
    let config =
        consentgate::config::parse(&text, "demo.toml".as_ref()).map_err(|e| e.to_string())?;
    let rt = Runtime::build(config).map_err(|e| e.to_string())?;
    let mut origin_svc = pingora::services::listening::Service::new(
        "demo origin".to_string(),
        consentgate::demo::DemoOrigin::default(),
    );
    origin_svc.add_tcp(origin);
    print_demo_help(listen, admin, origin);
    consentgate::server::run(
        rt,
        consentgate::server::RunOptions::default(),
        vec![Box::new(origin_svc)],
    )
}

fn print_demo_help(listen: &str, admin: &str, origin: &str) {
    eprintln!(
        r#"
consentgate demo
  proxy   http://{listen}/        (open it in a browser and use the banner)
  origin  http://{origin}/        (the same page without consentgate: every cookie is set)
  admin   http://{admin}/        (the live dashboard; also /metrics  /inventory  /status  /healthz)

Try:
  curl -si http://{listen}/ | grep -i set-cookie                        # no consent: only SESSIONID
  curl -si -H 'Cookie: consent=analytics' http://{listen}/ | grep -i set-cookie   # + _ga
  curl -si -H 'Cookie: consent=analytics,marketing' -H 'Sec-GPC: 1' http://{listen}/ | grep -i set-cookie
  curl -s  -H 'Cookie: SESSIONID=x; _ga=GA1.1.1.1; _fbp=fb.1' http://{listen}/api/cookies   # what the origin receives
  curl -s  http://{listen}/ | grep -m2 data-consent-category            # the Google tag, neutralized
  curl -si 'http://{listen}/g/collect?v=2&tid=G-DEMO' -H 'Sec-Fetch-Dest: empty'   # a tracker beacon: 204 from the proxy
  curl -s  http://{admin}/metrics | grep consentgate_
Press Ctrl-C to stop.
"#
    );
}
