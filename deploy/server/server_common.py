"""What the stack's server tools share: one copy of each piece they used to repeat.

Installed by the deploy as /usr/local/lib/<app>/server_common.py (root 0644) on every host that
gets a server tool, before the tool (deploy/operations.py, server_tool). The tools in
/usr/local/sbin (<app>-release, -status, -logs, -backup, -maintenance) put /usr/local/lib/<app>
first on sys.path and import it; the app's helpers in that directory (launch, gunicorn.conf.py,
healthcheck.py) put their own directory there. From a checkout (tests), each finds it beside
itself in deploy/server/. Only the Python standard library (it runs before any virtualenv
exists). The tools run it as root and the app's processes as the app user: importing it only
defines names, and nothing in it needs more than the caller's own rights.
"""

import fcntl
import gzip
import http.client
import json
import os
import re
import socket
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

#: Where each app's helpers (launch, gunicorn.conf.py, healthcheck.py, this module) are installed.
LIB_ROOT = Path("/usr/local/lib")
#: The group that may connect to an instance's socket once it is healthy: nginx's workers.
SOCKET_GROUP = "www-data"
#: An environment variable's name (POSIX: letters, digits and _, not starting with a digit).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The month names of the C locale (gunicorn's %(t)s, openssl's dates) and their numbers, whatever
#: this process's locale.
MONTHS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
          "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}  # fmt: skip
#: The release lock (in /run, which only root may write; not /run/lock, where anyone could take a
#: lock and hold it): one release, rollback or backup command at a time.
RELEASE_LOCK = "/run/{app}-release.lock"
#: A section of <app>-processes.conf (the release tool's PROCESS_PROGRAM), and the process type
#: its program's command runs (launch --process TYPE).
PROGRAM = re.compile(r"^\[program:([^\]\s]+)\]$")
PROCESS_COMMAND = re.compile(r"^command\s*=.*\s--process\s+([A-Za-z0-9_-]{1,64})$")


# --- The app, its settings, the caller ------------------------------------------------------------


def app_of_lib(here):
    """The app whose helpers are in the directory ``here`` (a Path): the <app> of
    /usr/local/lib/<app>; anywhere else (a checkout, tests) the STACK_APP environment variable,
    else todo."""
    return here.name if here.parent == LIB_ROOT else os.environ.get("STACK_APP", "todo")


def settings_path(app, tool):
    """Where the deploy writes the settings of ``app``'s ``tool`` (release, status, backup,
    maintenance): /etc/<app>/<tool>.json (deploy/operations.py, server_tool)."""
    return Path(f"/etc/{app}/{tool}.json")


def read_settings(app, tool):
    """The settings of ``app``'s ``tool`` (settings_path) as a dict. OSError when they cannot be
    read, ValueError when they are not JSON."""
    return json.loads(settings_path(app, tool).read_text(encoding="utf-8"))


def require_root(prog, how="sudo"):
    """True when this process runs as root; else print "<prog>: run as root (<how>)" to stderr (no
    parenthesis when ``how`` is empty) and return False: the caller exits 2."""
    if os.geteuid() == 0:
        return True
    print(f"{prog}: run as root{f' ({how})' if how else ''}", file=sys.stderr, flush=True)
    return False


def take_lock(path):
    """The file ``path`` (made root 0600 when missing, never through a symlink) with an exclusive
    flock(2) on it, held until that file is closed or the process ends: keep a reference to it.
    None when another process holds the lock. OSError when it cannot be opened (not root)."""
    lock = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


# --- Times -----------------------------------------------------------------------------------------


