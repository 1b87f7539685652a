# Shared by the proxy benchmarks (sourced): the site configuration and request cookies every
# consentgate target is measured with, so the scripts compare the same thing.

# The Cookie header values: no consent (the worst case: tracking cookies come back on every
# request), no consent in the steady state (the browser holds no tracking cookie: the proxy
# never let one through), and consent to everything optional.
noconsent='SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'
steady='SESSIONID=abc123'
consent='consent=analytics,marketing; SESSIONID=abc123; _ga=GA1.2.111.222; _fbp=fb.1.123.456'

# bench_config FILE PORT ADMIN_PORT MODE [UPSTREAM]: the example site (conf/example.toml) in
# front of UPSTREAM (default: the benchmark origin, origin.conf of the benchmark peers,
# 127.0.0.1:18081), 1 worker thread, access log off.
bench_config() {
  local example="${BASH_SOURCE[0]%/*}/../conf/example.toml"
  sed -e "s|^listen = .*|listen = [\"127.0.0.1:$2\"]|" \
      -e "s|^admin = .*|admin = \"127.0.0.1:$3\"|" \
      -e 's|^threads = .*|threads = 1\naccess_log = false\ngrace_period_seconds = 0\nshutdown_timeout_seconds = 1|' \
      -e 's|^name = .*|name = "bench"|' \
      -e "s|^upstreams = .*|upstreams = [\"${5:-127.0.0.1:18081}\"]|" \
      -e "s|^mode = .*|mode = \"$4\"|" \
      "$example" > "$1"
}

# bench_config_tls FILE PORT ADMIN_PORT MODE CERT KEY: bench_config, serving on PORT with TLS
# (`listen_tls`, HTTP/1.1 and HTTP/2 by ALPN) with the certificate CERT / KEY instead of plain
# HTTP.
bench_config_tls() {
  bench_config "$1" "$2" "$3" "$4"
  sed -i "s|^listen = |listen_tls = |" "$1"
  printf '\n[[proxy.certificate]]\ncert = "%s"\nkey = "%s"\n' "$5" "$6" >> "$1"
}

# bench_cg_start CONFIG: starts the release consentgate with CONFIG (log in CONFIG.log), adds
# it to bench_pids and sets $cg_pid.
bench_cg_start() {
  target/release/consentgate run --config "$1" --upgrade-sock "${1%.toml}.sock" >"$1.log" 2>&1 &
  cg_pid=$!
  bench_pids+=("$cg_pid")
}

# bench_cg_pair: the two consentgate targets the proxy benchmarks compare, from the same binary
# in front of the benchmark origin: $off_pid (mode = "off", http://127.0.0.1:18084/) and
# $gate_pid (mode = "enforce", http://127.0.0.1:18085/), waited for together with the nginx
# peers (18082, 18083).
bench_cg_pair() {
  bench_config "$work/off.toml" 18084 18094 off
  bench_config "$work/gate.toml" 18085 18095 enforce
  bench_cg_start "$work/off.toml"
  off_pid=$cg_pid
  bench_cg_start "$work/gate.toml"
  gate_pid=$cg_pid
  for port in 18084 18085 18082 18083; do wait_http "http://127.0.0.1:$port/"; done
}

