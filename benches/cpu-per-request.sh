#!/usr/bin/env bash
# Proxy CPU microseconds per request (user+sys of the proxy process / requests served in one
# wrk run), for, in one session and interleaved:
#   consentgate mode=off (same binary)           cg-off
#   consentgate enforce, no consent in the cookie cg-noconsent
#   consentgate enforce, with consent             cg-consent
#   plain nginx proxy                             nginx
#   nginx + Lua gating peer                       nginx-lua
#   pingora's own proxy loop, nothing else        pingora-bare (examples/bare-pingora.rs: the
#                                                 floor under any pingora-based proxy)
# Method: $BENCH_PEERS_DIR/cpu-per-request.sh; every target gets the same Cookie header shape.
# Prints every run and the medians as a Markdown table. Usage:
#   benches/cpu-per-request.sh [ROUNDS (default 5)]     DURATION=8 (seconds per wrk run)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
rounds=${1:-5}
bench_with_peers cg-bench wrk nginx-light libnginx-mod-http-lua

bench_cg_pair
cargo build --release --quiet --example bare-pingora
target/release/examples/bare-pingora 127.0.0.1:18087 127.0.0.1:18081 >"$work/bare.log" 2>&1 &
bare_pid=$!
bench_pids+=("$bare_pid")
wait_http http://127.0.0.1:18087/

noconsent="Cookie: $noconsent"
consent="Cookie: $consent"
declare -A url pid hdr
url[cg-off]=http://127.0.0.1:18084/;      pid[cg-off]=$off_pid;                          hdr[cg-off]=$consent
url[cg-noconsent]=http://127.0.0.1:18085/; pid[cg-noconsent]=$gate_pid;                  hdr[cg-noconsent]=$noconsent
url[cg-consent]=http://127.0.0.1:18085/;  pid[cg-consent]=$gate_pid;                     hdr[cg-consent]=$consent
url[nginx]=http://127.0.0.1:18082/;       pid[nginx]=$(cat /tmp/cg-bench/nginx-proxy.pid); hdr[nginx]=$consent
url[nginx-lua]=http://127.0.0.1:18083/;   pid[nginx-lua]=$(cat /tmp/cg-bench/nginx-lua.pid); hdr[nginx-lua]=$consent
url[pingora-bare]=http://127.0.0.1:18087/; pid[pingora-bare]=$bare_pid;               hdr[pingora-bare]=$consent
targets=(cg-off cg-noconsent cg-consent nginx nginx-lua pingora-bare)

# Warm up each target once (connection pools, allocator).
for t in "${targets[@]}"; do DURATION=2 "$peers/cpu-per-request.sh" "${url[$t]}" "${pid[$t]}" -H "${hdr[$t]}" >/dev/null; done
results="$work/results"
for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    line=$("$peers/cpu-per-request.sh" "${url[$t]}" "${pid[$t]}" -H "${hdr[$t]}")
    echo "round $r $t $line"
    echo "$r $t $(sed 's/.*cpu_us_per_request=//' <<<"$line") $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$line")" >> "$results"
  done
done
python3 benches/benchlib.py cpu-table "$results" nginx-lua
