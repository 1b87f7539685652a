#!/usr/bin/env bash
# Slowloris with a standard tool against the real proxy, on loopback, bounded in time: Debian's
# slowhttptest holds CONNS connections (default 20000, capped by this shell's open-files limit)
# that send a header line every 10 s and never finish it, for 60 s, while a normal request is
# timed every 5 s. Prints the proxy's peak resident memory and the proxy's connection metrics.
# Usage: benches/slowloris.sh [CONNS]   (builds target/release/consentgate if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
want=${1:-20000}
command -v slowhttptest >/dev/null || { apt-get update -qq && apt-get install -y -qq slowhttptest >/dev/null; }
[ -x target/release/consentgate ] || cargo build --release --quiet --bin consentgate
ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
conns=$(( want < limit - 100 ? want : limit - 100 ))
bench_workdir cg-slowloris
python3 -m http.server 18581 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
opid=$!
bench_pids=("$opid")
bench_config "$work/c.toml" 18580 18590 off 127.0.0.1:18581
target/release/consentgate run --config "$work/c.toml" --upgrade-sock "$work/u.sock" >"$work/proxy.log" 2>&1 &
pid=$!
bench_pids=("$opid" "$pid")
wait_http http://127.0.0.1:18580/
echo "open_files_limit $limit slowloris_connections $conns"
echo "rss_start_kib $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
# -H slowloris, -c connections, -r per second, -i seconds between header lines, -l test length.
timeout 90 slowhttptest -H -c "$conns" -r 2000 -i 10 -l 60 -s 8192 -t GET \
  -u http://127.0.0.1:18580/ -p 5 -g -o "$work/stats" >"$work/slowhttptest.log" 2>&1 &
sid=$!
peak=0
for t in $(seq 5 5 60); do
  sleep 5
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  [ "$rss" -gt "$peak" ] && peak=$rss
  line=$(curl -s -o /dev/null -m 30 -w '%{http_code} %{time_total}' http://127.0.0.1:18580/ || echo "000 -")
  open=$(curl -s http://127.0.0.1:18590/metrics | awk '/^consentgate_connections_open/ {print $2}')
  echo "t=${t}s normal_request $line rss_kib $rss connections_open $open"
done
wait $sid || true
echo "rss_peak_kib $peak"
grep -E "^(Test type|Number of connections|Interval between follow up data|Connections per seconds)" "$work/slowhttptest.log" | sed 's/^/# /' || true
tail -n 3 "$work/stats.csv" 2>/dev/null | sed 's/^/# slowhttptest: /' || true
curl -s http://127.0.0.1:18590/metrics | grep -E "^consentgate_(connection|client_timeouts)" || true
