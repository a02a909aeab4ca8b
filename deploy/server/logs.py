#!/usr/bin/python3 -I
"""Print the stack's logs on this server, one line each, timed in UTC and merged by time.

Installed by the deploy as /usr/local/sbin/<app>-logs (root 0755). Runs as root and refuses
to start otherwise (the logs hold request details and are not all world-readable);
scripts/logs calls it through SSH and sudo. Only the Python standard library and the tools'
shared module (/usr/local/lib/<app>/server_common.py).

Usage: <app>-logs [SOURCE] [--since DURATION] [--follow] [--lines N]

SOURCE (default all):
  nginx       /var/log/nginx/access.log (one JSON object a line, log_format todo_json) and
              /var/log/nginx/error.log (local time)
  app         /var/log/<app>/<app>-*.log, one per gunicorn instance (its error and access
              log, UTC offsets in the line), named by the instance, e.g. <app>-0; and
              /var/log/supervisor/supervisord.log (local time), named supervisor
  postgresql  /var/log/postgresql/postgresql-<version>-main.log (version: postgresql_version
              of /etc/<app>/backup.json, else every postgresql-*-main.log)
  release     /var/log/<app>/releases.log (one JSON object a line: deploys, rollbacks, restarts)
  all         every file above
Only the current file of each log is read, never its rotated copies (<file>.1, ...): a
window reaching back past the last rotation starts at that rotation.

Options:
  --since DURATION  print the lines of the last DURATION: a whole number and a unit, s
                    (seconds), m (minutes), h (hours) or d (days), e.g. 30s, 10m, 2h, 1d;
                    default 10m. Each file is read from its end backwards, in blocks, to the
                    first line older than that, so a big log is not read whole.
  --follow          then keep printing lines as they are written (every 0.5 s), like
                    tail -F, until interrupted: a file that is replaced (rotated: renamed and
                    created anew) is read to its end and the new one from its start; one that
                    is truncated (copytruncate) is read again from its start; one that does
                    not exist yet is read once it appears.
  --lines N         print at most the last N lines of the window (then every new line with
                    --follow).

Output, on standard output, one line per log line:
  TIME SOURCE  TEXT
TIME is the line's time in UTC, ISO 8601 with milliseconds (2026-11-22T19:40:06.792Z);
times the log writes in local time are converted with the server's time zone. SOURCE is
nginx, <app>-N, supervisor, postgresql or release, padded to the longest of SOURCE's.
TEXT is the log line without its time stamp; nginx's access lines are shortened to
  REMOTE_ADDR METHOD URI STATUS rt=SECONDS upstream=ADDRESS cache=STATUS rid=REQUEST_ID
(rid: nginx's $request_id, the app's access line names it too: rid=...), release lines to
  ACTION RELEASE OUTCOME SECONDS s by USER KEY=VALUE ...
A line without a time of its own (a continuation line, a traceback, the instance's health
check lines, a line of the access log that is not JSON) takes the previous line's time and
stays right after it; one with no timed line before it in the file is left out. Control
characters of the logs are printed escaped (\\xNN). The sources are merged by time; lines
of the same time keep their file's order.

A missing or unreadable file is skipped with a note on standard error.
Exit status: 0 done (or interrupted, or the reader went away); 1 no file of SOURCE exists,
or reading failed; 2 bad usage or not root.
"""

import argparse
import collections
import heapq
import json
import math
import os
import re
import select
import signal
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

NAME = Path(sys.argv[0]).name.removesuffix("-logs") or "todo"
# The module the server tools share: in /usr/local/lib/<app> once installed, else beside this file.
HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, f"/usr/local/lib/{NAME}" if str(HERE) == "/usr/local/sbin" else str(HERE))
from server_common import MONTHS, require_root  # noqa: E402

SOURCES = ("nginx", "app", "postgresql", "release", "all")
#: --since: a whole number and a unit (seconds, minutes, hours, days).
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Bytes read per step when looking backwards for the start of a window.
BLOCK = 64 * 1024
#: Seconds between two looks at the files with --follow; bytes read from one file per look.
INTERVAL = 0.5
ROUND_BYTES = 8 * 1024 * 1024
#: A line still without its newline after this many bytes is printed as it is.
LONGEST_LINE = 1024 * 1024

