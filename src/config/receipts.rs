//! `[receipts]`: where consent receipts and hourly aggregates are stored, and how the writer
//! batches them (src/receipts/, docs/RECEIPTS.md). Receipts are off without the table.

use super::{ConfigErrorKind, Validator};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_RETENTION_DAYS: u32 = 400;
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
pub const DEFAULT_BATCH_SIZE: usize = 500;
pub const DEFAULT_BATCH_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_AGGREGATE_INTERVAL_SECONDS: u64 = 60;
/// The SQLite file when neither `path` nor `url` is given (beside the configuration file).
pub const DEFAULT_PATH: &str = "consentgate-receipts.db";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceipts {
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub retention_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub store_signal: bool,
    pub queue_capacity: Option<Spanned<i64>>,
    pub batch_size: Option<Spanned<i64>>,
    pub batch_interval_ms: Option<Spanned<i64>>,
    pub aggregate_interval_seconds: Option<Spanned<i64>>,
    pub instance: Option<Spanned<String>>,
}

/// Where receipts go.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreTarget {
    /// An embedded SQLite file (WAL).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, shared by the instances of a fleet.
    Postgres(String),
}

#[derive(Clone)]
pub struct ReceiptsConfig {
    pub store: StoreTarget,
    /// The HMAC key for subjects without a CMP id: read, or created (32 random bytes, mode
    /// 0600) when missing.
    pub key_file: PathBuf,
    pub retention_days: u32,
    /// Keep the raw consent value in each receipt (off: only its SHA-256).
    pub store_signal: bool,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub batch_interval: Duration,
    pub aggregate_interval: Duration,
    /// This instance's name in receipts and aggregates (default: the host name).
    pub instance: String,
}

impl std::fmt::Debug for ReceiptsConfig {
    // The connection string may hold a password: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.store {
            StoreTarget::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreTarget::Postgres(_) => "postgres:<url>".to_string(),
        };
        f.debug_struct("ReceiptsConfig")
            .field("store", &store)
            .field("retention_days", &self.retention_days)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// A site's `policy_version`: SHA-256 over everything that decides how the site is enforced,
/// so that it changes whenever enforcement can: the `[[site]]` table ([`policy_versions`]),
/// the contents of the blocklists and the cookie database it loaded (a file edited under the
/// same name, then reloaded, is a new policy), and the binary's own rules (its version, and the
/// built-in cookie catalogue, which a new build may change).
pub fn policy_version(site_table_sha256: &str, site: &super::SiteConfig) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Each part labelled and length-prefixed: no two different inputs hash the same bytes.
    let mut part = |label: &str, value: &str| {
        for bytes in [label.as_bytes(), value.as_bytes()] {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        }
    };
    part("consentgate", env!("CARGO_PKG_VERSION"));
    part("catalogue", catalogue_sha256());
    part("site", site_table_sha256);
    for list in &site.blocklists {
        let text_sha256 = crate::receipts::sha256_hex(list.text().as_bytes());
        let line = format!("{} {} {text_sha256}", list.category.as_str(), list.name);
        part("blocklist", &line);
    }
    let database = site.database.canonical();
    part(
        "cookie-database",
        &crate::receipts::sha256_hex(database.as_bytes()),
    );
    crate::receipts::hex(ctx.finish().as_ref())
}

/// SHA-256 of the built-in cookie catalogue (patterns and categories, in its order).
fn catalogue_sha256() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        let mut text = String::new();
        for e in crate::cookies::catalogue::CATALOGUE {
            text.push_str(e.pattern);
            text.push('\t');
            text.push_str(e.category.as_str());
            text.push('\n');
        }
        crate::receipts::sha256_hex(text.as_bytes())
    })
}

