# Shared by the proxy benchmarks (sourced): the site configuration and request cookies every
# consentgate target is measured with, so the scripts compare the same thing.

# The Cookie header values: no consent (the worst case: tracking cookies come back on every
# request), no consent in the steady state (the browser holds no tracking cookie: the proxy
# never let one through), and consent to everything optional.
noconsent='SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'
steady='SESSIONID=abc123'
consent='consent=analytics,marketing; SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'

# bench_config FILE PORT ADMIN_PORT MODE: the example site (conf/example.toml) in front of the
# benchmark origin (origin.conf of the benchmark peers, 127.0.0.1:18081), 1 worker thread,
# access log off.
bench_config() {
  local example="${BASH_SOURCE[0]%/*}/../conf/example.toml"
  sed -e "s|^listen = .*|listen = [\"127.0.0.1:$2\"]|" \
      -e "s|^admin = .*|admin = \"127.0.0.1:$3\"|" \
      -e 's|^threads = .*|threads = 1\naccess_log = false\ngrace_period_seconds = 0\nshutdown_timeout_seconds = 1|' \
      -e 's|^name = .*|name = "bench"|' \
      -e 's|^upstreams = .*|upstreams = ["127.0.0.1:18081"]|' \
      -e "s|^mode = .*|mode = \"$4\"|" \
      "$example" > "$1"
}
