#!/usr/bin/env python3
"""What idle and slowloris connections cost the real proxy, and whether it still serves.

Loopback only, bounded in time (a few minutes at most), stops by itself. Usage:

    cargo build --release --bin consentgate
    python3 benches/connections.py [--idle 5000] [--slowloris 20000] [--big-headers 500]

It starts a keep-alive HTTP/1.1 origin (in this process) and target/release/consentgate with
the default limits (one worker thread), then measures the proxy's resident memory (VmRSS):

1. idle: N connections that connected and sent nothing, then N kept-alive connections idle
   after one request each;
2. big headers: M connections that each sent an incomplete 31 KiB header (just under the
   32 KiB cap), and one 64 KiB header (expects 431);
3. slowloris: S connections sending a header line every 10 s and never finishing, opened by
   helper processes; then the latency of a normal request from a fresh connection.

Each socket needs a file descriptor on both sides: the script raises its soft limit to the
hard one, and the proxy does the same for itself; it prints both. Figures are printed as one
`name value` line each (docs/RELIABILITY.md, section "Connections", quotes them).
"""

import argparse
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, rss_kib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "consentgate")
HEAD = b"GET / HTTP/1.1\r\nHost: bench.local\r\n"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def origin_conn(c):
    """Keep-alive HTTP/1.1: one answer per request header, written in one send."""
    buf = b""
    with c:
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")