/// SHA-256 of each `[[site]]` table, re-serialized (key order fixed, comments and layout
/// dropped), in file order: the part of a site's `policy_version` its table gives.
pub fn policy_versions(text: &str) -> Vec<String> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(sites) = value.get("site").and_then(|s| s.as_array()) else {
        return Vec::new();
    };
    sites
        .iter()
        .map(|s| {
            let canonical = toml::to_string(s).unwrap_or_default();
            crate::receipts::sha256_hex(canonical.as_bytes())
        })
        .collect()
}

impl Validator<'_> {
    pub(super) fn receipts(&mut self, r: &RawReceipts) -> Option<ReceiptsConfig> {
        let before = self.errors.len();
        let store = match (&r.path, &r.url) {
            (Some(_), Some(url)) => {
                let msg = "give `path` (SQLite) or `url` (PostgreSQL), not both".to_string();
                self.error_at(url.span(), ConfigErrorKind::Receipts(msg));
                None
            }
            (_, Some(url)) => {
                let u = url.get_ref();
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
                    || u.parse::<postgres::Config>().is_err()
                {
                    let msg = "`url` must be a PostgreSQL URL (postgres://user@host:port/db)";
                    self.error_at(url.span(), ConfigErrorKind::Receipts(msg.into()));
                    None
                } else {
                    Some(StoreTarget::Postgres(u.clone()))
                }
            }
            (Some(path), None) if path.get_ref().trim().is_empty() => {
                let msg = "`path` may not be empty".to_string();
                self.error_at(path.span(), ConfigErrorKind::Receipts(msg));
                None
            }
            (Some(path), None) => Some(StoreTarget::Sqlite(self.resolve_new(path.get_ref()))),
            (None, None) => Some(StoreTarget::Sqlite(self.resolve_new(DEFAULT_PATH))),
        };
        let key_file = match (&r.key_file, &store) {
            (Some(k), _) => Some(self.resolve_new(k.get_ref())),
            (None, Some(StoreTarget::Sqlite(p))) => {
                let mut k = p.clone().into_os_string();
                k.push(".key");
                Some(PathBuf::from(k))
            }
            (None, Some(StoreTarget::Postgres(_))) => {
                let msg = "with `url`, set `key_file`: every instance sharing the store must hash subjects with the same key".to_string();
                let line = r.url.as_ref().map(|u| u.span()).unwrap_or(0..0);
                self.error_at(line, ConfigErrorKind::Receipts(msg));
                None
            }
            (None, None) => None,
        };
        let retention_days =
            self.receipts_number("retention_days", &r.retention_days, 1, 36_500, 400);
        let queue_capacity = self.receipts_number(
            "queue_capacity",
            &r.queue_capacity,
            1,
            1_000_000,
            DEFAULT_QUEUE_CAPACITY as i64,
        );
        let batch_size = self.receipts_number(
            "batch_size",
            &r.batch_size,
            1,
            100_000,
            DEFAULT_BATCH_SIZE as i64,
        );
        let batch_interval_ms = self.receipts_number(
            "batch_interval_ms",
            &r.batch_interval_ms,
            10,
            3_600_000,
            DEFAULT_BATCH_INTERVAL_MS as i64,
        );
        let aggregate_seconds = self.receipts_number(
            "aggregate_interval_seconds",
            &r.aggregate_interval_seconds,
            1,
            3_600,
            DEFAULT_AGGREGATE_INTERVAL_SECONDS as i64,
        );
        let instance = match &r.instance {
            Some(i) if valid_instance(i.get_ref()) => i.get_ref().clone(),
            Some(i) => {
                let msg = format!(
                    "`instance` `{}` must be 1-64 letters, digits, `.`, `-`, `_` or `:`",
                    i.get_ref()
                );
                self.error_at(i.span(), ConfigErrorKind::Receipts(msg));
                String::new()
            }
            None => host_name(),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(ReceiptsConfig {
            store: store?,
            key_file: key_file?,
            retention_days: retention_days as u32,
            store_signal: r.store_signal,
            queue_capacity: queue_capacity as usize,
            batch_size: batch_size as usize,
            batch_interval: Duration::from_millis(batch_interval_ms as u64),
            aggregate_interval: Duration::from_secs(aggregate_seconds as u64),
            instance,
        })
    }

    fn receipts_number(
        &mut self,
        key: &str,
        v: &Option<Spanned<i64>>,
        min: i64,
        max: i64,
        default: i64,
    ) -> i64 {
        match v {
            None => default,
            Some(n) if (min..=max).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                let msg = format!(
                    "`{key}` = {} is out of range; use {min}..={max} (default {default})",
                    n.get_ref()
                );
                self.error_at(n.span(), ConfigErrorKind::Receipts(msg));
                default
            }
        }
    }

    /// A file that may not exist yet: relative to the configuration file's folder.
    fn resolve_new(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.base.join(path)
        }
    }
}

