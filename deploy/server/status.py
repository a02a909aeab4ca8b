#!/usr/bin/python3 -I
"""Show on one screen whether the app on this server is healthy, from the server's own state.

Describes whichever app the stack deploys (<app> is the tool's own name less "-status"): its
release, web instances, other process types, configuration names, shared directories and
maintenance mode, beside the server's units, backups, certificate, disks and memory.

Installed by the deploy as /usr/local/sbin/<app>-status (root 0755); its settings are in
/etc/<app>/status.json (written by the deploy: app_name, instances, srv, run_dir, access_log,
tls_cert, units, backups, disk_paths and the thresholds disk_warn_percent, cert_warn_days,
memory_warn_percent, error_ratio_warn; optional, with their defaults: processes_conf
(/etc/supervisor/conf.d/<app>-processes.conf), config_env (/etc/<app>/config.env),
maintenance_snippet (/etc/nginx/snippets/<app>/maintenance.conf), shared_root
(/var/lib/<app>/shared), release_settings (/etc/<app>/release.json)). Runs as root and refuses
to start otherwise; scripts/status calls it through SSH and sudo. Only the Python standard library and
the tools' shared module (/usr/local/lib/<app>/server_common.py).
Files another user could have written (a release's .release.json, the shared directories) are
never read through a symlink; a missing file means "none", never a crash.

What it reads (times are UTC, ages and uptimes in seconds; sizes in bytes in --json and the
textfile, in binary units in the text, as df -h and free -h show them: KiB, MiB, GiB):
  release      the release /srv/<app>/current points to, when it was switched to (the link's own
               mtime: a deploy or a rollback), and from its .release.json: its commit, ref, build
               time, the web process's WSGI app, its other process types and shared directories
  instances    each web instance's supervisor program (<app>-<n>): state, PID and uptime
               (supervisorctl status), its restarts since boot (supervisor's "spawned" lines in
               /var/log/supervisor/supervisord.log* since /proc/stat's btime, minus the first
               start), its crashes, and whether its socket is open to nginx (group www-data, g+w:
               the instance opens it once healthy) or closed
  processes    each program of the app's other process types (the Procfile's worker:, clock: ...),
               from /etc/supervisor/conf.d/<app>-processes.conf (the release tool writes it:
               <app>-<type>-<n>): its type, state, PID, uptime, restarts and crashes, as the
               instances' (they have no socket); none: web only
  config       the names of the operator's configuration variables (/etc/<app>/config.env,
               scripts/config); never their values, which are secrets
  shared       the app's shared directories, kept across releases (they must be backed up): the
               current release's shared_dirs, then the settings' (/etc/<app>/release.json) not
               among them, each stored under /var/lib/<app>/shared/<path>, with the size and number
               of its files (counted for at most 10 s in all: "at least" beyond)
  maintenance  on when nginx's maintenance snippet exists (<app>-maintenance on: nginx answers
               503), off when not; not shown on a host without nginx's site
  units        systemctl is-active of each unit in the settings
  backups      <app>-backup status --json: the newest backup and the last archived WAL, their
               ages, and the backup tool's warnings (when backups are on)
  certificate  the TLS certificate's notAfter (openssl x509 -enddate) and the days left
  disk, memory used percent and size of each disk path (as df counts it: available to users), and
               of memory (MemTotal - MemAvailable in /proc/meminfo)
  requests     requests and 5xx answers in the last 300 s (--window), from the tail (8 MiB) of nginx's
               access log, one JSON object per line; other lines are skipped
  alerts       the alerts firing in Prometheus on this server (its HTTP API, the settings'
               prometheus URL; none when it is null: monitoring off)

A line "ATTENTION: <reason>" names each thing that needs attention: an instance not RUNNING,
or RUNNING but closed to nginx after 30 s of uptime; a process type's program not RUNNING;
maintenance mode on (so that it is not left on); a shared directory of the current release
missing or not a directory; a unit not active; a backup warning or a failing backup tool; a
certificate expiring within cert_warn_days; a disk above disk_warn_percent; memory above
memory_warn_percent; 5xx above error_ratio_warn of at least 20 requests; no current release;
an alert firing in Prometheus, or Prometheus not answering; anything that could not be read.

Options:
  --json           one JSON object instead: app, host, time (epoch s), release {name, commit, ref,
                   built_at, deployed, wsgi_app, process_types, shared_dirs}, instances [{name,
                   state, pid, uptime, spawns, restarts, crashes, socket: open|closed|missing,
                   open}], processes (null: not an app host) [{name, type, state, pid, uptime,
                   spawns, restarts, crashes}], maintenance (null: no nginx site here) {snippet,
                   on}, units {unit: state}, backups (null when off) {newest_backup,
                   newest_backup_label, last_archived_wal, max_age, warnings, repository,
                   same_disk, error}, certificate {path, not_after, days_left, error}, disks
                   [{path, used_percent, total, used, free, error}], memory {total, available,
                   used_percent, error}, config (null: not an app host) {path, names, error},
                   shared (null: not an app host) {root, dirs: [{path, stored, size, files,
                   complete, error}]}, requests {window, requests, status_5xx, ratio,
                   skipped_lines, error}, alerts (null when monitoring is off) [{name, severity,
                   summary, since}], attention [reasons]
  --textfile PATH  write the state as Prometheus metrics (text format, todo_* names: the
                   instances', the process types' todo_process_up/spawns/crashes{name, type},
                   todo_maintenance_mode, ...) to PATH for node_exporter's textfile collector,
                   atomically (a temporary file beside it, renamed), mode 0644; prints nothing.
                   Without the alerts (the metrics feed Prometheus's rules, whose alerts must not
                   feed back into them), the requests, the configuration names and the shared
                   directories (walking them every 15 s would cost; node_exporter measures disks)

Exit status: 0 nothing needs attention; 1 something does (or, with --textfile, PATH could not
be written: with --textfile it is 0 whatever the state, the metrics carry it); 2 bad usage,
not root, or no readable settings.
"""

