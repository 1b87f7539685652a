#!/usr/bin/env bash
# Heap allocations per request, counted by the allocator itself (the `alloc-count` build
# feature: src/alloc_count.rs wraps mimalloc and counts every alloc, alloc_zeroed and realloc),
# for the same targets as instructions-per-request.sh: consentgate mode=off, enforce without
# consent (worst case and steady state), enforce with consent, and pingora's own proxy loop
# (examples/bare-pingora.rs, built with the same feature). nginx is not measured: it allocates
# from per-request pools, not through malloc per object (callgrind counts 7 calls a request).
# Method: each target alone in front of the benchmark origin ($BENCH_PEERS_DIR); 200 warm-up
# requests on one keep-alive connection; the counter read twice back to back (what one read
# itself costs), N requests (default 5000) on the same connection, the counter read again;
# (after - before - one read) / N. consentgate's counter is `consentgate_allocations_total` on
# the admin `/metrics`, bare-pingora's is `GET /__allocations`. The counts do not move with the
# machine's noise. Leaves target/release built with the feature: the other benchmark scripts
# build without it again. Usage: benches/allocations-per-request.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
n=${1:-5000}
bench_with_peers cg-allocs nginx-light libnginx-mod-http-lua
cargo build --release --quiet --features alloc-count --bin consentgate --example bare-pingora

cat > "$work/count.py" <<'PY'
import http.client, re, sys
port, counter_url, n, cookie = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
def requests(k):
    for _ in range(k):
        c.request("GET", "/", headers={"Cookie": cookie})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
def read():
    host, path = counter_url.split("/", 1)
    a = http.client.HTTPConnection(*host.split(":"))
    a.request("GET", "/" + path)
    body = a.getresponse().read().decode()
    a.close()
    m = re.search(r"^(?:consentgate_allocations_total|allocations) (\d+)$", body, re.M)
    b = re.search(r"^(?:consentgate_allocated_bytes_total|bytes) (\d+)$", body, re.M)
    return int(m.group(1)), int(b.group(1))
requests(200)
r0 = read()
r1 = read()
requests(n)
r2 = read()
own = (r1[0] - r0[0], r1[1] - r0[1])
per = ((r2[0] - r1[0] - own[0]) / n, (r2[1] - r1[1] - own[1]) / n)
print(f"{per[0]:.2f} {per[1]:.0f}")
PY

measure() { # name cookie counter-url command...
  local name=$1 cookie=$2 counter=$3 pid
  shift 3
  "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  bench_pids=("$pid")
  wait_http http://127.0.0.1:18186/ 20
  echo "$name $(python3 "$work/count.py" 18186 "$counter" "$n" "$cookie")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  bench_pids=()
}
cg() { # name mode cookie
  bench_config "$work/$1.toml" 18186 18196 "$2"
  measure "$1" "$3" 127.0.0.1:18196/metrics target/release/consentgate run --config "$work/$1.toml"
}
{
  cg cg-off off "$consent"
  cg cg-noconsent enforce "$noconsent"
  cg cg-noconsent-steady enforce "$steady"
  cg cg-consent enforce "$consent"
  measure pingora-bare "$consent" 127.0.0.1:18186/__allocations \
    target/release/examples/bare-pingora 127.0.0.1:18186 127.0.0.1:18081
} > "$work/results"
python3 - "$work/results" "$n" <<'PY'
import sys
rows = {t: (float(a), float(b)) for t, a, b in (l.split() for l in open(sys.argv[1]))}
print(f"\nN = {sys.argv[2]} requests a target\n\n| target | allocations/request | bytes/request | allocations vs cg-off |\n|---|---|---|---|")
for t, (a, b) in rows.items():
    print(f"| {t} | {a:.1f} | {b:,.0f} | {a - rows['cg-off'][0]:+.1f} |")
PY
