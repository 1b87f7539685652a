#!/usr/bin/env python3
"""Full-size replay of issue 8's request-path probes against a release build (loopback only,
bounded in time). The figures it prints are recorded in docs/RELIABILITY.md.

  benches/request-path.py [--bin target/release/consentgate] [--runs 5] [--big-requests 1000]

1. CPU: one 1 MB request `Cookie: _ga_aaa=;_ga_aab=;...` (111,111 distinct withdrawn analytics
   names, as in the issue) to a proxy with one worker thread. Prints the proxy's CPU time for it
   (sum of /proc/PID/task/*/schedstat, nanosecond resolution), its wall time, the number of
   `Set-Cookie` lines and response bytes, and the latency of a plain request sent by a second
   client while the big one is in the proxy.
2. Memory: RSS before and after 1,000 requests, each with one distinct ~1 MB withdrawn cookie
   name (`_ga_<n>aaaa...`), then after a reload; and the expiry cache's byte gauge.

The proxy runs with the defaults of `[proxy]` (300 cookies read, 300 expiry lines). If the
build has a request-header size limit below 1 MB, raise it through PROXY_EXTRA below (the 1 MB
request is the point of the test).
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, rss_kib, start_origin  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Extra `[proxy]` lines, e.g. a request-header size limit large enough for 1 MB requests.
PROXY_EXTRA = os.environ.get("PROXY_EXTRA", "")
DEADLINE = time.monotonic() + 600  # the whole run is bounded


def request(port, head_lines, method="GET", path="/", host="shop.test", timeout=60):
    """Sends one request on a new connection; returns (status, header bytes, body bytes, the
    moment the request was written)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{line}\r\n" for line in head_lines
    ) + "Connection: close\r\n\r\n"
    s.sendall(req.encode())
    written = time.monotonic()
    data = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, head, body, written


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def metric(admin, name):
    _, _, body, _ = request(admin, [], path="/metrics", host=f"127.0.0.1:{admin}")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def site_config(port, admin, origin):
    """The example site (conf/example.toml, as benches/common.sh starts from it) on these ports,
    one worker thread, access log off, with PROXY_EXTRA and the shipped blocklists."""
    with open(os.path.join(ROOT, "conf/example.toml")) as f:
        text = f.read()
    proxy = (
        "threads = 1\naccess_log = false\nshutdown_timeout_seconds = 1\n" + PROXY_EXTRA
    ).rstrip("\n")
    for key, line in [
        ("listen", f'listen = ["127.0.0.1:{port}"]'),
        ("admin", f'admin = "127.0.0.1:{admin}"'),
        ("threads", proxy),
        ("name", 'name = "shop"'),
        ("upstreams", f'upstreams = ["127.0.0.1:{origin}"]'),
    ]:
        text, n = re.subn(rf"^{key} = .*$", lambda _: line, text, count=1, flags=re.M)
        assert n == 1, f"conf/example.toml has no `{key} =` line"
    for category in ["analytics", "marketing"]:
        text += (
            f'\n[[site.blocklist]]\ncategory = "{category}"\n'
            f'path = "{ROOT}/conf/lists/{category}.txt"\n'
        )
    return text