#: gunicorn's error log: [2026-11-22 19:35:10 +0000] [100] [INFO] ...
GUNICORN_ERROR = re.compile(r"^\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) ([+-]\d{4})\] ?(.*)$")
#: gunicorn's access log (%(h)s %(t)s ...): 192.168.56.2 [22/Nov/2026:19:40:06 +0000] "GET / HTTP/1.0" ...
GUNICORN_ACCESS = re.compile(r"^(\S*) ?\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\] ?(.*)$")
#: nginx's error log, local time: 2026/11/22 19:29:14 [error] 121127#121127: *59570 ...
NGINX_ERROR = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) (.*)$")
#: PostgreSQL's log_line_prefix '%m [%p] ': 2026-11-22 19:40:06.792 UTC [57] LOG:  ...
POSTGRESQL = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)? (\S+) \[\d+\] ?(.*)$")
#: supervisord's log, local time: 2026-11-22 19:35:13,803 INFO success: ...
SUPERVISOR = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:,(\d+))? (.*)$")
#: A time zone PostgreSQL may print as a number: +01, -0530, +05:30.
OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)?$")
#: Control characters (C0 but tab, DEL, C1): printed escaped, never sent to the operator's terminal.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def duration(text):
    """Seconds of a --since value such as 30s, 10m, 2h or 1d (ValueError otherwise)."""
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected a whole number and s, m, h or d (e.g. 10m)")
    return int(match.group(1)) * UNITS[match.group(2)]


# --- Times ---------------------------------------------------------------------------------------


def utc(year, month, day, hour, minute, second, offset_seconds=0):
    """Epoch seconds of a wall-clock time ``offset_seconds`` east of UTC."""
    wall = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    return wall.timestamp() - offset_seconds


def local(year, month, day, hour, minute, second):
    """Epoch seconds of a wall-clock time in the server's time zone (mktime: DST guessed)."""
    return time.mktime((int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, -1))


def offset(text):
    """Seconds east of UTC of ``+0100``, ``-05``, ``+05:30``, ``UTC``; None when not a number or UTC."""
    if text in ("UTC", "GMT", "Z", "UCT"):
        return 0
    match = OFFSET.match(text)
    if not match:
        return None
    seconds = int(match.group(2)) * 3600 + int(match.group(3) or 0) * 60
    return -seconds if match.group(1) == "-" else seconds


def iso(epoch):
    """``epoch`` as UTC ISO 8601 with milliseconds: 2026-11-22T19:40:06.792Z."""
    millis = round(epoch * 1000)
    return f"{datetime.fromtimestamp(millis // 1000, UTC):%Y-%m-%dT%H:%M:%S}.{millis % 1000:03d}Z"


# --- Lines -----------------------------------------------------------------------------------------


def parse_json_time(entry, *keys):
    """The first of ``keys`` in ``entry`` that holds a time (epoch seconds, or ISO 8601; no zone: UTC)."""
    for key in keys:
        value = entry.get(key)
        if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
            continue
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
            continue
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            continue
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    return None


