"""gunicorn settings for one instance of the todo app (shipped with each release).

supervisor starts every instance with ``-c /srv/<app>/current/gunicorn.conf.py``
and passes the per-host knobs in its environment:

- ``TODO_APP_NAME``  the deploy's app_name (default ``todo``): names /run/<app>, /etc/<app>,
  the database and its role;
- ``TODO_INSTANCE``  instance name, e.g. ``todo-0``: names the socket and logs;
- ``TODO_WORKERS``   worker processes of this instance (default 2);
- ``TODO_MAX_CONTENT_LENGTH``  largest request body in bytes (the deploy's max_body_bytes);
- ``TODO_ENV_FILE``  secrets file (default ``/etc/<app>/<app>.env``, root:<app> 0640);
- ``TODO_SOCKET_GROUP``  group allowed to connect to the socket (default ``www-data``).

Settings are from the gunicorn docs (https://docs.gunicorn.org/en/stable/settings.html)
and its deploy guide; each value is explained in a comment beside it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gunicorn import glogging

RELEASE_DIR = Path(__file__).resolve().parent
APP = os.environ.get("TODO_APP_NAME", "todo")
INSTANCE = os.environ.get("TODO_INSTANCE", f"{APP}-0")
RUN_DIR = f"/run/{APP}"


def _load_env_file(path):
    """Export KEY=VALUE lines of ``path`` (secrets generated on the server) to os.environ."""
    with open(path, encoding="utf-8") as env:
        for line in env:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                os.environ[key.strip()] = value.strip()


_load_env_file(os.environ.get("TODO_ENV_FILE", f"/etc/{APP}/{APP}.env"))
# libpq reads the password from PGPASSWORD, so it never appears in a URL or argv.
os.environ["PGPASSWORD"] = os.environ.pop("TODO_DATABASE_PASSWORD", "")
# Where PostgreSQL is: its unix socket directory on this host, or (TODO_DATABASE_HOST, set by the
# deploy when the database has its own host) that host's address over TLS, its certificate pinned
# (TODO_DATABASE_SSLROOTCERT) and checked against the address (sslmode=verify-full).
_TLS = (
    f"&sslmode=verify-full&sslrootcert={os.environ['TODO_DATABASE_SSLROOTCERT']}"
    if os.environ.get("TODO_DATABASE_SSLROOTCERT")
    else ""
)
os.environ.setdefault(
    "TODO_DATABASE_URL",
    # connect_timeout (s) and statement_timeout make a dead or hung database fail fast.
    # The login role: <app>, or <app>_b after a password rotation (scripts/secrets; it acts as <app>).
    f"postgresql://{os.environ.get('TODO_DATABASE_USER', APP)}@/{APP}"
    f"?host={os.environ.get('TODO_DATABASE_HOST', '/var/run/postgresql')}{_TLS}"
    "&connect_timeout=3&options=-c%20statement_timeout%3D5s",
)
os.environ["TODO_RELEASE"] = RELEASE_DIR.name
os.environ["TODO_INSTANCE"] = INSTANCE
# The workers' request metrics (todo/metrics.py): one directory per instance, on tmpfs, set
# before any worker imports prometheus_client (it picks its multiprocess mode at import).
METRICS_DIR = f"{RUN_DIR}/metrics/{INSTANCE}"
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR

wsgi_app = "todo:create_app()"
chdir = str(RELEASE_DIR)
proc_name = INSTANCE

# A unix socket only, never 0.0.0.0 (the proxy could be bypassed).
bind = [f"unix:{RUN_DIR}/{INSTANCE}.sock"]
# Not world-writable (gunicorn's default umask 0 makes the socket 0777).
umask = 0o007
# Group that may connect to the sockets: nginx's workers.
SOCKET_GROUP = os.environ.get("TODO_SOCKET_GROUP", "www-data")
# gunicorn >= 25 opens a control socket under $HOME by default: keep it in the run dir.
control_socket = f"{RUN_DIR}/{INSTANCE}.ctl"

workers = int(os.environ.get("TODO_WORKERS", "2"))
worker_class = "sync"
# Heartbeat files on tmpfs: a full or slow disk must not get workers killed.
worker_tmp_dir = "/dev/shm"
# Off: each worker imports the app (and opens its DB pool) after the fork; HUP reloads code.
preload_app = False
# Seconds: a request running longer is aborted and its worker replaced.
timeout = 30
# Seconds a worker gets to finish in-flight requests on HUP/TERM (supervisor waits longer).
graceful_timeout = 20
# Seconds to hold an idle keep-alive connection from nginx.
keepalive = 2


def on_starting(server):
    """Start each run of the instance with an empty metrics directory.

    prometheus_client's multiprocess docs: the directory must be wiped between runs, or the
    files of the last run's workers would be added to this one's. A counter that starts
    again from 0 is what Prometheus's rate() and increase() expect after a restart.
    """
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    os.makedirs(METRICS_DIR, mode=0o700)


def post_fork(server, worker):
    """The worker dies with its master: after a kill -9 of the master, its workers would otherwise
    keep accepting on the instance's socket until they notice (prctl(2), PR_SET_PDEATHSIG; SIGTERM
    lets a worker finish the request it holds). The master's loop is what forks workers."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != server.pid:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (prometheus_client's multiprocess docs); its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """Open each socket to nginx's group once the instance is healthy.

    Until then the socket is srwxrwx--- todo:todo and nginx's connect() is refused with
    EACCES, so nginx sends the request to the next instance: a new, restarted or broken
    instance never gets a client's request before it is healthy. The wait runs in a child
    process (todo/healthcheck.py, stdlib only, with no timeout: a late database at boot
    just delays it), never in a thread of the master: a worker forked while a thread
    holds a lock would inherit it locked and hang for good.
    """
    for address in bind:
        path = address.removeprefix("unix:")
        subprocess.Popen(
            [sys.executable, str(RELEASE_DIR / "todo" / "healthcheck.py"), path, "--timeout", "inf"]
            + ["--open-to", SOCKET_GROUP]
        )
        server.log.info("%s stays closed to nginx until /healthz answers 200", path)


class Logger(glogging.Logger):
    """gunicorn's logger, without an access log line for Prometheus's scrapes of /metrics (one
    per instance every 10 s would bury the requests people make; the scrapes' own record is
    Prometheus's up metric)."""

    def access(self, resp, req, environ, request_time):
        if req.path != "/metrics":
            super().access(resp, req, environ, request_time)


logger_class = Logger


# Logs go to stdout/stderr; supervisor writes and rotates them in /var/log/todo.
accesslog = "-"
errorlog = "-"
loglevel = "info"
# xff: the X-Forwarded-For header as received, to audit that nginx overwrites a forged one.
# rid: nginx's $request_id (X-Request-ID), the same id as in nginx's access log line.


access_log_format = (
    '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s rid=%({x-request-id}i)s xff=%({x-forwarded-for}i)s'
)