import argparse
import errno
import grp
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

NAME = Path(sys.argv[0]).name.removesuffix("-status") or "todo"
# The module the server tools share: in /usr/local/lib/<app> once installed, else beside this file.
HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, f"/usr/local/lib/{NAME}" if str(HERE) == "/usr/local/sbin" else str(HERE))
from server_common import (  # noqa: E402
    MONTHS,
    SOCKET_GROUP,
    open_text,
    parse_env_names,
    parse_processes_conf,
    processes_conf_path,
    read_regular,
    read_settings,
    require_root,
    settings_path,
    stamp,
    write_atomically,
)

#: Seconds a RUNNING instance may stay closed to nginx (its health check) before it needs attention.
OPEN_GRACE = 30
#: Seconds of access log counted, and the most of its end read (bytes).
WINDOW = 300
TAIL_BYTES = 8 * 1024 * 1024
#: Fewest requests in the window for the 5xx ratio to count.
MIN_REQUESTS = 20
SUPERVISOR_LOG = Path("/var/log/supervisor/supervisord.log")
DEFAULTS = {"disk_warn_percent": 90, "cert_warn_days": 14, "memory_warn_percent": 90, "error_ratio_warn": 0.05}
STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
UPTIME = re.compile(r"pid (\d+), uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
SPAWNED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO spawned: '([^']+)' with pid \d+")
# An exit supervisord did not ask for (a crash, a kill): "exited: todo-0 (exit status 1; not expected)".
CRASHED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ exited: (\S+) \(.*; not expected\)$")
#: A process type's name (a Procfile's: letters, digits, _ and -).
PROCESS_TYPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Text the build user wrote that is shown as it is only when one printable line of at most 200 characters.
PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")
#: Seconds counting the shared directories' files may take (a huge upload directory: "at least").
SHARED_BUDGET = 10
UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class Failed(Exception):
    """A command could not run or failed; the message says which and why."""


def command(*args, timeout=20, ok=(0,)):
    """Run ``args``; return (exit status, stdout). Raise Failed when it cannot run, times out or exits
    with a status not in ``ok``."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Failed(f"`{' '.join(args)}`: {error}") from None
    if done.returncode not in ok:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Failed(f"`{' '.join(args)}` exited {done.returncode}: {why[0][:300]}")
    return done.returncode, done.stdout


def human_size(size):
    """``size`` bytes in binary units with one decimal, as ``df -h`` and ``free -h`` count them:
    "512 B", "1.0 KiB", "23.4 GiB"; "?" when unknown (None)."""
    if size is None:
        return "?"
    if abs(size) < 1024:
        return f"{int(size)} B"
    value = float(size)
    for unit in UNITS:
        value /= 1024
        if abs(round(value, 1)) < 1024 or unit == UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def printable(value):
    """``value`` when it is one line of printable text (at most 200 characters), else None."""
    return value if isinstance(value, str) and PRINTABLE.fullmatch(value) else None


def shared_paths(value):
    """The valid paths of a shared_dirs list (relative, no .., printable), normalised ("a/./b": "a/b");
    anything else is dropped."""
    found = []
    for path in value if isinstance(value, list) else []:
        if not printable(path) or path.startswith("/"):
            continue
        parts = PurePosixPath(path).parts
        if parts and ".." not in parts and "/".join(parts) not in found:
            found.append("/".join(parts))
    return found


def dir_size(root, path, deadline):
    """{size, files, complete} of the directory ``path`` (relative) under ``root``: the bytes of its
    regular files (apparent sizes: what a backup copies) and their number, counted until the
    monotonic ``deadline`` (``complete`` False: at least that much). Never through a symlink: each
    component is opened with O_NOFOLLOW and the walk follows none (the app user owns the tree)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for part in PurePosixPath(path).parts:
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
        size = files = 0
        walk = os.fwalk(".", dir_fd=fd, follow_symlinks=False)
        try:
            for _, _, names, where in walk:
                for name in names:
                    try:
                        info = os.stat(name, dir_fd=where, follow_symlinks=False)
                    except OSError:  # removed meanwhile
                        continue
                    if stat.S_ISREG(info.st_mode):
                        size, files = size + info.st_size, files + 1
                if time.monotonic() > deadline:
                    return {"size": size, "files": files, "complete": False}
        finally:
            walk.close()
        return {"size": size, "files": files, "complete": True}
    finally:
        os.close(fd)


# --- Sections: each returns a dict (or list) and appends its reasons to ``attention`` ----------------


