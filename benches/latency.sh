#!/usr/bin/env bash
# Open-loop latency at a fixed offered load (issue 13: "p99 latency with gating within 10% of
# mode = off at the same offered load"), for, in one session and interleaved:
#   consentgate mode=off (same binary)            cg-off
#   consentgate enforce, no consent in the cookie  cg-noconsent
#   consentgate enforce, with consent              cg-consent
#   nginx + Lua gating peer                        nginx-lua
# Method: the nginx-lua peer's capacity is measured first (closed loop, `wrk -t1 -c32`, max
# req/s, median of 3 runs of CAPACITY_SECONDS); then, at 50% and 80% of it, examples/openloop.rs
# schedules requests at that constant rate over 64 keep-alive connections and times each from
# its scheduled time to the last byte of its response (wrk2's method: queueing counts). Targets
# run round-robin, ROUNDS rounds per load, each run WARMUP seconds unmeasured then DURATION
# seconds measured. Prints every run and a Markdown table of medians.
# CPU placement (PIN=1, the default on 2+ CPUs): the load generators (wrk, openloop) run on the
# last CPU, everything that serves (consentgate, the nginx peers, the origin) on the others, so
# the generator's own work does not queue behind the proxy's or the other way round. PIN=0
# leaves placement to the scheduler. Usage:
#   benches/latency.sh [ROUNDS (default 3)]   DURATION=10 WARMUP=2 CONNECTIONS=64
#   LOADS="50 80" (percent of capacity)  CAPACITY_SECONDS=5  PIN=1
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
rounds=${1:-3}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-64}
loads=${LOADS:-50 80}
cap_seconds=${CAPACITY_SECONDS:-5}
cargo build --release --quiet --example openloop
bench_with_peers cg-latency wrk nginx-light libnginx-mod-http-lua
bench_cg_pair

bench_pin_servers "$off_pid" "$gate_pid" "$(cat /tmp/cg-bench/origin.pid)" \
  "$(cat /tmp/cg-bench/nginx-proxy.pid)" "$(cat /tmp/cg-bench/nginx-lua.pid)"

declare -A url hdr
url[cg-off]=http://127.0.0.1:18084/;       hdr[cg-off]="Cookie: $consent"
url[cg-noconsent]=http://127.0.0.1:18085/; hdr[cg-noconsent]="Cookie: $noconsent"
url[cg-consent]=http://127.0.0.1:18085/;   hdr[cg-consent]="Cookie: $consent"
url[nginx-lua]=http://127.0.0.1:18083/;    hdr[nginx-lua]="Cookie: $consent"
targets=(cg-off cg-noconsent cg-consent nginx-lua)

# The peer's capacity: closed loop, as many requests as 32 connections get through.
bench_capacity nginx-lua "${url[nginx-lua]}" "${hdr[nginx-lua]}"

openloop() { # TARGET RATE SECONDS_MEASURED SECONDS_WARMUP
  "${gen[@]}" target/release/examples/openloop --url "${url[$1]}" -H "${hdr[$1]}" \
    --rate "$2" --duration "$3" --warmup "$4" --connections "$connections"
}
# Warm up each target once (connection pools, allocator).
for t in "${targets[@]}"; do openloop "$t" 1000 1 0 >/dev/null; done

results="$work/results"
for load in $loads; do
  rate=$(python3 -c "print(round($capacity * $load / 100))")
  for r in $(seq "$rounds"); do
    for t in "${targets[@]}"; do
      line=$(openloop "$t" "$rate" "$duration" "$warmup")
      echo "load ${load}% round $r $t $line"
      echo "$load $r $t $line" >> "$results"
    done
  done
done

python3 - "$results" "$capacity" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)  # (load, target) -> [dict]
by_round = collections.defaultdict(dict)  # (load, round) -> target -> p99
for line in open(sys.argv[1]):
    load, r, t, *kv = line.split()
    d = {k: float(v) for k, v in (x.split("=") for x in kv)}
    runs[(load, t)].append(d)
    by_round[(load, r)][t] = d["p99_us"]
med = lambda load, t, k: statistics.median(d[k] for d in runs[(load, t)])
print(f"\nnginx-lua capacity (closed loop, wrk -t1 -c32): {float(sys.argv[2]):.0f} req/s")
print("\n| load | target | offered req/s | achieved req/s | p50 µs | p99 µs | p99.9 µs | p99 vs cg-off (medians) | p99 vs cg-off (per-round ratios) | p99 runs (µs) | errors+unfinished |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
loads = sorted({l for l, _ in runs}, key=int)
for load in loads:
    off = med(load, "cg-off", "p99_us")
    for t in ["cg-off", "cg-noconsent", "cg-consent", "nginx-lua"]:
        p99 = med(load, t, "p99_us")
        # Paired: each run against cg-off of the same round, run seconds before it.
        paired = statistics.median(
            rr[t] / rr["cg-off"] - 1 for (l, _), rr in by_round.items() if l == load and t in rr
        )
        bad = sum(d["errors"] + d["unfinished"] for d in runs[(load, t)])
        p99_runs = ", ".join("%.0f" % d["p99_us"] for d in runs[(load, t)])
        print(f"| {load}% | {t} | {med(load, t, 'offered_rps'):.0f} | {med(load, t, 'achieved_rps'):.0f} "
              f"| {med(load, t, 'p50_us'):.0f} | {p99:.0f} | {med(load, t, 'p99_9_us'):.0f} "
              f"| {100 * (p99 / off - 1):+.1f}% | {100 * paired:+.1f}% "
              f"| {p99_runs} | {bad:.0f} |")
PY