fn valid_instance(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// The host name (the default instance name), or `consentgate` when it cannot be read.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if rc == 0 && valid_instance(&name) {
        name
    } else {
        "consentgate".to_string()
    }
}

#[cfg(test)]
mod tests {
    fn errs(receipts: &str) -> Vec<String> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n\n[receipts]\n{receipts}"
        );
        match crate::config::parse(&text, "t.toml".as_ref()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            errs("path = \"r.db\"\nretention_days = 30\n"),
            Vec::<String>::new()
        );
        let e = errs("path = \"r.db\"\nurl = \"postgres://u@h/db\"\n");
        assert!(
            e[0].starts_with("t.toml:10: [receipts]: give `path`"),
            "{e:?}"
        );
        let e = errs("url = \"postgres://u@h/db\"\n");
        assert!(
            e[0].starts_with("t.toml:9: [receipts]: with `url`, set `key_file`"),
            "{e:?}"
        );
        let e = errs("batch_size = 0\n");
        assert!(
            e[0].starts_with("t.toml:9: [receipts]: `batch_size` = 0"),
            "{e:?}"
        );
        let e = errs("retention = 3\n");
        assert!(
            e[0].starts_with("t.toml:9: unknown key `retention`"),
            "{e:?}"
        );
    }

    #[test]
    fn policy_version_follows_the_files_the_site_loads() {
        let dir = std::env::temp_dir().join(format!("cg-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (list, db) = (dir.join("list.txt"), dir.join("ocd.csv"));
        let header = "ID,Platform,Category,Cookie / Data Key name,Domain,Description,Retention period,Data Controller,User Privacy & GDPR Rights Portals,Wildcard match\n";
        let row = |name: &str| {
            format!("{header}256c0fe2-d881-11e9-8a34-2a2ae2dbcce4,Tag,Analytics,{name},,d,1 year,c,https://x.test/,0\n")
        };
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.cookies]\nopen_cookie_database = \"{}\"\n[[site.blocklist]]\ncategory = \"analytics\"\npath = \"{}\"\n",
            db.display(),
            list.display()
        );
        let version = || {
            let cfg = crate::config::parse(&text, &dir.join("c.toml")).unwrap();
            cfg.sites[0].policy_version.clone()
        };
        std::fs::write(&list, "||tracker.example^\n").unwrap();
        std::fs::write(&db, row("_tracker")).unwrap();
        let first = version();
        assert_eq!(version(), first, "the same files, the same version");
        std::fs::write(&list, "||tracker.example^\n||other.example^\n").unwrap();
        let list_changed = version();
        assert_ne!(list_changed, first, "a list edited under the same name");
        std::fs::write(&db, row("_other")).unwrap();
        assert_ne!(version(), list_changed, "a cookie database edited");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn policy_version_follows_the_site_table() {
        let a = super::policy_versions("[[site]]\nname = \"a\"\nmode = \"enforce\"\n");
        let b = super::policy_versions("[[site]]\n# comment\nmode = \"enforce\"\nname = \"a\"\n");
        let c = super::policy_versions("[[site]]\nname = \"a\"\nmode = \"off\"\n");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