def release(settings, attention):
    """The release ``current`` names, its metadata (.release.json: commit, ref, build time, the web
    process's WSGI app, its other process types and shared directories), and when ``current`` was
    switched to it."""
    link = Path(settings["srv"]) / "current"
    found = {"name": None, "commit": None, "ref": None, "built_at": None, "deployed": None, "wsgi_app": None,
             "process_types": [], "shared_dirs": []}  # fmt: skip
    try:
        found["deployed"] = int(os.lstat(link).st_mtime)
        found["name"] = Path(os.readlink(link)).name
    except OSError:
        attention.append(f"no current release: {link} is missing")
        return found
    meta = Path(settings["srv"]) / "releases" / found["name"] / ".release.json"
    try:
        # Never through a symlink nor from a FIFO: the build user wrote it (as release.py reads it).
        text = read_regular(meta)
        if text is None:
            raise OSError("missing")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        # Text the build user wrote: kept only when it is what it says (a commit id, a time, a name).
        commit, built = data.get("commit"), data.get("built_at")
        web = data.get("web") if isinstance(data.get("web"), dict) else {}
        kinds = data.get("processes") if isinstance(data.get("processes"), dict) else {}
        found.update(commit=commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,40}", commit) else None,
                     built_at=built if isinstance(built, (int, float)) or isinstance(built, str)
                     and re.fullmatch(r"[0-9T:+.Z -]{1,40}", built) else None,
                     ref=printable(data.get("ref")), wsgi_app=printable(web.get("wsgi_app")),
                     process_types=sorted(kind for kind in kinds if PROCESS_TYPE.fullmatch(kind)),
                     shared_dirs=shared_paths(data.get("shared_dirs")))  # fmt: skip
    except (OSError, ValueError) as error:
        attention.append(f"current release {found['name']}: no readable {meta}: {error}")
    return found


def parse_supervisor_line(line):
    """(name, state, pid or None, uptime seconds or None) of a ``supervisorctl status`` line, or None."""
    fields = line.split(None, 2)
    if len(fields) < 2 or fields[1] not in STATES:
        return None
    pid = uptime = None
    if match := UPTIME.search(line):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups()[1:])
        pid, uptime = int(match.group(1)), ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return fields[0], fields[1], pid, uptime


def boot_time():
    """The boot time (epoch seconds), from /proc/stat's btime."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("/proc/stat has no btime")


def spawns_since(boot, log=SUPERVISOR_LOG, pattern=SPAWNED):
    """{program: times supervisord spawned it since ``boot``}, from its log and rotated copies
    (``pattern=CRASHED``: times it exited when supervisord did not expect it to)."""
    return supervisor_counts(boot, log, (pattern,))[0]


def supervisor_counts(boot, log=SUPERVISOR_LOG, patterns=(SPAWNED, CRASHED)):
    """For each pattern, {program: its lines since ``boot``}, in one read of supervisord's log and
    its rotated copies.

    supervisord writes local time (``YYYY-MM-DD HH:MM:SS,mmm``), compared as text with the boot
    time in the same form. Copies are read newest first, down to the first that began before boot.
    """
    since = datetime.fromtimestamp(boot).strftime("%Y-%m-%d %H:%M:%S")
    copies = sorted(log.parent.glob(log.name + "*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not copies:
        raise FileNotFoundError(f"no {log}")
    counts = [{} for _ in patterns]
    for path in copies[:60]:
        with open_text(path) as file:
            lines = file.read().splitlines()
        for line in lines:
            for found, pattern in zip(counts, patterns, strict=True):
                if (match := pattern.match(line)) and match.group(1) >= since:
                    found[match.group(2)] = found.get(match.group(2), 0) + 1
        first = next((line[:19] for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)), None)
        if first is not None and first < since:
            break
    return counts


def socket_state(path):
    """``open`` (group www-data with g+w: nginx may connect), ``closed`` or ``missing``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "missing"
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = None
    return "open" if stat.S_ISSOCK(info.st_mode) and group == SOCKET_GROUP and info.st_mode & stat.S_IWGRP else "closed"


class Supervisor:
    """supervisorctl status and supervisord's log counts, each read once per collection: the
    instances and the process types share them."""

    def __init__(self):
        self.seen = self.counts = None

    def status(self, attention):
        """{program: (name, state, pid, uptime)}, empty when supervisorctl does not answer (the reason
        goes to ``attention`` once)."""
        if self.seen is None:
            self.seen = {}
            try:
                _, out = command("supervisorctl", "status", ok=range(256))
                for line in out.splitlines():
                    if parsed := parse_supervisor_line(line):
                        self.seen[parsed[0]] = parsed
                if not self.seen:
                    raise Failed(f"`supervisorctl status`: {out.strip()[:300] or 'no output'}")
            except Failed as error:
                attention.append(f"supervisor: {error}")
        return self.seen

    def spawns_and_crashes(self):
        """({program: spawns since boot}, {program: crashes since boot}), or (None, None) when
        supervisord's log cannot be read (no counts: the states still say what runs)."""
        if self.counts is None:
            try:
                self.counts = tuple(supervisor_counts(boot_time()))
            except (OSError, ValueError):
                self.counts = (None, None)
        return self.counts

    def program(self, name, attention):
        """{name, state, pid, uptime, spawns, crashes, restarts} of the program ``name``; its state is
        UNKNOWN when supervisor does not answer, MISSING when it has no such program."""
        seen = self.status(attention)
        _, state, pid, uptime = seen.get(name, (name, "UNKNOWN" if not seen else "MISSING", None, None))
        spawns, crashes = self.spawns_and_crashes()
        count = None if spawns is None else spawns.get(name, 0)
        return {"name": name, "state": state, "pid": pid, "uptime": uptime, "spawns": count,
                "crashes": None if crashes is None else crashes.get(name, 0),
                "restarts": None if count is None else max(count - 1, 0)}  # fmt: skip


