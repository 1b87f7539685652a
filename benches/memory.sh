#!/usr/bin/env bash
# Resident memory of the real proxy process with EasyList + EasyPrivacy loaded as blocklists
# (the example site, 2 worker threads), after start and after serving requests.
# Usage: benches/memory.sh
# The full lists are read from CONSENTGATE_LISTS_DIR (default conf/lists, where
# `scripts/fetch-lists` puts them).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
data=${CONSENTGATE_LISTS_DIR:-conf/lists}
for f in easylist.txt easyprivacy.txt; do
  [ -f "$data/$f" ] || { echo "memory.sh: $data/$f is missing; run scripts/fetch-lists $data (or set CONSENTGATE_LISTS_DIR)" >&2; exit 1; }
done
data=$(cd "$data" && pwd)
cargo build --release --quiet --bin consentgate
bench_workdir cg-mem
python3 -m http.server 18481 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
opid=$!
bench_pids=("$opid")
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for lists in none both; do
  # The example site on 2 worker threads, in front of a static file server.
  bench_config "$work/c.toml" 18480 18490 enforce 127.0.0.1:18481
  sed -i 's|^threads = 1$|threads = 2|' "$work/c.toml"
  if [ "$lists" = both ]; then
    printf '[[site.blocklist]]\ncategory = "analytics"\npath = "%s/easyprivacy.txt"\n[[site.blocklist]]\ncategory = "marketing"\npath = "%s/easylist.txt"\n' "$data" "$data" >> "$work/c.toml"
  fi
  target/release/consentgate run --config "$work/c.toml" --upgrade-sock "$work/u.sock" >/dev/null 2>&1 &
  pid=$!
  bench_pids=("$opid" "$pid")
  wait_http http://127.0.0.1:18480/
  start=$(rss $pid)
  for i in $(seq 2000); do printf 'url = "http://127.0.0.1:18480/p%s?utm=1"\noutput = "/dev/null"\n' "$i"; done > "$work/urls"
  curl -s -K "$work/urls" >/dev/null || true
  after=$(rss $pid)
  echo "lists=$lists rss_after_start_kib=$start rss_after_2000_requests_kib=$after ($((after / 1024)) MiB)"
  kill $pid; wait $pid 2>/dev/null || true
done
