"""Shared by the benchmark scripts in benches/: free ports, a loopback origin that answers `ok`,
process figures from /proc (Python scripts), and the tables of the shell scripts (`cpu-table`
for CPU per request, `paired-table` for benches/paired.sh). Loopback only."""

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


def parse_pair(line):
    """One line of benches/paired.sh's results (`LOAD ROUND TARGET HZ TICKS_A TICKS_B BUSY A
    key=value... B key=value...`) as (load, round, target, CPU µs per request of A and of B,
    A's and B's openloop figures); A's carry `busy`, the server CPU's busy share."""
    load, r, t, hz, ta, tb, busy, _, *rest = line.split()
    i = rest.index("B")
    a = {k: float(v) for k, v in (x.split("=") for x in rest[:i])}
    b = {k: float(v) for k, v in (x.split("=") for x in rest[i + 1 :])}
    ca = int(ta) / int(hz) * 1e6 / max(a["responses"], 1)
    cb = int(tb) / int(hz) * 1e6 / max(b["responses"], 1)
    a["busy"] = float(busy)
    return load, r, t, ca, cb, a, b


def paired_line(line):
    """Prints one pair of benches/paired.sh as it finishes."""
    load, r, t, ca, cb, a, b = parse_pair(line)
    bad = lambda x: int(x["errors"] + x["unfinished"])
    print(
        f"load {load} round {r} cg-off vs {t}: cpu_us {ca:.2f} vs {cb:.2f} ({100 * (cb / ca - 1):+.1f}%), "
        f"p99_us {a['p99_us']:.0f} vs {b['p99_us']:.0f}, errors+unfinished {bad(a)}/{bad(b)}, "
        f"server CPU busy {a['busy']:.0%}"
    )


def paired_table(results, capacity):
    """Prints the Markdown table of benches/paired.sh from its results file (lines `LOAD ROUND
    TARGET HZ TICKS_A TICKS_B BUSY A key=value... B key=value...`: cg-off is A, TARGET is B,
    both openloop outputs; BUSY the server CPU's busy share): per load and target, the median over rounds of B's CPU per request and
    p99 against A's of the same pair, the medians of each, and the per-round ratios."""
    import collections
    import statistics

    rows = collections.defaultdict(list)  # (load, target) -> [(cpu_a, cpu_b, a, b)]
    for line in open(results):
        load, _, t, ca, cb, a, b = parse_pair(line)
        rows[(load, t)].append((ca, cb, a, b))
    med = statistics.median
    print(f"\ncg-off capacity alone (closed loop, wrk -t1 -c32): {float(capacity):.0f} req/s")
    print(
        "\n| load | pair (A = cg-off, B) | offered req/s each | CPU µs/request A, B (medians) | CPU B/A"
        " (median of per-pair ratios) | CPU B/A per pair | p50 µs A, B | p99 µs A, B (medians) | p99 B/A"
        " (median of per-pair ratios) | p99 B/A per pair | server CPU busy | errors+unfinished A, B |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (load, t), rs in sorted(rows.items(), key=lambda kv: int(kv[0][0]) if kv[0][0].isdigit() else 0):
        cpu_ratios = [cb / ca for ca, cb, _, _ in rs]
        p99_ratios = [b["p99_us"] / max(a["p99_us"], 1e-9) for _, _, a, b in rs]
        bad = lambda side: sum(x[side]["errors"] + x[side]["unfinished"] for x in rs)
        print(
            f"| {load + '%' if load.isdigit() else load} | {t} | {med(x[2]['offered_rps'] for x in rs):.0f}"
            f" | {med(x[0] for x in rs):.2f}, {med(x[1] for x in rs):.2f}"
            f" | {med(cpu_ratios):.3f} | {', '.join(f'{x:.3f}' for x in cpu_ratios)}"
            f" | {med(x[2]['p50_us'] for x in rs):.0f}, {med(x[3]['p50_us'] for x in rs):.0f}"
            f" | {med(x[2]['p99_us'] for x in rs):.0f}, {med(x[3]['p99_us'] for x in rs):.0f}"
            f" | {med(p99_ratios):.3f} | {', '.join(f'{x:.2f}' for x in p99_ratios)}"
            f" | {100 * med(x[2]['busy'] for x in rs):.0f}% | {bad(2):.0f}, {bad(3):.0f} |"
        )


if __name__ == "__main__":
    # benchlib.py cpu-table RESULTS REFERENCE [TITLE] | paired-table RESULTS CAPACITY |
    # paired-line LINE: the tables and lines above, for the shell scripts.
    import sys

    if len(sys.argv) >= 4 and sys.argv[1] == "cpu-table":
        cpu_table(sys.argv[2], sys.argv[3], *sys.argv[4:5])
    elif len(sys.argv) == 4 and sys.argv[1] == "paired-table":
        paired_table(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "paired-line":
        paired_line(sys.argv[2])
    else:
        sys.exit(
            "usage: benchlib.py cpu-table RESULTS REFERENCE [TITLE] | paired-table RESULTS CAPACITY"
            " | paired-line LINE"
        )
