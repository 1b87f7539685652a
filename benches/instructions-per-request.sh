#!/usr/bin/env bash
# Instructions executed by the proxy per request (valgrind callgrind), for the same three
# consentgate targets as cpu-per-request.sh: mode=off, enforce without consent (the worst case:
# the client sends its tracking cookies, so every response also carries expiry lines), enforce
# with consent; plus cg-noconsent-steady, a visitor without consent who holds no tracking
# cookie. Configuration and cookies come from benches/common.sh, as for cpu-per-request.sh.
# Instruction counts do not move with the machine's noise, so this is the repeatable check of
# what gating costs; cpu-per-request.sh gives the wall-clock CPU figures.
# Method: each target runs alone under callgrind in front of the benchmark origin ($BENCH_PEERS_DIR); 200 warm-up requests on one keep-alive connection, counters
# zeroed, N more requests (default 2000), counters dumped; Ir / N is the per-request cost,
# start-up and shut-down excluded. Usage: benches/instructions-per-request.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
n=${1:-2000}
bench_with_peers cg-instr valgrind nginx-light libnginx-mod-http-lua
cargo build --release --quiet --example bare-pingora
# KEEP=1 keeps the callgrind dumps (for callgrind_annotate) and says where.
if [ -n "${KEEP:-}" ]; then echo "dumps in $work" >&2; fi

measure() { # target mode cookie
  bench_config "$work/$1.toml" 18186 18196 "$2"
  callgrind_instructions "$1" "$work/$1.toml" "$3" "$n"
}
{
  measure cg-off off "$consent"
  measure cg-noconsent enforce "$noconsent"
  measure cg-noconsent-steady enforce "$steady"
  measure cg-consent enforce "$consent"
  # The references: pingora's own proxy loop alone (examples/bare-pingora.rs), and the nginx +
  # Lua gating peer run as one process (master_process off) on the measured port.
  callgrind_run pingora-bare "$consent" "$n" target/release/examples/bare-pingora 127.0.0.1:18186 127.0.0.1:18081
  sed -e 's/listen 127.0.0.1:18083/listen 127.0.0.1:18186/' -e "s|/tmp/cg-bench/nginx-lua|$work/nginx-lua|" \
    "$peers/nginx-lua-gate.conf" > "$work/nginx-lua.conf"
  callgrind_run nginx-lua "$consent" "$n" nginx -c "$work/nginx-lua.conf" -g "daemon off; master_process off;"
} > "$work/results"
python3 - "$work/results" "$n" <<'PY'
import sys
n = int(sys.argv[2])
ir = {t: int(v) / n for t, v in (l.split() for l in open(sys.argv[1]))}
print(f"\n| target | instructions/request | vs cg-off |\n|---|---|---|")
for t in ["cg-off", "cg-noconsent", "cg-noconsent-steady", "cg-consent", "pingora-bare", "nginx-lua"]:
    print(f"| {t} | {ir[t]:,.0f} | {100 * (ir[t] / ir['cg-off'] - 1):+.1f}% |")
PY
