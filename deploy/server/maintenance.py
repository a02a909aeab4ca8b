#!/usr/bin/python3 -I
"""Turn the site's maintenance mode on or off, or say which it is.

Installed by the deploy as /usr/local/sbin/<app>-maintenance (root 0755) on every host with nginx's
site (the lb role); its settings are in /etc/<app>/maintenance.json (the snippet's path). Runs as
root; it imports the tools' shared module (/usr/local/lib/<app>/server_common.py). scripts/maintenance
calls it over SSH on every load balancer.

Usage: <app>-maintenance on|off|status
  on      nginx answers every request 503 with the maintenance page (Retry-After: 300) but those
          from the maintenance_allow addresses; the app and its processes keep running. Writes
          the snippet the site includes (nginx/sites-available/todo.conf.j2), checks nginx's
          configuration (nginx -t) and reloads nginx (no connection is dropped).
  off     removes the snippet, checks and reloads.
  status  prints "on" or "off".
A configuration nginx refuses is never loaded: the snippet is put back as it was. Exit status: 0
done; 1 nginx refused the configuration or did not reload (its message is shown); 2 bad usage.
"""

import subprocess
import sys
import time
from pathlib import Path

NAME = Path(sys.argv[0]).name.removesuffix("-maintenance") or "todo"
# The module the server tools share: in /usr/local/lib/<app> once installed, else beside this file.
HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, f"/usr/local/lib/{NAME}" if str(HERE) == "/usr/local/sbin" else str(HERE))
from server_common import read_settings, require_root, write_atomically  # noqa: E402


def workers():
    """PIDs of nginx's master's children (its workers), from /proc; empty when it is not running."""
    try:
        master = Path("/run/nginx.pid").read_text().strip()
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return set()
    return set(children)


def nginx_loads(timeout=10.0):
    """None when nginx -t accepts the configuration and nginx has reloaded (new workers started and
    every old one shutting down, ``timeout`` seconds at most: systemctl reload only signals the
    master), else nginx's message."""
    before = workers()
    for command in (["nginx", "-t", "-q"], ["systemctl", "reload", "nginx"]):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            return (done.stdout + done.stderr).strip() or f"{' '.join(command)} exited {done.returncode}"
    deadline = time.monotonic() + timeout
    while before and (not workers() - before or any(map(accepting, before))):
        if time.monotonic() > deadline:
            return f"nginx's old workers still accept connections after {timeout:.0f} s"
        time.sleep(0.05)
    return None


def accepting(pid):
    """True while the nginx worker ``pid`` has not begun to shut down: it may still accept a new
    connection with the old configuration (a worker that has closes its listening sockets and
    retitles itself "nginx: worker process is shutting down")."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"worker process" in title and b"shutting down" not in title


def put(snippet, on, text):
    """Maintenance on: the snippet holds ``text`` (write_atomically: written beside it, 0644, then
    renamed); off: no snippet."""
    if on:
        write_atomically(snippet, text, 0o644)
    else:
        snippet.unlink(missing_ok=True)


def main(argv=None):
    """Parse the command line; switch the mode."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("on", "off", "status"):
        print(f"usage: {NAME}-maintenance on|off|status", file=sys.stderr)
        return 2
    if not require_root(f"{NAME}-maintenance", how=""):
        return 2
    settings = read_settings(NAME, "maintenance")
    snippet = Path(settings["snippet"])
    app = settings["app_name"]
    was_on = snippet.exists()
    if argv[0] == "status":
        print("on" if was_on else "off")
        return 0
    if (argv[0] == "on") == was_on:
        print(f"maintenance is already {argv[0]}")
        return 0
    text = (f"# Managed by {NAME}-maintenance: maintenance mode is on (scripts/maintenance off ends it).\n"
            f"if (${app}_maintenance_allowed = 0) {{\n    return 503;\n}}\n")  # fmt: skip
    put(snippet, argv[0] == "on", text)
    if error := nginx_loads():
        put(snippet, was_on, text)
        nginx_loads()
        print(f"{NAME}-maintenance: nginx refused the configuration; maintenance stays {'on' if was_on else 'off'}:"
              f"\n{error}", file=sys.stderr)  # fmt: skip
        return 1
    print(f"maintenance is {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