def instances(settings, attention, supervisor=None):
    """Each instance's supervisor state, PID, uptime, spawns and restarts since boot, and socket."""
    supervisor = supervisor or Supervisor()
    names = settings["instances"]
    if isinstance(names, int):
        names = [f"{settings['app_name']}-{n}" for n in range(names)]
    found = []
    for name in names:
        entry = supervisor.program(name, attention)
        sock = socket_state(Path(settings["run_dir"]) / f"{name}.sock")
        entry.update(socket=sock, open=sock == "open")
        found.append(entry)
        state, uptime = entry["state"], entry["uptime"]
        if state != "RUNNING":
            attention.append(f"instance {name} is {state}, not RUNNING")
        elif sock != "open" and (uptime or 0) > OPEN_GRACE:
            attention.append(f"instance {name} is RUNNING for {uptime} s but its socket is {sock} to nginx")
    return found


def processes(settings, attention, supervisor=None):
    """Each program of the app's other process types (/etc/supervisor/conf.d/<app>-processes.conf,
    which the release tool writes: <app>-<type>-<n>): its type, supervisor state, PID, uptime, spawns
    and crashes since boot (no socket: nginx sends them nothing). [] when there is no such file on an
    app host (web only); None on a host with no instances and no such file."""
    supervisor = supervisor or Supervisor()
    app = settings["app_name"]
    path = settings.get("processes_conf") or processes_conf_path(app)
    try:
        text = read_regular(path)
    except OSError as error:
        attention.append(f"process types: cannot read {path}: {error}")
        return None
    if text is None:
        return [] if settings["instances"] else None
    found = []
    for name, kind in parse_processes_conf(text, app).items():
        entry = {"name": name, "type": kind, **supervisor.program(name, attention)}
        found.append(entry)
        if entry["state"] != "RUNNING":
            attention.append(f"process {name} ({kind or 'unknown type'}) is {entry['state']}, not RUNNING")
    return found


def configuration(settings, attention):
    """The names of the operator's configuration variables (/etc/<app>/config.env: scripts/config):
    {path, names, error}; never a value (they are secrets). None on a host with no instances and no
    such file."""
    path = settings.get("config_env") or f"/etc/{settings['app_name']}/config.env"
    found = {"path": path, "names": [], "error": None}
    try:
        text = read_regular(path)
    except OSError as error:
        found["error"] = str(error)
        attention.append(f"configuration {path}: cannot read it: {error}")
        return found
    if text is None and not settings["instances"]:
        return None
    found["names"] = parse_env_names(text or "")
    return found


def maintenance(settings, attention):
    """{snippet, on}: maintenance mode is on when nginx's maintenance snippet exists (the
    <app>-maintenance tool writes it: nginx answers 503); None on a host without nginx's site (no
    snippets directory)."""
    app = settings["app_name"]
    snippet = Path(settings.get("maintenance_snippet") or f"/etc/nginx/snippets/{app}/maintenance.conf")
    if not snippet.parent.is_dir():
        return None
    found = {"snippet": str(snippet), "on": snippet.exists()}
    if found["on"]:
        attention.append(f"maintenance mode is on: nginx answers 503 with the maintenance page ({snippet}; "
                         "scripts/maintenance off ends it)")  # fmt: skip
    return found


def shared(settings, current, attention, budget=SHARED_BUDGET):
    """The app's shared directories (kept across releases: they must be backed up): the current
    release's shared_dirs, then those of the settings (/etc/<app>/release.json: the next release's)
    not among them, each with the size and number of its files under /var/lib/<app>/shared/<path>
    (counted for at most ``budget`` seconds in all). {root, dirs: [{path, stored, size, files,
    complete, error}]}; None on a host with no instances and none set."""
    app = settings["app_name"]
    root = settings.get("shared_root") or f"/var/lib/{app}/shared"
    linked = (current or {}).get("shared_dirs") or []
    dirs = list(linked)
    path = settings.get("release_settings") or settings_path(app, "release")
    try:
        text = read_regular(path)
        data = json.loads(text) if text is not None else {}
        dirs += [d for d in shared_paths(data.get("shared_dirs") if isinstance(data, dict) else None) if d not in dirs]
    except (OSError, ValueError) as error:
        attention.append(f"shared directories: cannot read {path}: {error}")
    if not dirs and not settings["instances"]:
        return None
    deadline = time.monotonic() + budget
    found = {"root": root, "dirs": []}
    for rel in dirs:
        entry = {"path": rel, "stored": f"{root}/{rel}", "size": None, "files": None, "complete": None, "error": None}
        try:
            entry.update(dir_size(root, rel, deadline))
        except FileNotFoundError:
            entry["error"] = "missing"
            if rel in linked:
                attention.append(f"shared directory {rel} of the current release is missing: {entry['stored']}")
        except OSError as error:
            looped = error.errno in (errno.ELOOP, errno.ENOTDIR)
            entry["error"] = "not a directory (a symlink is not followed)" if looped else error.strerror or str(error)
            attention.append(f"shared directory {rel}: {entry['stored']}: {entry['error']}")
        found["dirs"].append(entry)
    return found


