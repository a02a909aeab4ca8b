"""Wait until a gunicorn instance answers its health check on its unix socket.

Usage: python3 -I healthcheck.py SOCKET [--timeout SECONDS|inf] [--path /healthz] [--open-to GROUP]
Exit status: 0 once GET PATH answers 200 within the timeout, 1 otherwise (the
last error is printed to stderr), 2 when its parent process is gone.
--open-to GROUP: once healthy, give SOCKET to GROUP with mode 0660 (srw-rw----).
gunicorn.conf.py runs it that way (stdlib only, run as a file, server_common.py beside
it) so that nginx can connect to an instance only once it is healthy; it stops if its
master dies.
"""

import argparse
import grp
import os
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, str(Path(__file__).resolve().parent))  # server_common.py is beside this file
from server_common import unix_get  # noqa: E402


def main(argv=None):
    """Poll the socket until healthy or the timeout (seconds) passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait, or inf (default 30)")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--open-to", metavar="GROUP", help="once healthy, chown the socket to GROUP, mode 0660")
    opts = parser.parse_args(argv)
    parent, started = os.getppid(), time.monotonic()
    deadline, last = started + opts.timeout, "no attempt"
    while time.monotonic() < deadline:
        if os.getppid() != parent:
            return 2  # the gunicorn master that started it is gone
        try:
            status, body = unix_get(opts.socket, opts.path)
            if status == 200:
                if opts.open_to:
                    os.chown(opts.socket, -1, grp.getgrnam(opts.open_to).gr_gid)
                    os.chmod(opts.socket, 0o660)
                    print(
                        f"healthy after {time.monotonic() - started:.1f} s: {opts.socket} open to group "
                        f"{opts.open_to} (0660)",
                        flush=True,
                    )
                return 0
            last = f"HTTP {status}: {body.strip()[:200]}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    print(f"{opts.socket}: not healthy after {opts.timeout:.0f} s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