def start_proxy(binary, work, origin):
    port, admin = free_port(), free_port()
    conf = os.path.join(work, "c.toml")
    with open(conf, "w") as f:
        f.write(site_config(port, admin, origin))
    proc = subprocess.Popen(
        [binary, "run", "--config", conf, "--upgrade-sock", os.path.join(work, "u.sock")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            if request(admin, [], path="/healthz", host=f"127.0.0.1:{admin}", timeout=2)[0] == 200:
                return proc, port, admin
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("the proxy did not start")


def names_1mb():
    """111,111 distinct names `_ga_aaa`, `_ga_aab`, ... (three characters of 62) in `_ga_xxx=;`
    pairs: 9 bytes each, 999,999 bytes, as in the issue."""
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out = []
    for a in chars:
        for b in chars:
            for c in chars:
                if len(out) == 111_111:
                    return "".join(out)
                out.append(f"_ga_{a}{b}{c}=;")
    return "".join(out)


def cpu_run(pid, port, cookie):
    results = {}

    def big():
        results["big"] = request(port, [f"Cookie: {cookie}"])
        results["big_done"] = time.monotonic()

    before = cpu_ns(pid)
    t0 = time.monotonic()
    thread = threading.Thread(target=big)
    thread.start()
    # The second client arrives while the big request is in the proxy.
    time.sleep(0.005)
    s0 = time.monotonic()
    status, _, _, _ = request(port, ["Cookie: SESSIONID=1"], path="/small")
    small_latency = time.monotonic() - s0
    thread.join(timeout=max(1, DEADLINE - time.monotonic()))
    status_big, head, body, _ = results["big"]
    wall = results["big_done"] - t0
    cpu = cpu_ns(pid) - before
    set_cookies = head.count(b"\r\nSet-Cookie:")
    return {
        "status": status_big,
        "cpu_ms": cpu / 1e6,
        "wall_ms": wall * 1e3,
        "set_cookie_lines": set_cookies,
        "response_bytes": len(head) + 4 + len(body),
        "small_status": status,
        "small_latency_ms": small_latency * 1e3,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/consentgate"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-requests", type=int, default=1000)
    args = ap.parse_args()
    origin = start_origin()
    with tempfile.TemporaryDirectory(prefix="cg-reqpath-") as work:
        proc, port, admin = start_proxy(args.bin, work, origin)
        try:
            cookie = names_1mb()
            print(f"# 1. one {len(cookie):,}-byte Cookie header, 111,111 distinct withdrawn names")
            request(port, ["Cookie: _ga=1"])  # warm up
            alone = []
            for _ in range(20):
                s0 = time.monotonic()
                request(port, ["Cookie: SESSIONID=1"], path="/small")
                alone.append((time.monotonic() - s0) * 1e3)
            alone.sort()
            print(f"a plain request alone: median {alone[10]:.1f} ms, max {alone[-1]:.1f} ms")
            for i in range(args.runs):
                r = cpu_run(proc.pid, port, cookie)
                print(
                    f"run {i + 1}: status {r['status']} cpu {r['cpu_ms']:.1f} ms wall {r['wall_ms']:.1f} ms "
                    f"set-cookie lines {r['set_cookie_lines']} response {r['response_bytes']:,} B; "
                    f"concurrent client: status {r['small_status']} in {r['small_latency_ms']:.1f} ms"
                )
            over = metric(admin, "consentgate_request_cookies_over_limit_total")
            print(f"consentgate_request_cookies_over_limit_total {over:.0f}")

            print(f"# 2. {args.big_requests} requests, each one distinct ~1 MB withdrawn cookie name")
            start = rss_kib(proc.pid)
            t0 = time.monotonic()
            pad = "a" * (1_000_000 - 20)
            for i in range(args.big_requests):
                if time.monotonic() > DEADLINE:
                    sys.exit("deadline passed")
                status, head, _, _ = request(port, [f"Cookie: _ga_{i:06}{pad}=1"])
                # 431 under the default 32 KiB header limit (refused before it is read), 200 when
                # PROXY_EXTRA raises the limit (then the cookie path's own bounds are measured).
                assert status in (200, 431), status
                assert len(head) < 4096, "a huge name is echoed back"
            took = time.monotonic() - t0
            after = rss_kib(proc.pid)
            cache = metric(admin, "consentgate_expiry_cache_bytes")
            print(
                f"rss before {start / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
                f"(+{(after - start) / 1024:.1f} MiB) in {took:.1f} s; expiry cache {cache:.0f} B"
            )
            status, _, body, _ = request(
                admin, ["Content-Length: 0"], method="POST", path="/reload", host=f"127.0.0.1:{admin}"
            )
            time.sleep(0.5)
            print(f"reload: {status}; rss after reload {rss_kib(proc.pid) / 1024:.1f} MiB; "
                  f"expiry cache {metric(admin, 'consentgate_expiry_cache_bytes'):.0f} B")
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