def units(settings, attention):
    """{unit: systemctl is-active state}."""
    found = {}
    for unit in settings.get("units", []):
        try:
            found[unit] = command("systemctl", "is-active", unit, ok=range(256))[1].strip() or "unknown"
        except Failed:
            found[unit] = "unknown"
        if found[unit] != "active":
            attention.append(f"unit {unit} is {found[unit]}, not active")
    return found


def backups(settings, now, attention):
    """The backup tool's status (its JSON object) with an ``error``; None when backups are off."""
    if not settings.get("backups"):
        return None
    found = {"newest_backup": None, "newest_backup_label": None, "last_archived_wal": None, "max_age": None,
             "warnings": [], "error": None}  # fmt: skip
    tool = f"/usr/local/sbin/{settings['app_name']}-backup"
    try:
        _, out = command(tool, "status", "--json", timeout=120, ok=(0, 1))
        found.update(json.loads(out))
    except Failed as error:
        found["error"] = str(error)
        attention.append(f"backups: {found['error']}")
        return found
    except ValueError as error:
        found["error"] = f"`{tool} status --json` printed no JSON object: {error}"
        attention.append(f"backups: {found['error']}")
        return found
    for warning in found["warnings"]:
        attention.append(f"backups: {warning}")
    return found


def parse_enddate(text):
    """Epoch seconds of openssl's ``notAfter=Nov 22 19:00:00 2027 GMT``."""
    month, day, clock, year, zone = text.strip().removeprefix("notAfter=").split()
    if zone != "GMT":
        raise ValueError(f"not GMT: {text!r}")
    hour, minute, second = (int(n) for n in clock.split(":"))
    return datetime(int(year), MONTHS[month], int(day), hour, minute, second, tzinfo=UTC).timestamp()


def certificate(settings, now, attention):
    """The TLS certificate's notAfter (epoch seconds) and days left; None when none is set."""
    path = settings.get("tls_cert")
    if not path:
        return None
    found = {"path": path, "not_after": None, "days_left": None, "error": None}
    try:
        if not os.path.isfile(path):
            raise Failed("no such file")
        found["not_after"] = parse_enddate(command("openssl", "x509", "-enddate", "-noout", "-in", path)[1])
    except (Failed, ValueError, KeyError) as error:
        found["error"] = str(error)
        attention.append(f"certificate {path}: cannot read its end date: {error}")
        return found
    found["days_left"] = round((found["not_after"] - now) / 86400, 1)
    warn = settings.get("cert_warn_days", DEFAULTS["cert_warn_days"])
    if found["days_left"] < warn:
        when = "expired" if found["days_left"] < 0 else f"expires in {found['days_left']} days"
        attention.append(f"certificate {path} {when} ({stamp(found['not_after'])}; warn below {warn} days)")
    return found


def disks(settings, attention):
    """Used percent of each disk path, as df counts it (used / (used + available to users))."""
    found, warn = [], settings.get("disk_warn_percent", DEFAULTS["disk_warn_percent"])
    for path in settings.get("disk_paths", ["/"]):
        try:
            usage = shutil.disk_usage(path)
        except OSError as error:
            found.append({"path": path, "used_percent": None, "total": None, "used": None, "free": None,
                          "error": str(error)})  # fmt: skip
            attention.append(f"disk {path}: {error}")
            continue
        percent = round(100 * usage.used / ((usage.used + usage.free) or 1), 1)
        found.append({"path": path, "used_percent": percent, "total": usage.total, "used": usage.used,
                      "free": usage.free, "error": None})  # fmt: skip
        if percent > warn:
            attention.append(f"disk {path} is {percent}% used (more than {warn}%)")
    return found


def memory(settings, attention):
    """MemTotal, MemAvailable (bytes) and the used percent, from /proc/meminfo."""
    found = {"total": None, "available": None, "used_percent": None, "error": None}
    try:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) * 1024  # kB
        found.update(total=info["MemTotal"], available=info["MemAvailable"])
    except (OSError, ValueError, IndexError, KeyError) as error:
        found["error"] = f"/proc/meminfo: {error!r}"
        attention.append(f"memory: {found['error']}")
        return found
    found["used_percent"] = round(100 * (found["total"] - found["available"]) / found["total"], 1)
    warn = settings.get("memory_warn_percent", DEFAULTS["memory_warn_percent"])
    if found["used_percent"] > warn:
        attention.append(f"memory is {found['used_percent']}% used (more than {warn}%)")
    return found