def stamp(epoch):
    """``epoch`` (seconds) as UTC text, e.g. 2026-11-22 20:00:18+00."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S+00")


# --- Files -----------------------------------------------------------------------------------------


class NotRegularFile(OSError):
    """A path names something other than a regular file (a directory, a FIFO, a device): not read."""


def read_regular(path, limit=1 << 20):
    """The text of the regular file ``path`` (its first ``limit`` bytes, UTF-8, undecodable bytes
    replaced), or None when there is none. Never through a symlink (OSError, ELOOP) nor from a FIFO
    or device (NotRegularFile, an OSError; opened without blocking): safe on files another user could
    have planted. Other OSErrors as they come."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise NotRegularFile(f"{path} is not a regular file")
        return file.read(limit).decode("utf-8", errors="replace")


def open_text(path):
    """``path`` (a Path) opened for reading as UTF-8 text (undecodable bytes replaced), through gzip
    when its name ends in .gz (a copy logrotate compressed). OSError as it comes."""
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="replace")


def write_atomically(path, text, mode=0o644, group=None):
    """Replace the file ``path`` (str or Path) with ``text`` (UTF-8) atomically: a new file beside
    it (<name>.tmp.<pid>: created exclusively, never through a symlink), owned root:``group`` when
    ``group`` (a gid) is given (else the creator's), mode ``mode`` whatever the umask, fsynced, then
    renamed over ``path``: a reader sees the old file or the new one, never a part. OSError as it
    comes, the new file removed."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if group is not None:
                os.fchown(out.fileno(), 0, group)
            os.fchmod(out.fileno(), mode)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- Environment files (KEY=VALUE lines) ------------------------------------------------------------


def parse_env(text):
    """{KEY: value} of an environment file's text (/etc/<app>/<app>.env, environment, config.env):
    KEY=VALUE lines, key and value stripped of surrounding blanks, no quoting (a value is the rest of
    its line, = included); blank lines, lines starting with # and lines without = are skipped. A key
    given twice: the last one wins."""
    pairs = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def read_env_file(path, missing_ok=True):
    """parse_env() of the file ``path`` (UTF-8); {} when it does not exist and ``missing_ok``, else
    FileNotFoundError. Other OSErrors as they come."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise
    return parse_env(text)


def parse_env_names(text):
    """The variable names an environment file's text sets, sorted, each once: never a value. Keys
    that are not a valid variable name (ENV_NAME) are skipped with the lines parse_env() skips."""
    return sorted(key for key in parse_env(text) if ENV_NAME.fullmatch(key))


# --- The app's other process types (supervisor's <app>-processes.conf) ------------------------------


def processes_conf_path(app):
    """Where the release tool writes the supervisor programs of ``app``'s other process types."""
    return f"/etc/supervisor/conf.d/{app}-processes.conf"


def parse_processes_conf(text, app):
    """{supervisor program: process type (None when unknown)} of the release tool's
    <app>-processes.conf: its [program:<app>-<type>-<n>] sections, in the file's order, the type from
    their command (``launch --process TYPE``), else from the name. Other sections and lines are
    skipped."""
    found, program = {}, None
    for line in text.splitlines():
        line = line.strip()
        if match := PROGRAM.match(line):
            program = match.group(1)
            named = re.fullmatch(rf"{re.escape(app)}-([A-Za-z0-9_-]{{1,64}})-\d+", program)
            found[program] = named.group(1) if named else None
        elif line.startswith("["):
            program = None
        elif program and (match := PROCESS_COMMAND.match(line)):
            found[program] = match.group(1)
    return found


# --- HTTP over an instance's unix socket -----------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to the server listening on the unix socket ``path``; ``timeout`` in seconds
    for the connect and each read."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        """Connect to the unix socket instead of a TCP address."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_get(path, url, timeout=2.0):
    """(status, body) of GET ``url`` (a path such as /healthz; Host: localhost) from the HTTP server
    on the unix socket ``path``, ``timeout`` seconds for the connect and each read; the body decoded
    as UTF-8, undecodable bytes replaced. OSError when the socket refuses or times out
    (FileNotFoundError, PermissionError, ConnectionRefusedError, TimeoutError),
    http.client.HTTPException when the answer is not HTTP."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url, headers={"Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()
