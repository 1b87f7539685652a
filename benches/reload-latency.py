#!/usr/bin/env python3
"""Request latency with and without configuration reloads, with the full EasyList (marketing)
and EasyPrivacy (analytics) loaded (issue 9). Loopback only, bounded in time. The figures it
prints are recorded in docs/BENCHMARKS.md, "Reload".

  benches/reload-latency.py [--bin target/release/consentgate] [--rounds 10] [--seconds 2]
                            [--every 0.5]

The proxy runs with `threads = 1` in front of a loopback origin (keep-alive). One client sends
requests back to back on one kept-alive connection and times each (send to last byte); each
carries a Referer, so the blocklists are consulted (no rule matches: the origin answers).
Windows of `--seconds` without reloads alternate with windows during which another client
sends `POST /reload` to the admin port every `--every` seconds (or right after the previous
answer when a reload takes longer: reloads take turns). Alternating spreads other load on the
machine over both kinds alike. Prints p50 / p99 / p99.9 / max latency of each kind, and the
reload count and time.

The lists are read from $EASYLIST and $EASYPRIVACY if set, else from easylist.txt and
easyprivacy.txt in $CONSENTGATE_LISTS_DIR (default conf/lists, where `scripts/fetch-lists`
puts them), as benches/memory.sh does.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, start_origin  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = time.monotonic() + 600  # the whole run is bounded


def list_paths():
    data = os.environ.get("CONSENTGATE_LISTS_DIR", os.path.join(ROOT, "conf", "lists"))
    paths = {
        "EASYLIST": os.environ.get("EASYLIST", os.path.join(data, "easylist.txt")),
        "EASYPRIVACY": os.environ.get("EASYPRIVACY", os.path.join(data, "easyprivacy.txt")),
    }
    missing = [f"{k} ({p})" for k, p in paths.items() if not os.path.isfile(p)]
    if missing:
        sys.exit(
            "missing blocklists: " + ", ".join(missing) + "\nset EASYLIST and EASYPRIVACY to the "
            "files, or CONSENTGATE_LISTS_DIR to their folder; scripts/fetch-lists DIR downloads them"
        )
    return paths


def write_config(folder, port, admin, origin, lists):
    path = os.path.join(folder, "consentgate.toml")
    with open(path, "w") as f:
        f.write(f"""[proxy]
listen = ["127.0.0.1:{port}"]
admin = "127.0.0.1:{admin}"
threads = 1
access_log = false
grace_period_seconds = 0
shutdown_timeout_seconds = 1

[[site]]
name = "bench"
hosts = ["*"]
upstreams = ["127.0.0.1:{origin}"]

[[site.blocklist]]
category = "analytics"
path = "{lists['EASYPRIVACY']}"

[[site.blocklist]]
category = "marketing"
path = "{lists['EASYLIST']}"
""")
    return path


def wait_ready(port, admin, proc):
    while time.monotonic() < DEADLINE:
        if proc.poll() is not None:
            sys.exit(f"the proxy exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
            c.request("GET", "/healthz", headers={"Host": f"127.0.0.1:{admin}"})
            if c.getresponse().status == 200:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the proxy did not start")


# Not blocked (no rule matches), so each goes to the origin: the blocklists are consulted on
# the way, and the answer is the origin's.
PATHS = ["/", "/static/app.css?v=1", "/articles/2024/consent-and-cookies?page=2"]


def measure(port, seconds, stop_at):
    """Back-to-back GETs on one kept-alive connection; returns latencies in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    i = 0
    end = min(time.monotonic() + seconds, stop_at)
    while time.monotonic() < end:
        path = PATHS[i % len(PATHS)]
        t0 = time.perf_counter()
        conn.request(
            "GET",
            path,
            headers={"Host": "shop.example", "Referer": "https://shop.example/", "Cookie": "SESSIONID=1"},
        )
        r = conn.getresponse()
        r.read()
        out.append(time.perf_counter() - t0)
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status}")
        i += 1
    conn.close()
    return out


def reloader(admin, every, active, stop, record):
    """While `active` is set, POST /reload every `every` seconds; records each one's time."""
    while not stop.is_set():
        if not active.wait(0.05):
            continue
        t0 = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=120)
        c.request("POST", "/reload", headers={"Host": f"127.0.0.1:{admin}", "Content-Length": "0"})
        r = c.getresponse()
        body = r.read()
        took = time.perf_counter() - t0
        if r.status != 200:
            sys.exit(f"POST /reload: {r.status} {body!r}")
        record.append(took)
        stop.wait(max(0.0, every - took))


def freeing_times(log):
    """Microseconds the reload thread spent dropping each previous configuration, from builds
    that log it at debug (`previous configuration released`). Sites still held by a request
    in flight are freed by that request instead, so they are not in this figure."""
    out = []
    with open(log) as f:
        for line in f:
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "previous configuration released":
                out.append(fields["freed_us"])
    return out


def pct(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def report(name, lat):
    s = sorted(lat)
    ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
    print(
        f"{name:<16} {len(s):>7} requests  p50 {ms(pct(s, 0.5))}  p99 {ms(pct(s, 0.99))}  "
        f"p99.9 {ms(pct(s, 0.999))}  max {ms(s[-1])}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "consentgate"))
    ap.add_argument("--rounds", type=int, default=10, help="windows of each kind")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each window")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between reloads")
    args = ap.parse_args()
    lists = list_paths()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no binary at {args.bin}: cargo build --release (or pass --bin)")

    origin = start_origin()
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(folder, port, admin, origin, lists)
        log = open(os.path.join(folder, "proxy.log"), "w")
        env = dict(os.environ, RUST_LOG="info,consentgate::reload=debug")
        proc = subprocess.Popen([args.bin, "run", "--config", config], stdout=log, stderr=log, env=env)
        try:
            wait_ready(port, admin, proc)
            measure(port, 1.0, DEADLINE)  # warm-up: connections, caches
            # Alternating windows, so that other load on the machine hits both phases alike.
            quiet, busy, reloads = [], [], []
            active, stop = threading.Event(), threading.Event()
            t = threading.Thread(target=reloader, args=(admin, args.every, active, stop, reloads), daemon=True)
            t.start()
            for _ in range(args.rounds):
                quiet += measure(port, args.seconds, DEADLINE)
                active.set()
                busy += measure(port, args.seconds, DEADLINE)
                active.clear()
                time.sleep(args.every)  # let the last reload of the window finish
            stop.set()
            t.join(timeout=120)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        freed = freeing_times(os.path.join(folder, "proxy.log"))
    print(f"binary: {args.bin}")
    print(f"lists: {lists['EASYLIST']}, {lists['EASYPRIVACY']}")
    report("no reloads", quiet)
    report(f"reload every {args.every:g}s", busy)
    if reloads:
        r = sorted(reloads)
        print(f"reloads: {len(r)}, each answered in p50 {pct(r, 0.5) * 1000:.0f} ms, max {r[-1] * 1000:.0f} ms")
    if freed:
        f = sorted(freed)
        print(f"previous configuration released on the reload thread: {len(f)} times, p50 {pct(f, 0.5) / 1000:.1f} ms, max {f[-1] / 1000:.1f} ms")


if __name__ == "__main__":
    main()