def tail_lines(path, limit=TAIL_BYTES):
    """The whole lines in the last ``limit`` bytes of ``path``, and whether that is the file's start."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        start = max(size - limit, 0)
        file.seek(start)
        data = file.read(limit)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return (lines if start == 0 else lines[1:]), start == 0


def count_requests(paths, now, window=WINDOW):
    """{window, requests, status_5xx, skipped_lines} of access log lines (one JSON object each, with
    "time" ISO 8601 and "status") whose time is within ``window`` seconds before ``now``.

    ``paths``: the log, then its rotated copy: read only while the newer one began inside the window.
    Lines are read from the end back to the first one older than the window (less a minute of slack:
    nginx logs a request when it ends). Lines that are not such objects are counted as skipped.
    """
    found = {"window": window, "requests": 0, "status_5xx": 0, "skipped_lines": 0}
    start = now - window
    for n, path in enumerate(paths):
        try:
            lines, whole = tail_lines(path)
        except FileNotFoundError:
            if n == 0:
                raise
            break
        for line in reversed(lines):
            try:
                entry = json.loads(line)
                when = datetime.fromisoformat(entry["time"]).timestamp()
                status = int(entry["status"])
            except (ValueError, KeyError, TypeError):
                found["skipped_lines"] += 1
                continue
            if when < start - 60:
                return found
            if start <= when <= now + 1:
                found["requests"] += 1
                found["status_5xx"] += 500 <= status <= 599
        if not whole:
            break
    return found


def requests(settings, now, attention, window=WINDOW):
    """Requests and 5xx answers in the last ``window`` seconds, from nginx's access log."""
    path = settings.get("access_log")
    if not path:
        return None
    try:
        found = count_requests([path, f"{path}.1"], now, window)
        found["error"] = None
    except OSError as error:
        attention.append(f"access log {path}: {error}")
        return {"window": window, "requests": None, "status_5xx": None, "ratio": None, "skipped_lines": None,
                "error": str(error)}  # fmt: skip
    found["ratio"] = round(found["status_5xx"] / found["requests"], 4) if found["requests"] else 0.0
    warn = settings.get("error_ratio_warn", DEFAULTS["error_ratio_warn"])
    if found["requests"] >= MIN_REQUESTS and found["ratio"] > warn:
        attention.append(f"{found['status_5xx']} of {found['requests']} requests in the last {window} s answered "
                         f"5xx ({found['ratio']:.1%}, more than {warn:.1%})")  # fmt: skip
    return found


def alerts(settings, attention):
    """The alerts firing in Prometheus (GET <prometheus>/api/v1/alerts), or None when monitoring is off."""
    if not settings.get("prometheus"):
        return None
    try:
        with urllib.request.urlopen(f"{settings['prometheus']}/api/v1/alerts", timeout=5) as answer:
            held = json.load(answer)["data"]["alerts"]
    except (OSError, ValueError, KeyError) as error:
        attention.append(f"Prometheus at {settings['prometheus']} does not answer: {error}")
        return None
    found = []
    for alert in held:
        if alert.get("state") != "firing":
            continue
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        found.append({"name": labels.get("alertname"), "severity": labels.get("severity"),
                      "summary": annotations.get("summary", ""), "since": alert.get("activeAt")})  # fmt: skip
        attention.append(
            f"alert {labels.get('alertname')} ({labels.get('severity')}) firing: {annotations.get('summary', '')}"
        )
    return found


def collect(settings, now, textfile=False, window=WINDOW):
    """The server's state as one dict (the --json object); ``attention`` lists what needs it.
    ``textfile``: what the textfile carries only: no Prometheus alerts (its rules read the file),
    no access log (its metrics are the app's own), no configuration names (no metric) and no shared
    directories (walking them every 15 s would cost; node_exporter measures the disks)."""
    attention, supervisor = [], Supervisor()
    state = {"app": settings["app_name"], "host": socket.gethostname(), "time": now}
    sections = {
        "release": lambda: release(settings, attention),
        "instances": lambda: instances(settings, attention, supervisor),
        "processes": lambda: processes(settings, attention, supervisor),
        "maintenance": lambda: maintenance(settings, attention),
        "units": lambda: units(settings, attention),
        "backups": lambda: backups(settings, now, attention),
        "certificate": lambda: certificate(settings, now, attention),
        "disks": lambda: disks(settings, attention),
        "memory": lambda: memory(settings, attention),
    }
    if not textfile:
        sections["config"] = lambda: configuration(settings, attention)
        sections["shared"] = lambda: shared(settings, state.get("release"), attention)
        sections["requests"] = lambda: requests(settings, now, attention, window)
        sections["alerts"] = lambda: alerts(settings, attention)
    for name, section in sections.items():
        try:
            state[name] = section()
        except Exception as error:  # noqa: BLE001 (a section that breaks is a reason, never a traceback)
            state[name] = None
            attention.append(f"{name}: could not be read: {error!r}")
    state["attention"] = attention
    return state


# --- Output ---------------------------------------------------------------------------------------


