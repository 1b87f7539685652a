"""Shared by the Python benchmark scripts in benches/: free ports, a loopback origin that answers
`ok`, and process figures from /proc. Loopback only."""

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
