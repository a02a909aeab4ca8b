"""Wait until a gunicorn instance answers its health check on its unix socket.

Usage: python -m todo.healthcheck SOCKET [--timeout SECONDS] [--path /healthz]
Exit status: 0 once GET PATH answers 200 within the timeout, 1 otherwise (the
last error is printed to stderr). Used by the deploy between rolling restarts.
"""

import argparse
import http.client
import socket
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a unix socket."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        """Connect to the unix socket instead of a TCP address."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def check(path, url="/healthz", timeout=2.0):
    """Return (status, body) of GET ``url`` on the unix socket ``path``."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url, headers={"Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def main(argv=None):
    """Poll the socket until healthy or the timeout (seconds) passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    parser.add_argument("--path", default="/healthz")
    opts = parser.parse_args(argv)
    deadline, last = time.monotonic() + opts.timeout, "no attempt"
    while time.monotonic() < deadline:
        try:
            status, body = check(opts.socket, opts.path)
            if status == 200:
                return 0
            last = f"HTTP {status}: {body.strip()[:200]}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    print(f"{opts.socket}: not healthy after {opts.timeout:.0f} s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