def render_text(state):
    """The state as one screen of plain text, ATTENTION lines last."""
    now, out = state["time"], []

    def ago(epoch):
        """When ``epoch`` was, and how many seconds ago."""
        return f"at {stamp(epoch)} ({now - epoch:.0f} s ago)" if epoch else "never"

    def program(p, width):
        """A supervisor program's columns: name, state, pid, uptime, restarts, crashes."""
        pid = p["pid"] if p["pid"] is not None else "-"
        uptime = f"{p['uptime']} s" if p["uptime"] is not None else "-"
        restarts = p["restarts"] if p["restarts"] is not None else "?"
        crashes = p["crashes"] if p["crashes"] is not None else "?"
        return (f"  {p['name']:<{width}} {p['state']:<9} pid {pid!s:<8} uptime {uptime:<10} restarts {restarts!s:<4} "
                f"crashes {crashes!s:<4}")  # fmt: skip

    out.append(f"{state['app']} on {state['host']} at {stamp(now)}")
    if rel := state.get("release"):
        if rel["name"]:
            made = ", ".join(([f"commit {rel['commit'][:12]}"] if rel.get("commit") else [])
                             + ([f"ref {rel['ref']}"] if rel.get("ref") else []))  # fmt: skip
            out.append(f"release     {rel['name']}{f' ({made})' if made else ''}, deployed {ago(rel['deployed'])}")
            if rel.get("wsgi_app") or rel.get("process_types"):
                kinds = ", ".join(rel.get("process_types") or []) or "none"
                out.append(f"            web {rel.get('wsgi_app') or '?'}; other process types: {kinds}")
        else:
            out.append("release     none")
    inst, procs = state.get("instances") or [], state.get("processes")
    width = max([12, *(len(p["name"]) for p in inst + (procs or []))])
    out.append("instances")
    for i in inst:
        sock = "open to nginx" if i["open"] else f"closed to nginx ({i['socket']})"
        out.append(f"{program(i, width)} {sock}")
    if procs is not None:
        # The release's process types that no program runs (count 0, or not rolled onto yet).
        idle = [kind for kind in (rel or {}).get("process_types") or [] if kind not in {p["type"] for p in procs}]
        if procs or idle:
            out.append("processes")
            out.extend(f"{program(p, width)} type {p['type'] or '?'}" for p in procs)
            out.extend(f"  {'(' + kind + ')':<{width}} no program (count 0)" for kind in idle)
        else:
            out.append("processes   none (web only)")
    if (cf := state.get("config")) is not None:
        if cf["error"]:
            out.append(f"config      unknown: {cf['error']}")
        elif cf["names"]:
            out.append(f"config      {len(cf['names'])} set in {cf['path']} (names only): {', '.join(cf['names'])}")
        else:
            out.append(f"config      none set in {cf['path']}")
    if (sh := state.get("shared")) is not None:
        if sh["dirs"]:
            out.append(f"shared      under {sh['root']}, kept across releases (back them up)")
            dw = max(len(d["path"]) for d in sh["dirs"])
            for d in sh["dirs"]:
                if d["error"]:
                    out.append(f"  {d['path']:<{dw}} {d['error']}")
                else:
                    least = "" if d["complete"] else "at least "
                    files = f"{d['files']} file{'' if d['files'] == 1 else 's'}"
                    stopped = "" if d["complete"] else f" (counting stopped after {SHARED_BUDGET} s)"
                    out.append(f"  {d['path']:<{dw}} {least}{human_size(d['size'])} in {least}{files}{stopped}")
        else:
            out.append("shared      none")
    if (mt := state.get("maintenance")) is not None:
        out.append("maintenance on: nginx answers 503 with the maintenance page" if mt["on"] else "maintenance off")
    if state.get("units"):
        out.append("units")
        width = max(map(len, state["units"]))
        out.extend(f"  {unit:<{width}} {active}" for unit, active in state["units"].items())
    if (b := state.get("backups")) is not None:
        if b["error"]:
            out.append(f"backups     unknown: {b['error']}")
        else:
            label = f" {b['newest_backup_label']}" if b["newest_backup_label"] else ""
            out.append(f"backups     newest{label} {ago(b['newest_backup'])}; max age {b['max_age']} s")
            out.append(f"            last archived WAL {ago(b['last_archived_wal'])}")
            if b.get("same_disk"):
                out.append(f"            SAME DISK: the repository {b['repository']} is on this server: a lost server "
                           "loses its backups too (copy them off: docs/operations.md, Backups)")  # fmt: skip
            elif b.get("repository"):
                out.append(f"            repository on the backup host {b['repository']}")
    if c := state.get("certificate"):
        if c["not_after"] is not None:
            out.append(f"certificate {c['path']}: until {stamp(c['not_after'])} ({c['days_left']} days left)")
        else:
            out.append(f"certificate {c['path']}: unknown ({c['error']})")
    if d := state.get("disks"):
        used = ", ".join(f"{x['path']} {x['used_percent']}% of {human_size(x['total'])} ({human_size(x['free'])} "
                         "available)" if x["error"] is None else f"{x['path']} ?" for x in d)  # fmt: skip
        out.append(f"disk used   {used}")
    if (m := state.get("memory")) and m["error"] is None:
        out.append(f"memory used {m['used_percent']}% of {human_size(m['total'])} ({human_size(m['available'])} "
                   "available)")  # fmt: skip
    if (r := state.get("requests")) and r["error"] is None:
        skipped = f"; {r['skipped_lines']} lines not JSON skipped" if r["skipped_lines"] else ""
        out.append(f"requests    {r['requests']} in the last {r['window']} s, {r['status_5xx']} 5xx "
                   f"({r['ratio']:.1%}){skipped}")  # fmt: skip
    if (a := state.get("alerts")) is not None:
        out.append(f"alerts      {len(a)} firing in Prometheus" + "".join(f"; {x['name']}" for x in a))
    out.extend(f"ATTENTION: {reason}" for reason in state["attention"])
    return "\n".join(out) + "\n"


