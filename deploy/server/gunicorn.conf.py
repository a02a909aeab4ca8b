"""The stack's gunicorn settings, for every instance of any app (installed by the deploy as
/usr/local/lib/<app>/gunicorn.conf.py, root 0644; the app ships none of these).

supervisor starts each instance as ``launch -- gunicorn --config <this file>`` in its release's
directory (launch.py gives the environment). From the release (.release.json, written by the
build from the Procfile's ``web:`` line or the ``wsgi_app`` setting): the WSGI app and the
app's own gunicorn options (timeout, worker class, ...). The stack's own settings replace
whatever the app gave for these: the unix socket (bind), umask, workers, the control socket,
worker_tmp_dir, proc_name and logging. From the server's settings (/etc/<app>/release.json):
worker_class (when set) and health_path. From supervisor's environment:
SUPERVISOR_PROCESS_NAME (the instance, e.g. ``todo-0``) and WEB_CONCURRENCY (its workers).

Settings are from the gunicorn docs (https://docs.gunicorn.org/en/stable/settings.html)
and its deploy guide; each value is explained in a comment beside it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gunicorn import glogging

HERE = Path(__file__).resolve().parent
# server_common.py is beside this file. Its directory is taken off sys.path again at once: the
# workers import the app with this sys.path, and the app's imports must not find the stack's files.
sys.path.insert(0, str(HERE))
from server_common import SOCKET_GROUP, app_of_lib, read_settings  # noqa: E402

sys.path.remove(str(HERE))
APP = app_of_lib(HERE)
INSTANCE = os.environ.get("SUPERVISOR_PROCESS_NAME", f"{APP}-0")
RUN_DIR = f"/run/{APP}"
RELEASE_DIR = Path.cwd()
SETTINGS = read_settings(APP, "release")
WEB = json.loads((RELEASE_DIR / ".release.json").read_text(encoding="utf-8")).get("web", {})

# Defaults the app's own options may change (gunicorn's defaults otherwise).
# Seconds: a request running longer is aborted and its worker replaced.
timeout = 30
# Seconds a worker gets to finish in-flight requests on HUP/TERM (supervisor waits 30 s).
graceful_timeout = 20
# Seconds to hold an idle keep-alive connection from nginx.
keepalive = 2
# Off: each worker imports the app (and opens its own database connections) after the fork.
preload_app = False
# The app's own options from its Procfile's web: line (already stripped of the stack's own).
globals().update(WEB.get("options", {}))
wsgi_app = WEB.get("wsgi_app")
if SETTINGS.get("worker_class"):
    worker_class = SETTINGS["worker_class"]

# The stack's own: an app's value for these is replaced.
proc_name = INSTANCE
# A unix socket only, never 0.0.0.0 (the proxy could be bypassed).
bind = [f"unix:{RUN_DIR}/{INSTANCE}.sock"]
# Not world-writable (gunicorn's default umask 0 makes the socket 0777).
umask = 0o007
# gunicorn >= 25 opens a control socket under $HOME by default: keep it in the run dir.
control_socket = f"{RUN_DIR}/{INSTANCE}.ctl"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Heartbeat files on tmpfs: a full or slow disk must not get workers killed.
worker_tmp_dir = "/dev/shm"
HEALTH_PATH = SETTINGS.get("health_path") or "/"
# An app using prometheus_client (the sample app does) counts requests across its workers in one
# directory per instance, on tmpfs, set before any worker imports prometheus_client.
METRICS_DIR = f"{RUN_DIR}/metrics/{INSTANCE}"
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR


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
    """Drop a dead worker's live gauges (prometheus_client's multiprocess docs); its counts stay.
    Nothing to do for an app without prometheus_client."""
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """Open each socket to nginx's group once the instance is healthy.

    Until then the socket is srwxrwx--- <app>:<app> and nginx's connect() is refused with
    EACCES, so nginx sends the request to the next instance: a new, restarted or broken
    instance never gets a client's request before it answers its health path (health_path)
    with 200. The wait runs in a child process (healthcheck.py beside this file, stdlib only,
    with no timeout: a late database at boot just delays it), never in a thread of the master:
    a worker forked while a thread holds a lock would inherit it locked and hang for good.
    """
    for address in bind:
        path = address.removeprefix("unix:")
        subprocess.Popen(
            ["/usr/bin/python3", "-I", str(HERE / "healthcheck.py"), path, "--timeout", "inf",
             "--path", HEALTH_PATH, "--open-to", SOCKET_GROUP]
        )  # fmt: skip
        server.log.info("%s stays closed to nginx until %s answers 200", path, HEALTH_PATH)


class Logger(glogging.Logger):
    """gunicorn's logger, without an access log line for Prometheus's scrapes of /metrics (one
    per instance every 10 s would bury the requests people make; the scrapes' own record is
    Prometheus's up metric)."""

    def access(self, resp, req, environ, request_time):
        if req.path != "/metrics":
            super().access(resp, req, environ, request_time)


logger_class = Logger
# Logs go to stdout/stderr; supervisor writes and rotates them in /var/log/<app>.
accesslog = "-"
errorlog = "-"
loglevel = "info"
# xff: the X-Forwarded-For header as received, to audit that nginx overwrites a forged one.
# rid: nginx's $request_id (X-Request-ID), the same id as in nginx's access log line.
access_log_format = (
    '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s rid=%({x-request-id}i)s xff=%({x-forwarded-for}i)s'
)
