# Shared by the proxy benchmarks (sourced): the site configuration and request cookies every
# consentgate target is measured with, so the scripts compare the same thing.

# The Cookie header values: no consent (the worst case: tracking cookies come back on every
# request), no consent in the steady state (the browser holds no tracking cookie: the proxy
# never let one through), and consent to everything optional.
noconsent='SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'
steady='SESSIONID=abc123'
consent='consent=analytics,marketing; SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'

# bench_config FILE PORT ADMIN_PORT MODE: one site in front of the benchmark origin
# (origin.conf of the benchmark peers, 127.0.0.1:18081), 1 worker thread, access log off.
bench_config() {
  cat > "$1" <<TOML
[proxy]
listen = ["127.0.0.1:$2"]
admin = "127.0.0.1:$3"
threads = 1
access_log = false
grace_period_seconds = 0
shutdown_timeout_seconds = 1

[[site]]
name = "bench"
hosts = ["*"]
upstreams = ["127.0.0.1:18081"]
mode = "$4"
unknown_cookies = "strip"
gpc = "deny-marketing"

[site.consent]
cookie = "consent"

[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga", "_ga_*", "_gid"]
marketing = ["_fbp", "_gcl_*"]
TOML
}