def label(value):
    """A Prometheus label value, escaped (backslash, double quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_textfile(state):
    """The state as Prometheus text exposition format (node_exporter's textfile collector)."""
    metrics = []  # (name, type, help, [(labels, value)])

    def metric(name, kind, text, samples):
        """Add a metric family (name, type, help, [(labels, value)]) unless it has no sample."""
        if samples:
            metrics.append((name, kind, text, samples))

    inst = state.get("instances") or []
    metric("todo_instance_up", "gauge", "1 when supervisor reports the instance RUNNING.",
           [({"name": i["name"]}, int(i["state"] == "RUNNING")) for i in inst])  # fmt: skip
    metric("todo_instance_open", "gauge", "1 when the instance's socket is open to nginx (it is healthy).",
           [({"name": i["name"]}, int(i["open"])) for i in inst])  # fmt: skip
    metric("todo_instance_spawns_total", "counter", "Times supervisor started the instance since boot.",
           [({"name": i["name"]}, i["spawns"]) for i in inst if i["spawns"] is not None])  # fmt: skip
    metric("todo_instance_crashes_total", "counter",
           "Times the instance exited when supervisor did not expect it (crashed or killed) since boot.",
           [({"name": i["name"]}, i["crashes"]) for i in inst if i["crashes"] is not None])  # fmt: skip
    procs = state.get("processes") or []
    metric("todo_process_up", "gauge", "1 when supervisor reports the process type's program RUNNING.",
           [({"name": p["name"], "type": p["type"] or ""}, int(p["state"] == "RUNNING")) for p in procs])  # fmt: skip
    metric("todo_process_spawns_total", "counter", "Times supervisor started the process type's program since boot.",
           [({"name": p["name"], "type": p["type"] or ""}, p["spawns"]) for p in procs
            if p["spawns"] is not None])  # fmt: skip
    metric("todo_process_crashes_total", "counter",
           "Times the process type's program exited when supervisor did not expect it since boot.",
           [({"name": p["name"], "type": p["type"] or ""}, p["crashes"]) for p in procs
            if p["crashes"] is not None])  # fmt: skip
    if (mt := state.get("maintenance")) is not None:
        metric("todo_maintenance_mode", "gauge", "1 when maintenance mode is on (nginx answers 503).",
               [({}, int(mt["on"]))])  # fmt: skip
    metric("todo_unit_active", "gauge", "1 when the systemd unit is active.",
           [({"unit": u}, int(s == "active")) for u, s in (state.get("units") or {}).items()])  # fmt: skip
    rel = state.get("release") or {}
    if rel.get("name"):
        metric("todo_release_info", "gauge", "The release /srv/<app>/current points to.",
               [({"release": rel["name"]}, 1)])  # fmt: skip
        metric("todo_release_deployed_timestamp_seconds", "gauge", "When current was switched to the release.",
               [({}, rel["deployed"])])  # fmt: skip
    b = state.get("backups")
    if b is not None:
        metric("todo_backup_status_ok", "gauge", "1 when the backup tool reported the backups (0: it failed).",
               [({}, int(not b.get("error")))])  # fmt: skip
    if b and not b.get("error"):
        if b.get("newest_backup") is not None:
            metric("todo_backup_last_success_timestamp_seconds", "gauge", "End of the newest backup.",
                   [({}, b["newest_backup"])])  # fmt: skip
        if b.get("last_archived_wal") is not None:
            metric("todo_backup_last_archived_wal_timestamp_seconds", "gauge", "When the last WAL was archived.",
                   [({}, b["last_archived_wal"])])  # fmt: skip
        if b.get("max_age") is not None:
            metric("todo_backup_max_age_seconds", "gauge", "Age after which the newest backup counts as late.",
                   [({}, b["max_age"])])  # fmt: skip
    c = state.get("certificate")
    if c and c.get("not_after") is not None:
        metric("todo_certificate_expiry_timestamp_seconds", "gauge", "The TLS certificate's notAfter.",
               [({"path": c["path"]}, c["not_after"])])  # fmt: skip
    metric("todo_status_attention", "gauge", "Things that need attention (the status tool's ATTENTION lines).",
           [({}, len(state["attention"]))])  # fmt: skip
    metric("todo_status_textfile_timestamp_seconds", "gauge", "When the status tool wrote this file.",
           [({}, state["time"])])  # fmt: skip
    out = []
    for name, kind, text, samples in metrics:
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            pairs = ",".join(f'{key}="{label(val)}"' for key, val in labels.items())
            number = repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else int(value)
            out.append(f"{name}{{{pairs}}} {number}" if pairs else f"{name} {number}")
    return "\n".join(out) + "\n"


def main(argv=None):
    """Parse the command line, collect the state and print it (text, --json) or write it (--textfile)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object instead of text")
    output.add_argument("--textfile", metavar="PATH", help="write Prometheus metrics to PATH (exit 0 when written)")
    parser.add_argument(
        "--window",
        type=int,
        default=WINDOW,
        metavar="SECONDS",
        help=f"the requests and 5xx counted: the last SECONDS (default {WINDOW})",
    )
    opts = parser.parse_args(argv)
    if not require_root(f"{NAME}-status"):
        return 2
    path = settings_path(NAME, "status")
    try:
        settings = read_settings(NAME, "status")
        settings.setdefault("app_name", NAME)
        settings.setdefault("srv", f"/srv/{settings['app_name']}")
        settings.setdefault("run_dir", f"/run/{settings['app_name']}")
        settings.setdefault("instances", [])
    except (OSError, ValueError) as error:
        print(f"{NAME}-status: cannot read its settings {path}: {error}", file=sys.stderr)
        return 2
    if opts.window < 1:
        parser.error("--window: at least 1 second")
    state = collect(settings, round(time.time(), 3), textfile=bool(opts.textfile), window=opts.window)
    if opts.textfile:
        try:
            write_atomically(opts.textfile, render_textfile(state))
        except OSError as error:
            print(f"{NAME}-status: cannot write {opts.textfile}: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        print(json.dumps(state, indent=1) if opts.json else render_text(state), end="\n" if opts.json else "")
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return 1 if state["attention"] else 0


if __name__ == "__main__":
    sys.exit(main())
