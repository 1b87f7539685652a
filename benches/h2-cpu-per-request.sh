#!/usr/bin/env bash
# Proxy CPU microseconds per request over TLS + HTTP/2: user+sys CPU of the proxy process (its
# threads and children, /proc/PID/task/*/stat) during one h2load run, divided by the requests
# that succeeded in it, for, in one session and interleaved:
#   consentgate mode=off (same binary), TLS       cg-off
#   consentgate enforce, no consent in the cookie cg-noconsent
#   consentgate enforce, with consent             cg-consent
#   plain nginx proxy, TLS + HTTP/2               nginx-h2 (benches/nginx-h2.conf)
# All in front of the benchmark origin (the peers' origin.conf, HTTP/1.1 upstream), one worker
# each, access log off, the same throwaway self-signed ECDSA P-256 certificate (made with
# openssl in the work directory). Load: `h2load -t1 -c32 -m10 -D DURATION` (32 connections, 10
# concurrent streams each; the 32 TLS handshakes fall inside the measured run, equal for every
# target and a few milliseconds of CPU against seconds). Every target gets the same Cookie
# header as in cpu-per-request.sh. Prints every run and a Markdown table of medians. Usage:
#   benches/h2-cpu-per-request.sh [ROUNDS (default 5)]   DURATION=8 CLIENTS=32 STREAMS=10
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
rounds=${1:-5}
duration=${DURATION:-8}
clients=${CLIENTS:-32}
streams=${STREAMS:-10}
bench_with_peers cg-h2 nghttp2-client openssl nginx-light libnginx-mod-http-lua
command -v h2load >/dev/null || { echo "h2load missing (Debian package nghttp2-client)" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
bench_config_tls "$work/off.toml" 18443 18493 off "$work/cert.pem" "$work/key.pem"
bench_config_tls "$work/gate.toml" 18444 18494 enforce "$work/cert.pem" "$work/key.pem"
bench_cg_start "$work/off.toml"
off_pid=$cg_pid
bench_cg_start "$work/gate.toml"
gate_pid=$cg_pid
sed "s|@WORK@|$work|g" benches/nginx-h2.conf > "$work/nginx-h2.conf"
nginx -c "$work/nginx-h2.conf"
nginx_pid=$(cat "$work/nginx-h2.pid")
bench_pids+=("$nginx_pid")
for port in 18443 18444 18445; do
  for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.1; done
done

declare -A url pid hdr
url[cg-off]=https://127.0.0.1:18443/;       pid[cg-off]=$off_pid;        hdr[cg-off]="Cookie: $consent"
url[cg-noconsent]=https://127.0.0.1:18444/; pid[cg-noconsent]=$gate_pid; hdr[cg-noconsent]="Cookie: $noconsent"
url[cg-consent]=https://127.0.0.1:18444/;   pid[cg-consent]=$gate_pid;   hdr[cg-consent]="Cookie: $consent"
url[nginx-h2]=https://127.0.0.1:18445/;     pid[nginx-h2]=$nginx_pid;    hdr[nginx-h2]="Cookie: $consent"
targets=(cg-off cg-noconsent cg-consent nginx-h2)

# measure TARGET SECONDS: one h2load run; prints "requests=... rps=... cpu_us_per_request=...".
measure() {
  local t0 t1 out
  t0=$(cpu_ticks "${pid[$1]}")
  out=$(h2load -t1 -c"$clients" -m"$streams" -D "$2" -H "${hdr[$1]}" "${url[$1]}")
  t1=$(cpu_ticks "${pid[$1]}")
  python3 - "$t0" "$t1" "$(getconf CLK_TCK)" "$out" <<'PY'
import re, sys
t0, t1, hz, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
ok, failed, errored = (int(x) for x in m.groups())
rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1)
proto = re.search(r"Application protocol: (\S+)", out)
cipher = re.search(r"Cipher: (\S+)", out)
status2xx = re.search(r"status codes: (\d+) 2xx", out)
print(f"requests={ok} failed={failed} errored={errored} non2xx={ok - int(status2xx.group(1)) if status2xx else 'n/a'} "
      f"rps={rps} proto={proto.group(1) if proto else '?'} cipher={cipher.group(1) if cipher else '?'} "
      f"cpu_us_per_request={(t1 - t0) / hz * 1e6 / max(ok, 1):.2f}")
PY
}

# Warm up each target once (connection pools, allocator), and show what was negotiated.
for t in "${targets[@]}"; do echo "warm-up $t $(measure "$t" 2)"; done
results="$work/results"
for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    line=$(measure "$t" "$duration")
    echo "round $r $t $line"
    echo "$r $t $(sed 's/.*cpu_us_per_request=//' <<<"$line") $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$line")" >> "$results"
  done
done
python3 benches/benchlib.py cpu-table "$results" nginx-h2 "target (TLS, HTTP/2)"
