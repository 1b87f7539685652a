"""Shared by the benchmark scripts in benches/: free ports, a loopback origin that answers `ok`,
process figures from /proc (Python scripts), and the CPU-per-request table (`cpu-table`, for
the shell scripts). Loopback only."""

import http.server
import socket
import threading


def free_port():
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Origin(http.server.BaseHTTPRequestHandler):
    """Answers every GET with `ok`, keeping the proxy's connection alive."""

    protocol_version = "HTTP/1.1"
    # Head and body are two writes: without this, Nagle + delayed ACK add 40 ms to each answer.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_origin():
    """Starts an `Origin` on a free loopback port in a daemon thread; returns the port."""
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


def rss_kib(pid):
    """Resident memory of a process, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_table(results, reference, title="target"):
    """Prints the Markdown table of a CPU-per-request benchmark from its results file (lines
    `ROUND TARGET CPU_US RPS`, targets in the order first seen): medians, each target against
    `cg-off` (of the medians, and the median of per-round ratios: each target against the cg-off
    run seconds before it, steadier when the host's speed drifts between rounds) and against
    `reference` (median of per-round ratios), every run and the median rate."""
    import collections
    import statistics

    cpu, rps = collections.defaultdict(list), collections.defaultdict(list)
    by_round = collections.defaultdict(dict)
    for line in open(results):
        n, t, c, r = line.split()
        cpu[t].append(float(c))
        rps[t].append(float(r))
        by_round[n][t] = float(c)
    off = statistics.median(cpu["cg-off"])

    def per_round(t, base):
        return statistics.median(r[t] / r[base] for r in by_round.values())

    print(
        f"\n| {title} | median CPU us/request | vs cg-off (medians) | vs cg-off (median of per-round"
        f" ratios) | ratio to {reference} (median of per-round ratios) | runs (us/request) | median req/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in cpu:
        m = statistics.median(cpu[t])
        runs = ", ".join(f"{x:.2f}" for x in cpu[t])
        print(
            f"| {t} | {m:.2f} | {100 * (m / off - 1):+.1f}% | {100 * (per_round(t, 'cg-off') - 1):+.1f}%"
            f" | {per_round(t, reference):.2f} | {runs} | {statistics.median(rps[t]):.0f} |"
        )


if __name__ == "__main__":
    # benchlib.py cpu-table RESULTS REFERENCE [TITLE]: the table of cpu_table, for shell scripts.
    import sys

    if len(sys.argv) >= 4 and sys.argv[1] == "cpu-table":
        cpu_table(sys.argv[2], sys.argv[3], *sys.argv[4:5])
    else:
        sys.exit("usage: benchlib.py cpu-table RESULTS REFERENCE [TITLE]")