def start_origin():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)

    def accept():
        while True:
            c, _ = listener.accept()
            threading.Thread(target=origin_conn, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def settle(pid, seconds=1.5):
    time.sleep(seconds)
    return rss_kib(pid)


def open_connections(port, n, first=b"", pace=200):
    """n connected sockets (non-blocking connects, paced so the accept queue never overflows)."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        if i % pace == pace - 1:
            time.sleep(0.01)
    time.sleep(0.5)
    if first:
        send_all(socks, first)
    return socks


def send_all(socks, data):
    """Sends `data` on every socket that is connected and can take it now (never waits: past
    the proxy's connection limit, connects may still be queued or retrying)."""
    sent = 0
    for s in socks:
        try:
            if s.send(data) == len(data):
                sent += 1
        except OSError:
            pass
    return sent


def request(port, timeout=120):
    """One normal request on a fresh connection: (status, seconds)."""
    started = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(HEAD + b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        status = int(data.split()[1]) if data.startswith(b"HTTP/") else 0
    except OSError as e:
        print(f"# normal request failed: {e}", file=sys.stderr)
        status = 0
    return status, time.monotonic() - started


def slowloris_worker(port, n, seconds, ready):
    raise_nofile()
    socks = open_connections(port, n, first=HEAD, pace=100)
    ready.put(len(socks))
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        time.sleep(10)
        send_all(socks, b"X-a-%d: b\r\n" % i)
        i += 1
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--big-headers", type=int, default=500)
    ap.add_argument("--slowloris", type=int, default=20000)
    ap.add_argument("--hold", type=int, default=40, help="seconds the slowloris connections stay")
    ap.add_argument("--only", default="", help="run one scenario: baseline, idle, big_headers, slowloris")
    ap.add_argument("--bin", default=BIN, help="the consentgate binary (default: the release build)")
    args = ap.parse_args()
    hard = raise_nofile()
    print(f"open_files_limit {hard}")

    oport = start_origin()
    work = tempfile.mkdtemp(prefix="cg-conns-")

    def run(name, scenario):
        """Runs one scenario against a fresh proxy, so each starts from the same memory."""
        pport, aport = free_port(), free_port()
        conf = os.path.join(work, "c.toml")
        with open(conf, "w") as f:
            f.write(
                f'[proxy]\nlisten = ["127.0.0.1:{pport}"]\nadmin = "127.0.0.1:{aport}"\n'
                f"threads = 1\naccess_log = false\nshutdown_timeout_seconds = 1\n"
                f'[[site]]\nname = "bench"\nhosts = ["*"]\nupstreams = ["127.0.0.1:{oport}"]\nmode = "off"\n'
            )
        log_path = os.path.join(work, f"{name}.log")
        with open(log_path, "w") as log:
            proxy = subprocess.Popen(
                [args.bin, "run", "--config", conf, "--upgrade-sock", os.path.join(work, "u.sock")],
                stdout=log,
                stderr=log,
            )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", pport), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            request(pport)
            base = settle(proxy.pid)
            print(f"{name}_rss_start_kib {base}")
            scenario(proxy.pid, pport, aport, base)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            with open(log_path) as f:
                warn = [l for l in f if "max_connections does not fit" in l]
            if warn:
                print("# " + warn[0].strip())

    def per_conn(rss, base, n):
        return (rss - base) * 1024 // max(1, n)

    def baseline(pid, port, aport, base):
        lat = sorted(request(port)[1] for _ in range(21))
        print(f"normal_request_ms_median {lat[10] * 1000:.2f}")

    def idle(pid, port, aport, base):
        socks = open_connections(port, args.idle)
        rss = settle(pid)
        print(f"idle_fresh_connections {len(socks)} rss_kib {rss} per_connection_bytes {per_conn(rss, base, len(socks))}")
        # One request on each, one after the other (visitors who each loaded a page and stay
        # connected), then a second request on all of them at once (5,000 requests in flight).
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            try:
                s.sendall(HEAD + b"\r\n")
                s.recv(4096)
            except OSError:
                pass
        rss = settle(pid)
        print(f"idle_keepalive_sequential_connections {len(socks)} rss_kib {rss} per_connection_bytes {per_conn(rss, base, len(socks))}")
        for s in socks:
            try:
                s.sendall(HEAD + b"\r\n")
            except OSError:
                pass
        for s in socks:
            try:
                s.recv(4096)
            except OSError:
                pass
        rss = settle(pid)
        print(f"idle_keepalive_connections {len(socks)} rss_kib {rss} per_connection_bytes {per_conn(rss, base, len(socks))}")
        status, seconds = request(port)
        print(f"idle_normal_request_status {status} ms {seconds * 1000:.2f}")
        for s in socks:
            s.close()
        # What stays after they are gone is the allocator's high-water mark of the burst of
        # requests above, not per-connection state.
        print(f"idle_all_closed_rss_kib {settle(pid, 3)}")

    def big_headers(pid, port, aport, base):
        pad = b"X-Pad: " + b"p" * (31 * 1024) + b"\r\n"
        socks = open_connections(port, args.big_headers)
        for s in socks:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(HEAD + pad)
        rss = settle(pid)
        print(f"big_header_connections {len(socks)} rss_kib {rss} per_connection_bytes {per_conn(rss, base, len(socks))}")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(HEAD + b"X-Pad: " + b"p" * (64 * 1024) + b"\r\n\r\n")
        print(f"header_64_kib_status {int(s.recv(4096).split()[1])}")
        s.close()
        for s in socks:
            s.close()

    def slowloris(pid, port, aport, base):
        # Helper processes, each under the open-files limit.
        per = max(1, min(args.slowloris, hard - 200))
        workers, ready = [], multiprocessing.Queue()
        left = args.slowloris
        while left > 0:
            n = min(per, left)
            w = multiprocessing.Process(target=slowloris_worker, args=(port, n, args.hold, ready))
            w.start()
            workers.append(w)
            left -= n
        opened = sum(ready.get(timeout=180) for _ in workers)
        rss = settle(pid, 3)

        def gauge(name):
            text = subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{aport}/metrics"], capture_output=True, text=True
            ).stdout
            return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))

        held = int(gauge("consentgate_connections_open"))
        print(f"slowloris_connections_opened {opened} held_by_proxy {held} rss_kib {rss} per_held_connection_bytes {per_conn(rss, base, held)}")
        for i in range(3):
            status, seconds = request(port)
            print(f"slowloris_normal_request_{i + 1}_status {status} ms {seconds * 1000:.2f}")
        print(f"slowloris_rss_peak_kib {rss_kib(pid)}")
        for name in ("consentgate_connection_limit_waits_total", "consentgate_connections_reclaimed_total"):
            print(f"{name} {int(gauge(name))}")
        for w in workers:
            w.join(timeout=args.hold + 60)
            if w.is_alive():
                w.terminate()

    for name, scenario in [
        ("baseline", baseline),
        ("idle", idle),
        ("big_headers", big_headers),
        ("slowloris", slowloris),
    ]:
        if args.only in ("", name):
            run(name, scenario)


if __name__ == "__main__":
    main()
