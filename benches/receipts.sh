#!/usr/bin/env bash
# Consent receipts (issue 12), two figures:
# 1. instructions per request with receipts off and on (valgrind callgrind, the method of
#    instructions-per-request.sh): the example site in enforce mode, the consent visitor of
#    benches/common.sh (a consent cookie on every request, so the receipt check runs on every
#    one); 200 warm-up requests (the first records the receipt), counters zeroed, N measured.
#    The only difference between the two targets is the [receipts] table.
# 2. receipts written per second: new visitors (a distinct OneTrust consentId per request) on
#    4 keep-alive connections, SQLite store (WAL), until M receipts are written
#    (consentgate_receipts_written_total); none may be dropped.
# Usage: benches/receipts.sh [N] [M]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
n=${1:-2000}
m=${2:-20000}
bench_with_peers cg-receipts valgrind nginx-light libnginx-mod-http-lua

# config FILE RECEIPTS(0/1): the benchmark site, with OneTrust read too, and [receipts].
config() {
  bench_config "$1" 18186 18196 enforce
  sed -i 's|^cookie = "consent"|cookie = "consent"\nsources = ["first-party", "onetrust"]|' "$1"
  if [ "$2" = 1 ]; then
    printf '\n[receipts]\npath = "%s"\nqueue_capacity = 100000\n' "$work/$(basename "$1" .toml).db" >> "$1"
  fi
}

measure() { # target receipts
  config "$work/$1.toml" "$2"
  callgrind_instructions "$1" "$work/$1.toml" "$consent" "$n"
}
{
  measure cg-receipts-off 0
  measure cg-receipts-on 1
} > "$work/results"
python3 - "$work/results" "$n" <<'PY'
import sys
n = int(sys.argv[2])
ir = {t: int(v) / n for t, v in (l.split() for l in open(sys.argv[1]))}
off = ir["cg-receipts-off"]
print("\n| target | instructions/request | vs receipts off |\n|---|---|---|")
for t, v in ir.items():
    print(f"| {t} | {v:,.0f} | {100 * (v / off - 1):+.2f}% |")
PY

# Receipts written per second.
config "$work/rate.toml" 1
target/release/consentgate run --config "$work/rate.toml" >"$work/rate.log" 2>&1 &
bench_pids=($!)
wait_http http://127.0.0.1:18186/ 20
python3 - 18186 18196 "$m" <<'PY'
import http.client, sys, threading, time, re
port, admin, m = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", admin)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total
def visitors(k):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(k, m, 4):
        cookie = ("OptanonConsent=isGpcEnabled=0&consentId=bench-%d&interactionCount=1"
                  "&groups=C0001%%3A1%%2CC0002%%3A%d%%2CC0003%%3A1%%2CC0004%%3A0") % (i, i % 2)
        c.request("GET", "/", headers={"Cookie": cookie})
        r = c.getresponse(); r.read()
start = time.monotonic()
threads = [threading.Thread(target=visitors, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
sent = time.monotonic() - start
while metric("consentgate_receipts_written_total") < m and time.monotonic() - start < 120:
    time.sleep(0.05)
total = time.monotonic() - start
written = metric("consentgate_receipts_written_total")
dropped = metric("consentgate_receipts_dropped_total")
print(f"\n{m} new visitors sent in {sent:.2f} s; {written:.0f} receipts written in {total:.2f} s "
      f"= {written / total:,.0f} receipts/s (dropped {dropped:.0f})")
PY
