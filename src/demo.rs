//! `consentgate demo`: a built-in example origin behind the proxy. The origin sets a session
//! cookie, an analytics cookie, a marketing cookie and a preferences cookie on every page, shows
//! which cookies it received and which the browser holds, and has a small consent banner that
//! writes the first-party `consent` cookie.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shipped lists, embedded so the demo runs from any directory.
const ANALYTICS_LIST: &str = include_str!("../conf/lists/analytics.txt");
const MARKETING_LIST: &str = include_str!("../conf/lists/marketing.txt");

/// Writes the shipped blocklists to a folder of its own and returns it.
pub fn write_lists() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("consentgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("analytics.txt"), ANALYTICS_LIST)?;
    std::fs::write(dir.join("marketing.txt"), MARKETING_LIST)?;
    Ok(dir)
}

/// The example site every demo, test and benchmark starts from.
pub const EXAMPLE_CONFIG: &str = include_str!("../conf/example.toml");

/// The demo's configuration: the example site with the demo's addresses, named `demo`, plus
/// the shipped blocklists (written to `lists` by [`write_lists`]).
pub fn config_text(listen: &str, admin: &str, origin: &str, lists: &std::path::Path) -> String {
    let mut text = String::with_capacity(EXAMPLE_CONFIG.len() + 256);
    for line in EXAMPLE_CONFIG.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let replaced = match key {
            "listen" => format!("listen = [{listen:?}]"),
            "admin" => format!("admin = {admin:?}"),
            "upstreams" => format!("upstreams = [{origin:?}]"),
            "name" => "name = \"demo\"".to_string(),
            _ => line.to_string(),
        };
        text.push_str(&replaced);
        text.push('\n');
    }
    let lists = lists.display();
    for category in ["analytics", "marketing"] {
        text.push_str(&format!(
            "\n[[site.blocklist]]\ncategory = \"{category}\"\npath = \"{lists}/{category}.txt\"\n"
        ));
    }
    text
}

pub struct DemoOrigin {
    counter: AtomicU64,
}

impl Default for DemoOrigin {
    fn default() -> Self {
        DemoOrigin {
            counter: AtomicU64::new(1),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let received: Vec<String> = req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let gpc = req
            .headers
            .get("sec-gpc")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match req.uri.path() {
            "/api/cookies" => cookies_json(&received, gpc.as_deref()),
            "/" => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                page(n, &received, gpc.as_deref())
            }
            _ => {
                let body = b"not found\n".to_vec();
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header("Content-Length", body.len())
                    .body(body)
                    .unwrap()
            }
        }
    }
}

/// `/api/cookies`: what the origin received, as JSON.
fn cookies_json(received: &[String], gpc: Option<&str>) -> Response<Vec<u8>> {
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "cookie_headers_received": received,
        "sec_gpc": gpc,
    }))
    .unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len())
        .body(body)
        .unwrap()
}

/// `/`: the page, setting one cookie of each category (the `n`th visit's values).
fn page(n: u64, received: &[String], gpc: Option<&str>) -> Response<Vec<u8>> {
    let received_html = if received.is_empty() {
        "<em>none</em>".to_string()
    } else {
        received
            .iter()
            .map(|r| format!("<code>{}</code>", escape(r)))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let body = PAGE
        .replace("{{received}}", &received_html)
        .replace("{{gpc}}", &escape(gpc.unwrap_or("(not sent)")))
        .into_bytes();
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .header(
            "Set-Cookie",
            format!("SESSIONID=s{n:08x}; Path=/; HttpOnly; SameSite=Lax"),
        )
        .header(
            "Set-Cookie",
            format!("_ga=GA1.1.{n}.1764000000; Path=/; Max-Age=63072000; SameSite=Lax"),
        )
        .header(
            "Set-Cookie",
            format!("_fbp=fb.1.1764000000.{n}; Path=/; Max-Age=7776000; SameSite=Lax"),
        )
        .header(
            "Set-Cookie",
            "theme=dark; Path=/; Max-Age=31536000; SameSite=Lax",
        )
        .header("Content-Length", body.len())
        .body(body)
        .unwrap()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>consentgate demo</title>
<!-- A Google tag, as sites paste it: without analytics consent consentgate neutralizes both
     (view the page source through the proxy and through the origin to compare). -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('js',new Date());gtag('config','G-DEMO');</script>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
#banner{border:2px solid #333;border-radius:8px;padding:1rem;margin:1rem 0;background:#f6f6f6}
button{margin:.2rem;padding:.4rem .8rem;cursor:pointer}
code{background:#eee;padding:0 .2rem}
</style></head><body>
<h1>consentgate demo origin</h1>
<p>Every response from this origin sets four cookies: <code>SESSIONID</code> (necessary, HttpOnly),
<code>theme</code> (preferences), <code>_ga</code> (analytics) and <code>_fbp</code> (marketing).
consentgate lets through only what your consent allows.</p>
<div id="banner">
  <strong>Cookie consent</strong> &mdash; current: <code id="current"></code><br>
  <button id="accept-all" onclick="setConsent('preferences,analytics,marketing')">Accept all</button>
  <button id="accept-analytics" onclick="setConsent('analytics')">Analytics only</button>
  <button id="reject-all" onclick="setConsent('')">Reject all</button>
  <button id="forget" onclick="forget()">Forget my choice</button>
</div>
<h2>Cookies your browser holds</h2>
<p><code id="browser-cookies"></code><br><small>(HttpOnly cookies such as SESSIONID are not visible to scripts.)</small></p>
<h2>Cookies the origin received</h2>
<p id="received">{{received}}</p>
<p>Sec-GPC header received: <code>{{gpc}}</code></p>
<script>
function readConsent(){const m=document.cookie.match(/(?:^|; )consent=([^;]*)/);return m?decodeURIComponent(m[1]):null}
function setConsent(v){document.cookie='consent='+encodeURIComponent(v)+'; Path=/; Max-Age=31536000; SameSite=Lax';location.reload()}
function forget(){document.cookie='consent=; Path=/; Max-Age=0';location.reload()}
const c=readConsent();
document.getElementById('current').textContent=c===null?'(no choice yet: nothing optional allowed)':(c||'(rejected all)');
document.getElementById('browser-cookies').textContent=document.cookie||'(none)';
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Category;

    #[test]
    fn the_demo_config_is_the_example_with_the_demo_addresses_and_lists() {
        let lists = write_lists().unwrap();
        let text = config_text(
            "127.0.0.1:18280",
            "127.0.0.1:18290",
            "127.0.0.1:18281",
            &lists,
        );
        let c = crate::config::parse(&text, "demo.toml".as_ref()).unwrap();
        assert_eq!(c.proxy.listen, ["127.0.0.1:18280"]);
        assert_eq!(c.proxy.admin.as_deref(), Some("127.0.0.1:18290"));
        let site = &c.sites[0];
        assert_eq!(site.name, "demo");
        assert_eq!(site.upstreams, ["127.0.0.1:18281"]);
        assert_eq!(site.rules.lookup("theme"), Some(Category::Preferences));
        assert_eq!(site.rules.lookup("_gcl_au"), Some(Category::Marketing));
        assert!(!site.blocklists.is_empty());
        let _ = std::fs::remove_dir_all(lists);
    }
}