# cpu_ticks PID: CPU clock ticks (user+sys, getconf CLK_TCK per second) used so far by PID, its
# threads and its children's threads (an nginx master and its workers).
cpu_ticks() {
  local total=0 p t
  for p in $(pgrep -P "$1") "$1"; do
    for t in /proc/"$p"/task/*/stat; do
      # Fields counted after the ')' closing the command name: 12 utime, 13 stime.
      total=$((total + $(sed 's/^.*) //' "$t" | awk '{print $12 + $13}')))
    done
  done
  echo "$total"
}

# bench_pin CPUS PID...: moves each PID, its threads and its children (nginx workers) to the
# CPU list CPUS (taskset syntax, e.g. 0 or 0-2).
bench_pin() {
  local cpus=$1 p c
  shift
  for p in "$@"; do
    for c in "$p" $(pgrep -P "$p"); do taskset -a -p -c "$cpus" "$c" >/dev/null; done
  done
}

# bench_pin_servers PID...: with PIN=1 (the default on 2+ CPUs), moves the PIDs (everything
# that serves: proxies, origin, peers) to every CPU but the last, and sets $gen to the
# `taskset` prefix that runs a load generator on the last one, so the generator's work does
# not queue behind the servers' or the other way round. PIN=0, or one CPU, leaves placement to
# the scheduler ($gen empty).
bench_pin_servers() {
  local ncpu
  ncpu=$(nproc)
  gen=()
  if [ "${PIN:-1}" = 1 ] && [ "$ncpu" -ge 2 ]; then
    bench_pin "0-$((ncpu - 2))" "$@"
    gen=(taskset -c "$((ncpu - 1))")
    echo "pinned: load generators on CPU $((ncpu - 1)), proxies and origin on CPU 0-$((ncpu - 2))"
  else
    echo "not pinned"
  fi
}

# bench_capacity NAME URL HEADER: sets $capacity to the closed-loop capacity of URL (`wrk -t1
# -c32` with HEADER, $cap_seconds each, the median of 3 runs; the generator placed by $gen) and
# prints each run.
bench_capacity() {
  local caps=() c i
  for i in 1 2 3; do
    c=$("${gen[@]}" wrk -t1 -c32 -d"${cap_seconds}s" -H "$3" "$2" | awk '/Requests\/sec/ {print $2}')
    echo "capacity run $i: $1 $c req/s"
    caps+=("$c")
  done
  capacity=$(printf '%s\n' "${caps[@]}" | sort -g | sed -n 2p)
  echo "capacity (median of 3): $capacity req/s"
}

# bench_peers: sets $peers to the benchmark peers directory (its absolute path), or exits saying
# what to set. The benchmark origin and nginx peers are not part of this repository: they come
# with the benchmark host's shared tooling (../shared/bench beside the checkout) or
# BENCH_PEERS_DIR.
bench_peers() {
  peers=${BENCH_PEERS_DIR:-../shared/bench}
  [ -x "$peers/peers.sh" ] || {
    echo "no benchmark peers in $peers (set BENCH_PEERS_DIR to a directory with peers.sh, origin.conf, nginx-proxy.conf, nginx-lua-gate.conf, cpu-per-request.sh)" >&2
    exit 1
  }
  peers=$(cd "$peers" && pwd)
}

# bench_with_peers NAME PACKAGE...: what a benchmark against the peers starts with: the peers
# found (else exit), the packages installed, the release binary built, $work made
# (bench_workdir NAME) and the peers started.
bench_with_peers() {
  local name=$1
  shift
  bench_peers
  scripts/setup "$@"
  cargo build --release --quiet --bin consentgate
  bench_workdir "$name"
  bench_peers_start
}

# bench_peers_start: (re)starts the peers; bench_cleanup stops them.
bench_peers_start() {
  "$peers/peers.sh" stop >/dev/null 2>&1 || true
  "$peers/peers.sh" start >/dev/null
  peers_started=1
}

# bench_workdir NAME: a new directory $work (/tmp/NAME-XXXX), and bench_cleanup on exit.
# Processes the script starts go in bench_pids so the cleanup ends them.
bench_pids=()
bench_workdir() {
  work=$(mktemp -d "/tmp/$1-XXXX")
  trap bench_cleanup EXIT
}

# bench_cleanup: ends bench_pids, stops the peers if started, removes $work (KEEP=1 keeps it).
bench_cleanup() {
  local p
  for p in ${bench_pids[@]+"${bench_pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  if [ -n "${peers_started:-}" ]; then "$peers/peers.sh" stop >/dev/null 2>&1 || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}

# wait_http URL [SECONDS (default 10)]: until URL answers (any status), polling every 0.1 s.
wait_http() {
  local _
  for _ in $(seq "$(( ${2:-10} * 10 ))"); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
}

# callgrind_instructions NAME CONFIG COOKIE N: prints "NAME Ir", the instructions the proxy ran
# for N requests with COOKIE on one keep-alive connection to its port 18186, after 200 warm-up
# requests (counters zeroed after them; start-up and shut-down excluded). The dumps stay in
# $work (KEEP=1 keeps them for callgrind_annotate).
callgrind_instructions() {
  callgrind_run "$1" "$3" "$4" target/release/consentgate run --config "$2"
}

# callgrind_run NAME COOKIE N COMMAND...: the same measurement for any server COMMAND that
# listens on 127.0.0.1:18186 (examples/bare-pingora, nginx with master_process off).
callgrind_run() {
  local name=$1 cookie=$2 count=$3 pid dump
  shift 3
  [ -f "$work/client.py" ] || cat > "$work/client.py" <<'PY'
import http.client, sys
port, n, cookie = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", "/", headers={"Cookie": cookie})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  bench_pids=("$pid")
  wait_http http://127.0.0.1:18186/ 40
  python3 "$work/client.py" 18186 200 "$cookie"
  callgrind_control -z "$pid" >/dev/null
  python3 "$work/client.py" 18186 "$count" "$cookie"
  callgrind_control -d "$pid" >/dev/null
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  bench_pids=()
  # The dump after zeroing is the file with the highest suffix.
  dump=$(ls -v "$work/$name.out".* | tail -1)
  echo "$name $(awk '/^summary:/ {print $2}' "$dump")"
}