def json_object(line):
    """The JSON object on ``line``, or None (not JSON, or JSON but not an object)."""
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def value(item):
    """A JSON value as text: strings as they are, anything else as compact JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def parse_nginx_access(line):
    """(epoch, text) of an access log line (one JSON object, log_format todo_json); (None, line) if not one."""
    entry = json_object(line)
    if entry is None:
        return None, line  # the old format before log_format todo_json, or a broken line
    words = [value(entry.get(key, "")) for key in ("remote_addr", "method", "uri", "status")]
    labelled = (("rt", "rt"), ("upstream", "upstream"), ("cache", "cache"), ("rid", "request_id"))
    words += [f"{label}={value(entry.get(key, ''))}" for label, key in labelled]
    text = " ".join(words)
    return parse_json_time(entry, "msec", "time"), text


def parse_release(line):
    """(epoch, text) of a release history line (one JSON object, the release tool's record)."""
    entry = json_object(line)
    if entry is None:
        return None, line
    words = [value(entry[key]) for key in ("action", "release", "outcome") if key in entry]
    if "seconds" in entry:
        words.append(f"{value(entry['seconds'])} s")
    if "by" in entry:
        words.append(f"by {value(entry['by'])}")
    known = {"time", "action", "release", "outcome", "seconds", "by"}
    words += [f"{key}={value(item)}" for key, item in entry.items() if key not in known]
    return parse_json_time(entry, "time"), " ".join(words)


def parse_app(line):
    """(epoch, text) of an instance's line: gunicorn's error or access log; (None, line) when untimed."""
    if match := GUNICORN_ERROR.match(line):
        *wall, zone, text = match.groups()
        return utc(*wall, offset(zone)), text
    if match := GUNICORN_ACCESS.match(line):
        remote, day, month, year, hour, minute, second, zone, text = match.groups()
        if month in MONTHS:
            return utc(year, MONTHS[month], day, hour, minute, second, offset(zone)), f"{remote} {text}".lstrip()
    return None, line  # the health check's lines, tracebacks, anything else: the previous line's time


def parse_nginx_error(line):
    """(epoch, text) of nginx's error log line (local time ``YYYY/MM/DD HH:MM:SS``)."""
    if match := NGINX_ERROR.match(line):
        *wall, text = match.groups()
        return local(*wall), text
    return None, line


def parse_postgresql(line):
    """(epoch, text) of PostgreSQL's log line (``YYYY-MM-DD HH:MM:SS.mmm ZONE [pid]``)."""
    if match := POSTGRESQL.match(line):
        *wall, fraction, zone, text = match.groups()
        east = offset(zone)
        epoch = local(*wall) if east is None else utc(*wall, east)  # a zone name: the server's own
        return epoch + float(fraction or 0), text
    return None, line  # continuation lines (a tab first) and anything else


def parse_supervisor(line):
    """(epoch, text) of supervisord's log line (local time ``YYYY-MM-DD HH:MM:SS,mmm``)."""
    if match := SUPERVISOR.match(line):
        *wall, millis, text = match.groups()
        return local(*wall) + (int(millis) / 10 ** len(millis) if millis else 0), text
    return None, line


PARSERS = {
    "nginx-access": parse_nginx_access,
    "nginx-error": parse_nginx_error,
    "app": parse_app,
    "supervisor": parse_supervisor,
    "postgresql": parse_postgresql,
    "release": parse_release,
}


def parse_line(kind, line):
    """(epoch seconds or None, text) of one line (no newline) of a log of ``kind`` (PARSERS):
    None when the line carries no time of its own; text is the line without its time stamp."""
    return PARSERS[kind](line)


def decode(raw):
    """A raw line as text (UTF-8, undecodable bytes replaced), without its line end."""
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def clean(text):
    """``text`` with control characters escaped (a log line may hold a client's bytes)."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def render(epoch, source, text, width=0):
    """One output line (with its newline)."""
    return f"{iso(epoch)} {source:<{width}}  {clean(text)}\n"


# --- Files -----------------------------------------------------------------------------------------


def start_offset(file, kind, since_epoch, block=BLOCK):
    """Where to start reading ``file`` (binary) for the lines from ``since_epoch`` on: the start of
    the last line older than that, found reading backwards in blocks (0: the file's start)."""
    position = file.seek(0, os.SEEK_END)
    rest = b""  # bytes after ``position`` not yet known to start a line
    while position > 0:
        size = min(block, position)
        position -= size
        file.seek(position)
        data = file.read(size) + rest
        pieces = data.split(b"\n")
        # Every piece but the first starts right after a newline; the first only at the file's start.
        begin = position + len(data)
        for piece in reversed(pieces[1:]):
            begin -= len(piece)
            epoch = parse_line(kind, decode(piece))[0] if piece.strip() else None
            if epoch is not None and epoch < since_epoch:
                return begin
            begin -= 1  # the newline before it
        rest = pieces[0]
    return 0


def reopen_needed(old_stat, new_stat, position):
    """Whether a followed file must be read anew: "replaced" when its path now names another file
    (rotated: renamed, a new one created), "truncated" when it is shorter than what was read
    (copytruncate), else None (also while the path names no file: the rotated one may still grow)."""
    if new_stat is None:
        return None
    if (new_stat.st_dev, new_stat.st_ino) != (old_stat.st_dev, old_stat.st_ino):
        return "replaced"
    if new_stat.st_size < position:
        return "truncated"
    return None


class LogFile:
    """One log file of the stack: its source name, kind (PARSERS) and path; read once for a
    window, then followed. ``position`` is the byte offset read up to, ``last`` the newest time
    read (what a line without its own time takes)."""

    def __init__(self, source, kind, path):
        self.source, self.kind, self.path = source, kind, Path(path)
        self.file = self.stat = self.last = None
        self.position, self.pending = 0, b""

    def open(self):
        """Open the file from its start; False when it does not exist (OSError when unreadable)."""
        # As root, in directories other users may write (/var/log/postgresql is postgres's): never
        # through a symlink (it could name /etc/shadow), and only a regular file (a FIFO would hang,
        # /dev/zero never end).
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise OSError(f"{self.path}: not read ({error.strerror}: a symlink is never followed)") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{self.path}: not a regular file, not read")
        self.file = os.fdopen(fd, "rb")
        self.stat = os.fstat(self.file.fileno())
        self.position, self.pending = 0, b""
        return True

    def close(self):
        """Close the file (it is opened again when followed)."""
        if self.file:
            self.file.close()
        self.file = None

    def groups(self, lines, since_epoch=None):
        """(epoch, [texts]) of ``lines`` (str): a timed line and the untimed lines after it, which take
        its time (at the start: ``last``'s; none known: left out); groups before ``since_epoch`` left out."""
        group = None
        for line in lines:
            if not line.strip():
                continue
            epoch, text = parse_line(self.kind, line)
            if epoch is None:
                if group is not None:
                    group[1].append(text)
                elif self.last is not None:
                    group = (self.last, [text])
                continue
            if group is not None and (since_epoch is None or group[0] >= since_epoch):
                yield group
            self.last = epoch
            group = (epoch, [text])
        if group is not None and (since_epoch is None or group[0] >= since_epoch):
            yield group

    def since(self, since_epoch, partial=True):
        """The groups of lines from ``since_epoch`` on, in the file's order; reads backwards to the
        window's start first. The last line is left for follow() when it has no newline yet,
        unless ``partial``."""
        start = start_offset(self.file, self.kind, since_epoch)
        self.file.seek(start)
        self.position = start

        def lines():
            """The file's complete lines from ``position`` on (a last line without its end waits)."""
            for raw in self.file:
                if not raw.endswith(b"\n") and not partial:
                    self.pending = raw
                    return
                self.position += len(raw)
                yield decode(raw)

        yield from self.groups(lines(), since_epoch)
        self.position += len(self.pending)

    def read_new(self, final=False):
        """The groups of the complete lines written since the last read (all lines when ``final``)."""
        self.file.seek(self.position)
        data = self.file.read(ROUND_BYTES)
        self.position += len(data)
        data = self.pending + data
        cut = len(data) if final or len(data) - data.rfind(b"\n") > LONGEST_LINE else data.rfind(b"\n") + 1
        data, self.pending = data[:cut], data[cut:]
        return list(self.groups(decode(raw) for raw in data.split(b"\n")))

    def poll(self):
        """The groups written since the last poll, following the file through rotations."""
        if self.file is None:
            if not self.open():
                return []
            note(f"{self.path} appeared: following it")
        found = self.read_new()
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        why = reopen_needed(self.stat, current, self.position)
        if why == "replaced":
            found += self.read_new(final=True)  # what was written to it before it was replaced
            self.close()
            if self.open():
                note(f"{self.path} was replaced (rotated): following the new file")
                found += self.read_new()
        elif why == "truncated":
            note(f"{self.path} was truncated: reading it from its start")
            self.position, self.pending, self.stat = 0, b"", current
            found += self.read_new()
        return found


def read_since(path, kind, since_epoch):
    """The groups (epoch, [texts]) of the file at ``path`` from ``since_epoch`` on; FileNotFoundError
    when it does not exist."""
    log = LogFile(kind, kind, path)
    if not log.open():
        raise FileNotFoundError(path)
    try:
        yield from log.since(since_epoch)
    finally:
        log.close()


def tagged(source, groups):
    """(epoch, source, texts) of each group."""
    return ((epoch, source, texts) for epoch, texts in groups)


def merge(iterators):
    """(epoch, source, text) of every line of ``iterators`` (each of (epoch, source, texts), in time
    order), merged by time: equal times in the iterators' order, a group's lines together."""
    for epoch, source, texts in heapq.merge(*iterators, key=lambda group: group[0]):
        for text in texts:
            yield epoch, source, text


def follow(logs, out, width, interval=INTERVAL, rounds=None):
    """Print what ``logs`` get written, merged by time within each look, every ``interval`` seconds,
    until interrupted or ``out`` is closed by its reader (``rounds``: that many looks, for tests)."""
    while rounds is None or rounds > 0:
        for epoch, source, text in merge([tagged(log.source, log.poll()) for log in logs]):
            out.write(render(epoch, source, text, width))
        out.flush()
        if reader_gone(out):
            return
        if rounds is not None:
            rounds -= 1
        time.sleep(interval)


def reader_gone(out):
    """True when ``out`` is a pipe whose reader closed it (ssh gone), seen without writing to it."""
    try:
        poller = select.poll()
        poller.register(out.fileno(), 0)  # POLLERR and POLLHUP are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


# --- Which files -----------------------------------------------------------------------------------


def postgresql_logs(app, etc="/etc", log="/var/log"):
    """The cluster's log: its version from backup.json's postgresql_version, else every one there is."""
    try:
        version = json.loads(Path(etc, app, "backup.json").read_text())["postgresql_version"]
    except (OSError, ValueError, KeyError, TypeError):
        version = None
    if version:
        return [Path(log, "postgresql", f"postgresql-{version}-main.log")]
    found = Path(log, "postgresql").glob("postgresql-*-main.log")
    return sorted(found, key=lambda path: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", path.name)])


def log_files(source, app=NAME, etc="/etc", log="/var/log"):
    """[(source name, kind, path)] of SOURCE, in the order lines of the same time are printed.
    A glob that matches nothing is named by its pattern (then noted as missing)."""
    files = []
    if source in ("nginx", "all"):
        files += [("nginx", "nginx-access", Path(log, "nginx/access.log")),
                  ("nginx", "nginx-error", Path(log, "nginx/error.log"))]  # fmt: skip
    if source in ("app", "all"):
        pattern = re.compile(rf"^{re.escape(app)}-(\d+)\.log$")
        instances = [path for path in Path(log, app).glob(f"{app}-*.log") if pattern.match(path.name)]
        instances.sort(key=lambda path: int(pattern.match(path.name).group(1)))
        files += [(path.name.removesuffix(".log"), "app", path) for path in instances]
        if not instances:
            files.append((f"{app}-N", "app", Path(log, app, f"{app}-*.log")))
        files.append(("supervisor", "supervisor", Path(log, "supervisor/supervisord.log")))
    if source in ("postgresql", "all"):
        paths = postgresql_logs(app, etc, log) or [Path(log, "postgresql/postgresql-*-main.log")]
        files += [("postgresql", "postgresql", path) for path in paths]
    if source in ("release", "all"):
        files.append(("release", "release", Path(log, app, "releases.log")))
    return files


def note(message):
    """Print ``message`` to stderr, prefixed with the tool's name."""
    print(f"{NAME}-logs: {message}", file=sys.stderr, flush=True)


# --- Main ------------------------------------------------------------------------------------------


def positive(text):
    """``text`` as a whole number of at least 1 (argparse type)."""
    number = int(text)
    if number < 1:
        raise ValueError(text)
    return number


def interrupted(*_):
    """Signal handler: end as Ctrl-C would (quietly, exit 0)."""
    raise KeyboardInterrupt


def main(argv=None):
    """Parse the command line and print the logs asked for; the exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog=f"{NAME}-logs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False, usage="%(prog)s [SOURCE] [--since DURATION] [--follow] [--lines N]",
    )  # fmt: skip
    parser.add_argument("source", nargs="?", choices=SOURCES, default="all", metavar="SOURCE",
                        help="nginx, app, postgresql, release or all (default)")  # fmt: skip
    parser.add_argument("--since", type=duration, default="10m", metavar="DURATION",
                        help="the last DURATION: 30s, 10m (default), 2h, 1d")  # fmt: skip
    parser.add_argument("--follow", action="store_true", help="then print new lines as they come, until interrupted")
    parser.add_argument("--lines", type=positive, metavar="N", help="at most the last N lines of the window")
    opts = parser.parse_args(argv)
    if not require_root(f"{NAME}-logs"):
        return 2
    signal.signal(signal.SIGHUP, interrupted)  # ssh gone
    signal.signal(signal.SIGTERM, interrupted)
    try:
        return show(opts)
    except (KeyboardInterrupt, BrokenPipeError):
        # Quietly: no traceback, and no second error when Python flushes the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def show(opts):
    """Print the window of each log asked for, merged by time, then follow them with --follow."""
    logs = [LogFile(*entry) for entry in log_files(opts.source)]
    present = []
    for log in logs:
        try:
            if log.open():
                present.append(log)
            else:
                note(f"{log.path}: no such file, skipped")
        except OSError as error:
            note(f"{log.path}: {error.strerror}, skipped")
    if not present:
        note(f"no log file of {opts.source} on this server")
        return 1
    width = max(len(log.source) for log in logs)
    since = time.time() - opts.since
    try:
        lines = merge([tagged(log.source, log.since(since, partial=not opts.follow)) for log in present])
        if opts.lines:
            lines = collections.deque(lines, maxlen=opts.lines)
        out = sys.stdout
        for epoch, source, text in lines:
            out.write(render(epoch, source, text, width))
        out.flush()
        if opts.follow:
            # Files that were missing are looked for again; unreadable ones are left out.
            follow([log for log in logs if log in present or not log.path.exists()], out, width)
    except BrokenPipeError:
        raise
    except OSError as error:
        note(f"reading failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
