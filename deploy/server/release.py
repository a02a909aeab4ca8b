#!/usr/bin/python3 -I
"""Ship, roll back and list releases of the app on this server, with no failed request.

Installed by the deploy as /usr/local/sbin/<app>-release (root 0755); its settings are
in /etc/<app>/release.json (written by the deploy from deploy/settings.py; a fixed path,
no option names another). Runs as root and refuses to start otherwise: the git push hook
calls it through sudo (the deploy group may run deploy, rollback, list and a cluster release's
migrate, activate and discard, nothing else:
hardening/sudoers.d/deploy-group.j2), scripts/release and scripts/rollback through SSH.
Only the Python standard library and the tools' shared module (/usr/local/lib/<app>/server_common.py):
it runs before any virtualenv exists.

Pushed content never runs as root: <app>-build unpacks it, makes its virtualenv, installs
its requirements (an sdist runs code while it builds) and compresses its static files, each
step in a transient systemd service that ends every process the step left behind; <app>,
the app user, checks and migrates it. Root only seals a built release (root:<app>, writable
by root alone, once no process of <app>-build is left), switches ``current``, calls
supervisor and deletes old releases.

Releases are ordered by the release history (/var/log/<app>/releases.log), never by their
ids, whose times come from a clock (the server's, or a cluster's workstation's): list,
rollback and prune all go by it (History).

Commands:
  deploy --commit SHA [--ref REF] [--release ID] [--prepare]
        Build /srv/<app>/releases/<id> from a tar of the app's directory in its repository on
        standard input (``git archive COMMIT APP_ROOT``; the app_root setting, ``app`` for the
        sample app, none for an app at the top of its repository), check it, run its release
        command (the Procfile's release: line or release_command: migrations), switch
        /srv/<app>/current to it atomically, then roll the instances one at a time.
        <id> is UTC time + short commit, e.g. 20261121-101502-dcb3499; --release gives
        it (every app host of a cluster builds the same id).
        --prepare stops after the check: the release is kept, not migrated, not serving.
  migrate RELEASE
        Run a prepared release's release command (a cluster runs it once, on one app host).
  activate RELEASE
        Switch to a prepared release and roll the instances onto it, as deploy does.
  discard RELEASE
        Remove a kept release that is not current and that no instance runs.
  rollback [RELEASE]
        Switch back to RELEASE, or to the release that served before the current one (by
        the history), and roll the instances. The database schema is left as it is.
  restart
        Roll every instance onto the current release and its supervisor program
        config, one at a time (what provision runs when the program config changes).
  list  The kept releases, newest first by the history, the current one marked with "*",
        and the release a rollback goes to ("A rollback goes to: ID").
  rotate secret-key|database-password
        Replace a secret in /etc/<app>/<app>.env with no failed request (scripts/secrets).
        secret-key: two rolls of the instances, first with the new key accepted beside the
        old one, then signing with the new key and accepting the old one as a fallback
        (Flask's SECRET_KEY_FALLBACKS; sessions and forms from before keep working until the
        next rotation), so instances on either side of a roll accept each other's cookies.
        database-password: the app logs in as one of two login roles, <app> and <app>_b (the
        latter acts as <app>: SET role): the idle one gets a new password, the instances
        roll onto it, then the other one loses its password. No instance ever holds a
        password the server rejects.

Rolling one instance: close its socket to nginx (mode 0600: nginx's connect() fails
and it tries the next instance, before sending anything), wait until the socket's
listen queue is served, stop it (gunicorn finishes in-flight requests), apply its
supervisor program config, start it, and wait until its master runs the expected release
(its working directory), it answers health_path with 200 and its socket is open to nginx
again (the instance opens it itself once healthy: gunicorn.conf.py), health_timeout seconds.
The other instances serve meanwhile and nginx is never reloaded, so no request
reaches a stopping or unhealthy instance and no client connection is closed.

A failed step stops the command: a release that fails to build, check or migrate is
removed and never served; one that fails while rolling is rolled back on the instances
it reached and ``current`` is put back. When putting it back fails too, the instances not
yet put back stay on the new release, which is kept while any instance runs it, and the
message names what each instance runs. Exit status: 0 done; 1 a step failed (named on
stderr, with what serves); 2 bad usage or another release running.
"""

import argparse
import base64
import grp
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

NAME = Path(sys.argv[0]).name.removesuffix("-release") or "todo"
# The module the server tools share: in /usr/local/lib/<app> once installed, else beside this file.
HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, f"/usr/local/lib/{NAME}" if str(HERE) == "/usr/local/sbin" else str(HERE))
from server_common import (  # noqa: E402
    ENV_NAME,
    RELEASE_LOCK,
    NotRegularFile,
    open_text,
    parse_processes_conf,
    processes_conf_path,
    read_env_file,
    read_regular,
    read_settings,
    require_root,
    take_lock,
    unix_get,
    write_atomically,
)

RELEASE_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{7,40}$")
#: gunicorn settings the stack sets itself (deploy/server/gunicorn.conf.py): a Procfile's are dropped.
GUNICORN_STACK_OWNED = frozenset({
    "bind", "workers", "config", "daemon", "pidfile", "chdir", "umask", "user", "group", "worker_tmp_dir",
    "control_socket", "proc_name", "accesslog", "errorlog", "loglevel", "logconfig", "logger_class",
    "access_log_format", "capture_output", "check_config", "print_config", "reload", "reuse_port",
})  # fmt: skip
#: A Procfile line (Heroku: "<process type>: <command>"; a type is letters, digits, _ and -).
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.*?)\s*$")
#: Shell syntax that makes a web: line more than one plain gunicorn command.
SHELL_SYNTAX = re.compile(r"[;&|<>`]|\$\(")


def parse_procfile(text):
    """{process type: command} from a Procfile's text (Heroku's format; blank and # lines skipped).
    StepFailed("build") for a line that is not ``TYPE: COMMAND`` or a type given twice."""
    found = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if not match or not match.group(2):
            raise StepFailed("build", f"Procfile line {n}: {line.strip()[:80]!r} is not 'TYPE: COMMAND'")
        if match.group(1) in found:
            raise StepFailed("build", f"Procfile line {n}: process type {match.group(1)} is given twice")
        found[match.group(1)] = match.group(2)
    return found


def web_argv(line):
    """The argv of a Procfile web: line, which must be one plain gunicorn command (its options and
    WSGI app); StepFailed("build") says why it is not, and what to set instead."""
    try:
        argv = shlex.split(line)
    except ValueError as error:
        raise StepFailed("build", f"Procfile web: {line!r}: {error}") from None
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if not argv or Path(argv[0]).name != "gunicorn" or SHELL_SYNTAX.search(line):
        raise StepFailed("build", f"Procfile web: {line!r} is not a plain gunicorn command (gunicorn [OPTIONS] "
                                  "MODULE:APP): the stack runs gunicorn itself; set wsgi_app, and put other "
                                  "steps in a release: line (migrations) or a process type of their own")  # fmt: skip
    return argv


def requirements_without_hashes(text):
    """The requirements in a requirements.txt's text that have no --hash (pip's hash-checking mode
    needs one on every requirement); continuation lines joined, comments and options skipped."""
    joined = re.sub(r"\\\n", " ", text)
    missing = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line and not line.startswith("-") and "--hash=" not in line:
            missing.append(line.split()[0])
    return missing


class StepFailed(Exception):
    """A release step failed; ``step`` names it, the message says why, and ``release`` is the
    release it was making or activating once known (for the history), else None."""

    def __init__(self, step, reason):
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason
        self.release = None


class Clock:
    """Prints progress lines with the seconds since the command started."""

    def __init__(self):
        self.started = time.monotonic()

    def elapsed(self):
        """Seconds since the command started."""
        return time.monotonic() - self.started

    def say(self, message):
        """Print a progress line; a pusher who went away (broken pipe) must not stop the release."""
        try:
            print(f"[{self.elapsed():6.1f}s] {message}", flush=True)
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def run(
    cmd,
    step,
    *,
    user=None,
    group=None,
    isolate=False,
    cwd=None,
    env=None,
    stdin=None,
    input=None,  # noqa: A002
    quiet=False,
):
    """Run ``cmd`` (a list) and return its output when ``quiet`` (else ""); raise StepFailed(step)
    with the tail of its output when it exits non-zero.

    ``user``: run as that user (runuser), ``group`` as its group. ``isolate`` (with ``user``): in a
    transient systemd service of its own instead (in_unit), which ends every process ``cmd``
    leaves behind; ``cwd`` and ``env`` then go to the unit, and ``env`` is all of its environment
    beyond what systemd gives ``user`` (nothing of root's). ``quiet``: capture the output, shown
    only in the StepFailed.
    """
    argv = cmd
    if isolate:
        argv, cwd, env = in_unit(cmd, user=user, group=group, cwd=cwd, env=env), None, None
    elif user:
        argv = ["runuser", "-u", user, *(["-g", group] if group else []), "--", *cmd]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        input=input,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout or "").strip().splitlines()[-15:])
        who = f" as {user}" if user else ""
        raise StepFailed(step, f"`{' '.join(cmd)}`{who} exited {proc.returncode}" + (f"\n{tail}" if tail else ""))
    return proc.stdout or ""


def in_unit(cmd, *, user, group=None, cwd=None, env=None):
    """The systemd-run command line that runs ``cmd`` as ``user`` (group ``group``, default the
    user's) in ``cwd``, in a transient service of its own, and waits until that unit is gone.

    Its standard input, output and error are the caller's (--pipe), its exit status is ``cmd``'s
    (--wait). Once ``cmd`` exits, systemd kills every process left in the unit's cgroup at once
    (KillMode=control-group, KillSignal=SIGKILL; an unprivileged process cannot move itself out of
    it), so when systemd-run returns nothing ``cmd`` started runs any more: an sdist runs code
    while it builds, and a process it left behind could rewrite the release after its check.
    The environment is what systemd gives ``user`` (HOME, PATH, ...) and ``env``; nothing gains
    privileges through a set-user-id program (NoNewPrivileges). Needs the D-Bus system bus
    (--wait): Debian's dbus. https://www.freedesktop.org/software/systemd/man/systemd-run.html
    """
    properties = {
        "User": user, "Group": group or user, "WorkingDirectory": cwd, "UMask": "0022",
        "KillMode": "control-group", "KillSignal": "SIGKILL", "NoNewPrivileges": "yes",
    }  # fmt: skip
    return [
        "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
        f"--description={user}: {' '.join(cmd)[:100]}",
        *(f"--property={key}={value}" for key, value in properties.items() if value),
        *(f"--setenv={key}={value}" for key, value in (env or {}).items()),
        "--", *cmd,
    ]  # fmt: skip


def processes_of(uid):
    """PIDs of the live processes (zombies aside) whose real, effective, saved or filesystem user id
    is ``uid``, read from /proc."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if not fields.get("State", "").strip().startswith("Z") and str(uid) in fields.get("Uid", "").split():
            pids.append(int(entry.name))
    return pids


def seal(path, gid, builder):
    """Make the tree at ``path`` root's, group ``gid``, and writable by root alone: no write bit for
    group or others and no set-id or sticky bit (a POSIX ACL's entries lose write with the group
    bits, which are its mask), so its builder (uid ``builder``) can neither write it nor chmod it back.
    Entries already root's are sealed again as they are (a seal that stopped half-way, or a second one).

    Call it only once no process of the builder is left: one alive meanwhile could swap an entry
    or keep a file open for writing. Even so the walk never follows a symlink: os.fwalk opens each
    directory relative to its parent's descriptor and never descends into a symlink; a directory
    changes through its descriptor, any other entry through the no-follow calls (a symlink gets
    its own owner; it has no mode). Raises StepFailed("build") for an entry neither the builder's nor
    root's, or a file of the builder's with another link (a hard link to another's file, or one the
    builder keeps elsewhere, would carry the change there); OSError as it comes.
    """
    strip = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH

    def refuse(where, info):
        raise StepFailed("build", f"{where} is neither the build user's nor root's (uid {info.st_uid}), or a "
                                  f"file of the build user's with {info.st_nlink} links: not sealing it")  # fmt: skip

    for top, dirs, files, dirfd in os.fwalk(path, follow_symlinks=False):
        info = os.fstat(dirfd)
        if info.st_uid not in (builder, 0):
            refuse(top, info)
        os.fchown(dirfd, 0, gid)
        os.fchmod(dirfd, stat.S_IMODE(info.st_mode) & ~strip)
        for name in [*dirs, *files]:  # dirs: symlinks to directories too (os.fwalk does not enter them)
            info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                continue  # sealed through its own descriptor when the walk enters it
            if info.st_uid not in (builder, 0) or (info.st_uid == builder and info.st_nlink > 1):
                refuse(f"{top}/{name}", info)
            os.chown(name, 0, gid, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(name, stat.S_IMODE(info.st_mode) & ~strip, dir_fd=dirfd, follow_symlinks=False)


class History:
    """The release history: one JSON line per command (/var/log/<app>/releases.log, and the copies
    logrotate keeps beside it), and the order of releases it tells.

    A release id names a time, but a clock's: the workstation's on a cluster, the server's on one
    host, and two operators' clocks may disagree. So releases are ordered by what happened to
    them here, never by their ids.
    """

    #: Actions that make a release (its place in the order is its first entry with one of them).
    MAKES = ("deploy", "prepare", "activate")
    #: Actions after which the release they name serves, when their outcome is ok.
    SERVES = ("deploy", "activate", "rollback")

    def __init__(self, path, clock):
        self.path = path
        self.clock = clock

    def record(self, action, release, outcome, **extra):
        """Append one JSON line: time, ``action``, ``release``, ``outcome``, seconds since the start,
        the user who ran it, and ``extra``."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "action": action,
            "release": release,
            "outcome": outcome,
            "seconds": round(self.clock.elapsed(), 1),
            "by": os.environ.get("SUDO_USER") or os.environ.get("USER") or "root",
            **extra,
        }
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def exists(self):
        """True when the history has been written."""
        return self.path.exists()

    def entries(self):
        """Every entry (a dict), oldest first: logrotate's copies (releases.log.N and .N.gz, the
        highest N the oldest), then the live file. A line that is not a JSON object is skipped."""
        copies = []
        for copy in self.path.parent.glob(f"{self.path.name}.*"):
            if number := re.fullmatch(rf"{re.escape(self.path.name)}\.(\d+)(\.gz)?", copy.name):
                copies.append((int(number.group(1)), copy))
        found = []
        for path in [*(copy for _, copy in sorted(copies, reverse=True)), self.path]:
            try:
                with open_text(path) as log:
                    lines = log.read().splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def made(self):
        """{release: the index of its first entry that made it (deploy, prepare or activate, whatever
        the outcome)}: the order in which releases came to this host."""
        first = {}
        for n, entry in enumerate(self.entries()):
            if entry.get("action") in self.MAKES and isinstance(entry.get("release"), str):
                first.setdefault(entry["release"], n)
        return first

    def served(self):
        """The releases that served, oldest first, as a rollback walks back through them.

        A deploy or activation that went well puts its release on top. A rollback that went well
        goes back down to its release when the line holds it (the releases above it were rolled
        back from: a later rollback does not return to them), else puts it on top. A failed
        command changes nothing: what it tried never served (or was put back).
        """
        line = []
        for entry in self.entries():
            release, action = entry.get("release"), entry.get("action")
            if entry.get("outcome") != "ok" or action not in self.SERVES or not isinstance(release, str):
                continue
            if action == "rollback" and release in line:
                del line[len(line) - line[::-1].index(release) :]
            elif not line or line[-1] != release:
                line.append(release)
        return line


class Supervisor:
    """The app's programs under supervisor (its instances, <app>-<n>, and its process types'
    programs): control them, read which release each runs, and read the end of each one's log."""

    def __init__(self, *, app, instances, releases_dir):
        self.app = app
        self.instances = instances
        self.releases_dir = releases_dir

    def running(self, programs=None):
        """{program: the release it runs, or None when it is not running}, for ``programs`` (default:
        the instances).

        Read from the process, not from ``current`` (which may have moved since it started):
        supervisor's PID for the program, and that process's working directory, its release
        (launch.py chdirs there; `` (deleted)`` when it is gone); a working directory elsewhere is
        given whole.
        """
        found = {}
        for instance in self.instances if programs is None else programs:
            try:
                pid = subprocess.run(["supervisorctl", "pid", instance], capture_output=True, text=True).stdout.strip()
            except OSError:  # no supervisor (yet): nothing runs
                pid = ""
            release = None
            if pid.isdigit() and int(pid) > 0:
                try:
                    cwd = Path(os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)"))
                    release = cwd.name if cwd.parent == self.releases_dir else str(cwd)
                except OSError:  # it ended meanwhile
                    pass
            found[instance] = release
        return found

    def log_tail(self, program, lines=20):
        """The last ``lines`` lines of a program's log (/var/log/<app>/<program>.log), indented, or ""."""
        try:
            with open(f"/var/log/{self.app}/{program}.log", "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 16384))
                tail = log.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n  last lines of /var/log/{self.app}/{program}.log:\n" + "\n".join(f"    {x}" for x in tail)

    def supervisorctl(self, *args, step):
        """Run ``supervisorctl ARGS`` and return its output; StepFailed(step) when it fails, unless it only
        says the program was already in the state asked for (or is not loaded yet)."""
        out = subprocess.run(["supervisorctl", *args], capture_output=True, text=True, check=False)
        text = (out.stdout + out.stderr).strip()
        benign = ("already started", "not running", "no such process")  # stop before the first start
        if out.returncode != 0 and not any(phrase in text for phrase in benign):
            raise StepFailed(step, f"supervisorctl {' '.join(args)}: {text}")
        return text


class Releases:
    """The releases on disk (/srv/<app>/releases/<id>), the ``current`` and ``previous`` links to them,
    their seal (root's once built) and their removal; their order is the history's (History)."""

    def __init__(self, *, app, build_user, directory, current_link, previous_link, keep, history, supervisor, clock):
        self.app = app
        self.build_user = build_user
        self.dir = directory
        self.current_link = current_link
        self.previous_link = previous_link
        self.keep = keep
        self.history = history
        self.supervisor = supervisor
        self.clock = clock

    def current(self):
        """The current release id, or None before the first release."""
        try:
            return Path(os.readlink(self.current_link)).name
        except FileNotFoundError:
            return None

    def kept(self):
        """Built release ids, by name (see ordered() for their order)."""
        if not self.dir.is_dir():
            return []
        return sorted(
            p.name for p in self.dir.iterdir() if RELEASE_ID.match(p.name) and (p / ".release.json").is_file()
        )

    def ordered(self):
        """Kept release ids, oldest first by the history: by where each was first made here (deploy,
        prepare, activate). Releases the history does not name (an older server's, made before it
        kept one, or older than its oldest copy) come first, by name: their ids are all there is."""
        made = self.history.made()
        return sorted(self.kept(), key=lambda release: (release in made, made.get(release, 0), release))

    def rollback_target(self):
        """The kept release a rollback goes to, or None: the one that served before the current one.

        Walks the history's line of served releases (History.served) down from its top, the current
        release (when the top is another one, the current one's switch is not written yet: prune
        runs before its command's entry; or ``current`` was moved by hand), skipping releases no
        longer kept; releases that were made but never served (a failed or prepared one) are not
        on it. When the line holds none, the releases the history does not name (an older
        server's) that come before the current one in ordered(): the newest of them.
        """
        current, kept, line = self.current(), set(self.kept()), self.history.served()
        if line and line[-1] == current:
            line = line[:-1]
        for release in reversed(line):
            if release in kept and release != current:
                return release
        order, made = self.ordered(), self.history.made()
        older = order[: order.index(current)] if current in order else order
        unnamed = [release for release in older if release not in made]
        return unnamed[-1] if unnamed else None

    def metadata(self, release):
        """The release's .release.json; never through a symlink (the build user wrote it)."""
        fd = os.open(self.dir / release / ".release.json", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as meta:
            return json.loads(meta.read())

    def remove(self, release, step):
        """Delete the kept release ``release`` unless an instance runs it, and say which, as ``step``;
        return the instances that run it (none: it was deleted, or could not be, which is said)."""
        users = [instance for instance, running in self.supervisor.running().items() if running == release]
        if users:
            self.clock.say(f"{step}: kept {release}: {', '.join(users)} still run{'s' if len(users) == 1 else ''} it")
            return users
        try:
            shutil.rmtree(self.dir / release)
            self.clock.say(f"{step}: removed {release}")
        except FileNotFoundError:
            pass
        except OSError as error:
            self.clock.say(f"{step}: could not remove {release}: {error}")
        return []

    def prune(self):
        """Keep ``keep_releases`` releases: the current one, the one a rollback goes to, and the
        newest others by the history (ordered()); delete the rest, but never one an instance runs."""
        order = self.ordered()
        keep = [release for release in dict.fromkeys((self.current(), self.rollback_target())) if release]
        for release in reversed(order):
            if len(keep) >= self.keep:
                break
            if release not in keep:
                keep.append(release)
        for release in order:
            if release not in keep:
                self.remove(release, "prune")

    def switch(self, release):
        """Point ``current`` at ``release`` with one atomic rename; a release still the build user's is
        sealed first (seal_kept): nothing serves code the build user can change."""
        self.seal_kept()
        self.clock.say(f"switch: current -> releases/{release}")
        before = self.current()
        # previous: the release that served before, whose static files nginx still serves to the pages
        # it rendered while the instances roll (nginx tries current's, then previous's).
        if before and before != release:
            point(self.previous_link, f"releases/{before}")
        point(self.current_link, f"releases/{release}")

    def end_builder(self):
        """Make sure no process of the build user runs. Each build step's unit ended what the step
        left, so a process found here got out another way (a job it queued with a scheduler, say):
        every process of the user is killed at once (kill(-1, SIGKILL) as the user, so nothing it
        forks meanwhile survives). StepFailed("build") when some still run after 5 s."""
        uid = pwd.getpwnam(self.build_user).pw_uid
        pids = processes_of(uid)
        if not pids:
            return
        self.clock.say(f"build: killing {len(pids)} process(es) of {self.build_user} left behind: {pids[:10]}")
        deadline = time.monotonic() + 5
        while pids:
            if time.monotonic() > deadline:
                raise StepFailed("build", f"processes of {self.build_user} outlived the build and do not end: {pids}")
            kill_all = [sys.executable, "-I", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"]
            subprocess.run(["runuser", "-u", self.build_user, "--", *kill_all], capture_output=True, check=False)
            time.sleep(0.1)
            pids = processes_of(uid)

    def seal(self, path):
        """Make the built release at ``path`` root:<app> and writable by root alone (seal()), so the
        build user can no longer change it; prune and discard (root) still delete it."""
        self.clock.say(f"seal: {path.name} (root:{self.app}, writable by root alone)")
        try:
            seal(path, grp.getgrnam(self.app).gr_gid, pwd.getpwnam(self.build_user).pw_uid)
        except OSError as error:
            raise StepFailed("seal", f"sealing {path}: {error}") from error

    def unsealed(self):
        """Kept releases the build user still owns (built by a release tool from before sealing, or
        killed between its build and its seal)."""
        builder = pwd.getpwnam(self.build_user).pw_uid
        return [release for release in self.kept() if (self.dir / release).lstat().st_uid == builder]

    def seal_kept(self):
        """Seal every kept release the build user still owns, once no process of its is left."""
        if unsealed := self.unsealed():
            self.end_builder()
            for release in unsealed:
                self.seal(self.dir / release)
            self.end_builder()


class Build:
    """A release made from the pushed tree, as the build user: unpacked, read (how it runs: the
    settings, its Procfile, Flask's conventions), its virtualenv and dependencies, its static files
    compressed, sealed (Releases.seal) and linked to its shared directories; then checked and its
    release command run as the app user."""

    def __init__(
        self, *, app, build_user, lib, shared, pip_cache, app_root, wsgi_app, release_command, process_settings,
        static_folder, shared_dirs, releases, clock,
    ):  # fmt: skip
        self.app = app
        self.build_user = build_user
        self.lib = lib
        self.shared = shared
        self.pip_cache = pip_cache
        self.app_root = app_root
        self.wsgi_app = wsgi_app
        self.release_command = release_command
        self.process_settings = process_settings
        self.static_folder = static_folder
        self.shared_dirs = shared_dirs
        self.releases = releases
        self.clock = clock

    def make(self, commit, ref, release=None):
        """Unpack the app from standard input, read how it runs (Procfile, settings: app_of()), make its
        virtualenv and install its dependencies (install()), gzip and brotli its static files, all as
        the build user, each step in a unit of its own (in_unit) that ends every process it left;
        then make the release root's (Releases.seal) and link its shared directories (link_shared). Return the
        release id: ``release`` when given (every app host of a cluster builds the same one, so its
        static URLs resolve on each), else UTC now + the short commit. StepFailed("build") when a
        step fails; the half-built release is removed."""
        stamp = datetime.now(UTC)
        release = release or f"{stamp:%Y%m%d-%H%M%S}-{commit[:7]}"
        path = self.releases.dir / release
        if path.exists():
            raise StepFailed("build", f"{path} exists already (one release per commit per second)")
        self.clock.say(f"build: {release} from {commit[:12]} ({ref}), as {self.build_user}")
        # In releases/, which is root's: the build user may fill this directory, never swap it.
        path.mkdir(mode=0o755)
        shutil.chown(path, self.build_user, self.build_user)

        def as_builder(cmd, **kwargs):
            if "input" not in kwargs:  # only the unpacking reads the archive
                kwargs.setdefault("stdin", subprocess.DEVNULL)
            return run(cmd, "build", user=self.build_user, isolate=True, cwd=path, **kwargs)

        try:
            # The archive holds app_root (git archive COMMIT APP_ROOT): its own path is stripped.
            depth = len(Path(self.app_root).parts)
            unpack = ["tar", "-x", f"--strip-components={depth}", "--no-same-owner", "--no-same-permissions",
                      "-C", str(path)]  # fmt: skip
            as_builder(unpack, stdin=sys.stdin.buffer)
            if not any(path.iterdir()):
                raise StepFailed("build", f"the archive has nothing under app_root {self.app_root!r}")
            app = self.app_of(path)
            self.install(path, as_builder)
            app["web"] = self.web_of(path, app.pop("web_line"), as_builder)
            if app["static_folder"]:
                texts = ["find", app["static_folder"], "-type", "f", "(", "-name", "*.css", "-o", "-name", "*.js",
                         "-o", "-name", "*.svg", "-o", "-name", "*.txt", "-o", "-name", "*.html", "-o", "-name",
                         "*.json", "-o", "-name", "*.map", ")", "-exec"]  # fmt: skip
                as_builder([*texts, "gzip", "-9", "-k", "-n", "-f", "{}", "+"])
                if shutil.which("brotli"):  # nginx's brotli_static serves these .br copies
                    as_builder([*texts, "brotli", "-q", "11", "-k", "-f", "{}", "+"])
            meta = {"release": release, "commit": commit, "ref": ref, "built_at": stamp.isoformat(timespec="seconds"),
                    **app}  # fmt: skip
            as_builder(["sh", "-c", "umask 022 && cat > .release.json"], input=json.dumps(meta, indent=1) + "\n")
            # Root takes the tree only with no process of the build user left to race it, and ends
            # any that started meanwhile: one could hold a file it opened before its seal.
            self.releases.end_builder()
            self.releases.seal(path)
            self.releases.end_builder()
            self.link_shared(path, app["static_folder"])
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return release

    def read_app_file(self, path, name, limit=1 << 20):
        """The text of the release's file ``name`` (the build user wrote it: never through a symlink,
        at most ``limit`` bytes: read_regular), or None when there is none."""
        try:
            return read_regular(path / name, limit)
        except NotRegularFile:
            raise StepFailed("build", f"{name} is not a regular file") from None
        except OSError as error:
            raise StepFailed("build", f"{name}: {error.strerror} (a symlink is not read)") from error

    def app_of(self, path):
        """How the app in ``path`` runs: {"web_line", "release_command", "processes", "static_folder",
        "shared_dirs"}, from the settings, then its Procfile (Heroku's format: ``TYPE: COMMAND`` lines),
        then Flask's conventions (wsgi.py or app.py holding ``app``). StepFailed("build") names what
        was looked for when no WSGI entry point is found."""
        procfile = parse_procfile(self.read_app_file(path, "Procfile") or "")
        if self.wsgi_app:
            web = ["gunicorn", self.wsgi_app]
        elif "web" in procfile:
            web = web_argv(procfile["web"])
        else:
            found = [name for name in ("wsgi.py", "app.py") if (path / name).is_file()]
            if not found:
                raise StepFailed("build", f"no WSGI entry point: looked for the wsgi_app setting, a web: line in "
                                          f"{self.app_root or '.'}/Procfile, then wsgi.py and app.py (Flask's "
                                          "conventions); set wsgi_app (module:app)")  # fmt: skip
            web = ["gunicorn", f"{found[0].removesuffix('.py')}:app"]
        processes = {kind: line for kind, line in procfile.items() if kind not in ("web", "release")}
        for kind, spec in self.process_settings.items():
            if spec.get("command"):
                processes[kind] = spec["command"]
        release_command = self.release_command or procfile.get("release")
        static = self.static_folder
        if static is None:  # Flask's default: static/ beside the app's package (or module)
            wsgi = next((a for a in web[1:] if not a.startswith("-") and ":" in a), web[-1])
            package = wsgi.split(":")[0].split(".")[0]
            static = next((d for d in (f"{package}/static", "static") if (path / d).is_dir()
                           and not (path / d).is_symlink()), "")  # fmt: skip
        self.clock.say(f"build: web: {shlex.join(web)}; release: {release_command or '-'}; "
                       f"other processes: {', '.join(processes) or 'none'}; static: {static or 'none'}")  # fmt: skip
        return {"web_line": web, "release_command": release_command, "processes": processes,
                "static_folder": static, "shared_dirs": list(self.shared_dirs)}  # fmt: skip

    def install(self, path, as_builder):
        """Make the release's virtualenv (Debian's Python 3.11) and install the app's dependencies:
        requirements.txt (hash-checked when every requirement has a hash, else as pinned, with a
        warning), else the project itself (pyproject.toml or setup.py: pip install .); then gunicorn
        (deploy/server/gunicorn-requirements.txt, hash-checked) when the app does not bring it."""
        as_builder(["python3", "-m", "venv", str(path / "venv")], quiet=True)
        # Absolute: systemd resolves a unit's command before it changes to its working directory.
        pip = [str(path / "venv/bin/pip"), "install", "--quiet", "--disable-pip-version-check", "--no-input"]
        env = {"PIP_CACHE_DIR": str(self.pip_cache), "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
               "HOME": str(self.pip_cache.parent)}  # fmt: skip
        # Wheels pip built from sdists are cached under a key the build user could forge: a build's
        # code could plant one for a later build. Downloads stay cached (hash-checked where hashed).
        as_builder(["rm", "-rf", "--", str(self.pip_cache / "wheels")])
        requirements = self.read_app_file(path, "requirements.txt")
        if requirements is not None:
            unhashed = requirements_without_hashes(requirements)
            if unhashed:
                named = ", ".join(unhashed[:5]) + (", ..." if len(unhashed) > 5 else "")
                self.clock.say(f"build: WARNING: requirements.txt: {len(unhashed)} requirement(s) without --hash "
                               f"({named}): installed as pinned, not hash-checked (pip-compile --generate-hashes "
                               "makes a hashed file)")  # fmt: skip
                as_builder([*pip, "-r", "requirements.txt"], env=env, quiet=True)
            else:
                self.clock.say("build: installing hash-checked requirements (requirements.txt)")
                as_builder([*pip, "--no-deps", "--require-hashes", "-r", "requirements.txt"], env=env, quiet=True)
        elif (path / "pyproject.toml").is_file() or (path / "setup.py").is_file():
            self.clock.say("build: installing the project (pip install .: pyproject.toml or setup.py)")
            as_builder([*pip, "."], env=env, quiet=True)
        else:
            raise StepFailed("build", f"no dependencies: {self.app_root or '.'} has no requirements.txt, "
                                      "pyproject.toml or setup.py")  # fmt: skip
        if not (path / "venv/bin/gunicorn").exists():
            self.clock.say("build: the app does not require gunicorn: installing the stack's (hash-checked)")
            as_builder([*pip, "--no-deps", "--require-hashes", "-r", str(self.lib / "gunicorn-requirements.txt")],
                       env=env, quiet=True)  # fmt: skip

    def web_of(self, path, web, as_builder):
        """{"wsgi_app", "options", "ignored"} of the web process: gunicorn's own parser (the release's
        gunicorn) reads ``web`` (an argv); the options the stack sets itself are dropped and named."""
        script = ("import json, sys\nfrom gunicorn.config import Config\n"
                  "ns = Config().parser().parse_args(sys.argv[1:])\n"
                  "print(json.dumps({k: v for k, v in vars(ns).items() if v is not None}))")  # fmt: skip
        try:
            out = as_builder([str(path / "venv/bin/python"), "-I", "-c", script, *web[1:]], quiet=True)
            options = json.loads(out.strip().splitlines()[-1])
        except (StepFailed, ValueError, IndexError) as error:
            raise StepFailed("build", f"web: {shlex.join(web)}: gunicorn does not take these arguments: "
                                      f"{getattr(error, 'reason', error)}") from None  # fmt: skip
        positional = options.pop("args", None) or []
        wsgi_app = options.pop("wsgi_app", None) or (positional[0] if positional else None)
        if not wsgi_app:
            raise StepFailed("build", f"web: {shlex.join(web)} names no WSGI app (module:app); set wsgi_app")
        ignored = sorted(key for key in options if key in GUNICORN_STACK_OWNED)
        for key in ignored:
            del options[key]
        if unexpanded := [f"--{k}={v}" for k, v in options.items() if "$" in str(v)]:
            raise StepFailed("build", f"web: {', '.join(unexpanded)}: a shell variable is not expanded in the web "
                                      "line (only bind and workers, which the stack sets, may use one)")  # fmt: skip
        if ignored:
            self.clock.say(f"build: web: the stack sets {', '.join(ignored)} itself: the Procfile's are ignored")
        return {"wsgi_app": wsgi_app, "options": options, "ignored": ignored}

    def link_shared(self, path, static_folder):
        """In the sealed release at ``path``: link each of shared_dirs to /var/lib/<app>/shared/<dir>
        (the app user's, kept across releases; whatever the release holds there is replaced), and
        .static to the static folder (nginx serves static files from <release>/.static)."""
        for rel in self.shared_dirs:
            target = self.shared / rel
            parent = self.shared
            for part in Path(rel).parts[:-1]:  # root's directories above it, the last one the app user's
                parent = parent / part
                parent.mkdir(mode=0o755, exist_ok=True)
            if not target.is_dir() or target.is_symlink():
                target.mkdir(mode=0o750)
                shutil.chown(target, self.app, self.app)
            inside = path
            for part in Path(rel).parts[:-1]:
                inside = inside / part
                if inside.is_symlink() or (inside.exists() and not inside.is_dir()):
                    raise StepFailed("build", f"shared_dirs {rel}: {inside} is not a directory")
                inside.mkdir(mode=0o755, exist_ok=True)
            link = path / rel
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.symlink_to(target)
            os.lchown(link, 0, grp.getgrnam(self.app).gr_gid)
            self.clock.say(f"build: shared: {rel} -> {target}")
        if static_folder:
            real = (path / static_folder).resolve()
            if not real.is_relative_to(path) or not real.is_dir():
                raise StepFailed("build", f"static_folder {static_folder!r} is not a directory inside the release")
            (path / ".static").symlink_to(static_folder)
            os.lchown(path / ".static", 0, grp.getgrnam(self.app).gr_gid)

    def launch(self, release, *cmd):
        """The command line that runs ``cmd`` in ``release``'s directory and environment (launch.py)."""
        return [str(self.lib / "launch"), "--release", release, "--", *cmd]

    def check(self, release):
        """Import the app and validate gunicorn's config as the app user, as an instance would."""
        self.clock.say("check: gunicorn --check-config (imports the app, validates settings)")
        run(
            self.launch(release, "gunicorn", "--check-config", "--config", str(self.lib / "gunicorn.conf.py")),
            "check",
            user=self.app,
            env={"SUPERVISOR_PROCESS_NAME": f"{self.app}-check"},
            quiet=True,
        )

    def migrate(self, release):
        """Run the release's release command (the Procfile's release: line or the release_command
        setting: migrations, say) once, as the app user, in the release's environment; its output
        is shown. StepFailed("release command") when it fails: nothing has switched."""
        command = self.releases.metadata(release).get("release_command")
        if not command:
            self.clock.say("release command: none (no release: line in the Procfile, no release_command)")
            return
        self.clock.say(f"release command: {command}")
        run(self.launch(release, "/bin/bash", "-c", command), "release command", user=self.app,
            stdin=subprocess.DEVNULL)  # fmt: skip


#: One supervisor program of a process type (launch.py runs its command); as the instances' programs.
PROCESS_PROGRAM = """
[program:{program}]
command={lib}/launch --process {kind}
directory={srv}
user={app}
environment=HOME="{srv}"
autostart=true
autorestart=true
startsecs=3
startretries=3
stopsignal=TERM
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/var/log/{app}/{program}.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
"""


class Processes:
    """The app's processes on the current release: its instances (the web process, <app>-<n>, each
    behind its own socket to nginx) and its other process types (<app>-<type>-<n>, PROCESS_PROGRAM),
    rolled onto a release one at a time with no failed request, and put back when a roll fails."""

    def __init__(
        self, *, app, instances, srv, lib, run_dir, processes_conf, process_settings, health_path, health_timeout,
        drain_timeout, supervisor, releases, clock,
    ):  # fmt: skip
        self.app = app
        self.instances = instances
        self.srv = srv
        self.lib = lib
        self.run_dir = run_dir
        self.processes_conf = processes_conf
        self.process_settings = process_settings
        self.health_path = health_path
        self.health_timeout = health_timeout
        self.drain_timeout = drain_timeout
        self.supervisor = supervisor
        self.releases = releases
        self.clock = clock

    def close(self, instance):
        """Take ``instance`` out of nginx's rotation without a reload; wait until its queue is served.

        The socket goes to mode 0600: nginx's connect() is refused (EACCES) and nginx passes
        the request to the next instance, before anything was sent, so even a POST is safe.
        Connections already queued on the socket are still accepted and served by its workers:
        wait (drain_timeout seconds) until the listen queue (ss Recv-Q) stays empty.
        """
        sock = self.run_dir / f"{instance}.sock"
        if not sock.exists():
            return  # not running: nothing to drain
        # As the app user, who owns the socket and its directory: root never follows a path there.
        subprocess.run(["runuser", "-u", self.app, "--", "chmod", "0600", str(sock)], check=False)
        deadline, empty = time.monotonic() + self.drain_timeout, 0
        while empty < 3 and time.monotonic() < deadline:
            listing = subprocess.run(["ss", "-xlH"], capture_output=True, text=True, check=False).stdout
            queued = [int(f[2]) for f in (line.split() for line in listing.splitlines()) if str(sock) in f]
            empty = empty + 1 if sum(queued) == 0 else 0
            time.sleep(0.05)

    def is_open(self, instance):
        """True when nginx's group may connect to the instance's socket (gunicorn.conf.py opens it once healthy)."""
        try:
            return (os.stat(self.run_dir / f"{instance}.sock").st_mode & 0o777) == 0o660
        except FileNotFoundError:
            return False

    def healthy(self, instance, release):
        """Wait until ``instance`` runs ``release`` (its master's working directory: Supervisor.running),
        answers health_path with 200 and its socket is open to nginx (health_timeout seconds); else
        StepFailed("health check") with the last lines of the instance's log (the app's traceback)."""
        sock = str(self.run_dir / f"{instance}.sock")
        deadline, last = time.monotonic() + self.health_timeout, "no answer"
        while time.monotonic() < deadline:
            try:
                runs = self.supervisor.running([instance])[instance]
                if runs != release:
                    last = f"its master runs {runs}, not {release}" if runs else "it is not running"
                else:
                    status, body = unix_get(sock, self.health_path)
                    if status != 200:
                        last = f"{self.health_path} answered {status}: {body[:200]}"
                    elif not self.is_open(instance):
                        last = f"{sock} is healthy but not open to nginx yet"
                    else:
                        return
            except Exception as exc:  # noqa: BLE001 (any answer but a healthy one is "not yet": a bad
                # status line must not escape the roll's recovery)
                last = f"{sock}: {exc!r}"
            time.sleep(0.2)
        raise StepFailed("health check", f"{instance} not healthy after {self.health_timeout:.0f} s: {last}"
                                         f"{self.supervisor.log_tail(instance)}")  # fmt: skip

    def roll_instance(self, instance, release):
        """Restart one instance onto the current release; nginx sends it nothing until it is healthy."""
        note = " (the only instance: a brief outage)" if len(self.instances) == 1 else ""
        self.clock.say(f"roll: {instance}: closed to nginx, draining{note}")
        self.close(instance)
        self.supervisor.supervisorctl("stop", instance, step="stop")
        self.supervisor.supervisorctl("update", instance, step="start")
        self.supervisor.supervisorctl("start", instance, step="start")
        self.healthy(instance, release)
        self.clock.say(f"roll: {instance}: healthy on {release}, open to nginx")

    def roll(self, release, previous):
        """Roll every instance onto ``release``, one at a time, then its other process types
        (roll_processes); raise StepFailed when one fails.

        On a failure ``previous`` goes back: ``current`` first, then the instances the roll
        reached, the failed one first (it serves nothing now), then the process types. When
        putting it back fails too, stop there: the instances not yet put back keep running
        ``release``, healthy, rather than meet the same failure, and the StepFailed says so. No
        ``previous`` (a first release): raise at once.
        """
        reached = []
        try:
            for instance in self.instances:
                reached.insert(0, instance)
                self.roll_instance(instance, release)
            self.roll_processes(release)
        except StepFailed as failed:
            if previous is None:
                raise
            self.clock.say(f"FAILED {failed}; putting {previous} back")
            self.releases.switch(previous)
            back = None
            try:
                for back in reached:
                    self.roll_instance(back, previous)
                back = "the other process types"
                self.roll_processes(previous)
            except StepFailed as again:
                self.clock.say(f"FAILED to put {previous} back on {back}: {again}; not putting it back further")
                raise StepFailed(failed.step, f"{failed.reason}; then putting {previous} back failed on "
                                              f"{back}: {again}") from again  # fmt: skip
            raise

    def roll_all(self, why, step="rotate"):
        """Roll every instance and process type onto the current release (each reads its environment
        as it starts)."""
        release = self.releases.current()
        if release is None:
            raise StepFailed(step, "no current release: deploy one first")
        self.clock.say(f"{step}: rolling the instances ({why})")
        for instance in self.instances:
            self.roll_instance(instance, release)
        self.roll_processes(release)
        return release

    def process_programs(self, release):
        """{supervisor program: process type} of ``release``'s other process types (not web), as many
        of each as the processes setting says (1 by default; 0: none): <app>-<type>-<n>."""
        programs = {}
        for kind in self.releases.metadata(release).get("processes", {}):
            count = (self.process_settings.get(kind) or {}).get("count", 1)
            programs.update({f"{self.app}-{kind}-{n}": kind for n in range(count)})
        return programs

    def roll_processes(self, release):
        """Make supervisor run ``release``'s other process types (the current release's: launch reads
        ``current`` as each starts) and restart each, one at a time: stopped gracefully (TERM, then
        30 s), started, and running for startsecs (3 s) on ``release``. A program of a type the
        release no longer has is stopped and removed. StepFailed("processes") with the last lines of
        the program's log when one does not start or stay up."""
        programs = self.process_programs(release)
        text = "".join(PROCESS_PROGRAM.format(program=name, kind=kind, app=self.app, lib=self.lib, srv=self.srv)
                       for name, kind in programs.items())  # fmt: skip
        text = f"; Managed by {NAME}-release: the process types of the current release (its Procfile).\n" + text
        changed = not self.processes_conf.exists() or self.processes_conf.read_text() != text
        if changed:
            write_atomically(self.processes_conf, text, 0o644, group=0)
        if changed or programs:
            self.supervisor.supervisorctl("update", step="processes")
        for name, kind in programs.items():
            self.clock.say(f"processes: {name} ({kind}): restarting")
            self.supervisor.supervisorctl("stop", name, step="processes")
            out = subprocess.run(["supervisorctl", "start", name], capture_output=True, text=True, check=False)
            runs = self.supervisor.running([name])[name]
            if out.returncode or runs != release:
                said = (out.stdout + out.stderr).strip()
                raise StepFailed("processes", f"{name} did not start on {release}: {said}"
                                              f"{self.supervisor.log_tail(name)}")  # fmt: skip
        if programs:
            self.clock.say(f"processes: {', '.join(programs)} running {release}")

    def remove_programs(self):
        """Stop and unload every instance's and process type's program (a failed first release:
        nothing to serve). supervisor would otherwise restart them against a release that no longer exists.
        """
        programs = list(self.instances)
        if self.processes_conf.exists():  # removed one by one: `supervisorctl update` would add the instances back
            programs += list(parse_processes_conf(self.processes_conf.read_text(), self.app))
            self.processes_conf.unlink()
        for program in programs:
            self.supervisor.supervisorctl("stop", program, step="stop")
            self.supervisor.supervisorctl("remove", program, step="stop")
        self.clock.say(f"no release serves: stopped and removed {', '.join(programs)} from supervisor")


class Secrets:
    """The app's environment files: its secrets (/etc/<app>/<app>.env: the secret key, the database
    login) and the operator's configuration (/etc/<app>/config.env); and the database roles a
    password rotation changes (psql)."""

    def __init__(self, *, app, env_file, config_file):
        self.app = app
        self.env_file = env_file
        self.config_file = config_file

    def read_env(self, path=None):
        """The secrets file (or ``path``) as {KEY: value} (read_env_file; FileNotFoundError when missing)."""
        return read_env_file(path or self.env_file, missing_ok=False)

    def write_env(self, env, path=None):
        """Replace the secrets file (or ``path``) atomically: root:<app> 0640, written beside it, then renamed."""
        text = "".join(f"{key}={value}\n" for key, value in env.items())
        write_atomically(path or self.env_file, text, 0o640, grp.getgrnam(self.app).gr_gid)

    def psql(self, sql, step):
        """Run SQL as postgres in the app's database; passwords go through stdin, never argv."""
        run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.app], step,
            input=sql, quiet=True)  # fmt: skip


class PushRepository:
    """The repository deployers push to (/srv/<app>/deploy.git): its deploy branch names the serving commit."""

    def __init__(self, *, app, build_user, git_dir, deploy_branch):
        self.app = app
        self.build_user = build_user
        self.git_dir = git_dir
        self.deploy_branch = deploy_branch

    def point_branch(self, commit):
        """Make the deploy branch of the push repository name the serving commit (after a rollback)."""
        if not self.git_dir.is_dir():
            return
        git = ["git", f"--git-dir={self.git_dir}"]
        # Not as root: deployers may write the repository's config and hooks, which git would run.
        deployer = {"user": self.build_user, "group": f"{self.app}-deploy"}
        try:
            run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], "switch", quiet=True, **deployer)
        except StepFailed:
            return  # the commit was never pushed here (released by another repository)
        run([*git, "update-ref", f"refs/heads/{self.deploy_branch}", commit], "switch", **deployer)


class Stack:
    """The app on this server: its settings (release.json) and paths, read once here, and the parts
    that act on them, one concern each, wired together for the commands below: ``releases``
    (Releases), ``build`` (Build), ``processes`` (Processes), ``supervisor`` (Supervisor),
    ``secrets`` (Secrets), ``repository`` (PushRepository) and ``history`` (History)."""

    def __init__(self, config, clock):
        self.app = app = config["app_name"]
        build_user = f"{app}-build"
        self.instances = [f"{app}-{n}" for n in range(int(config["instances"]))]
        keep = int(config["keep_releases"])
        health_timeout = float(config["health_timeout"])
        drain_timeout = float(config["drain_timeout"])
        srv = Path(f"/srv/{app}")
        releases_dir = srv / "releases"
        deploy_branch = config["deploy_branch"]
        process_settings = config.get("processes") or {}  # {type: {"command", "count"}}
        self.history = History(Path(f"/var/log/{app}/releases.log"), clock)
        self.clock = clock
        self.lib = Path(f"/usr/local/lib/{app}")
        self.supervisor = Supervisor(app=app, instances=self.instances, releases_dir=releases_dir)
        self.releases = Releases(
            app=app, build_user=build_user, directory=releases_dir, current_link=srv / "current",
            previous_link=srv / "previous", keep=keep, history=self.history, supervisor=self.supervisor, clock=clock,
        )  # fmt: skip
        # The app: where it is in the pushed tree, how it runs (else from its Procfile), where its
        # static files are (None: found, Flask's way) and what it keeps across releases.
        self.build = Build(
            app=app, build_user=build_user, lib=self.lib, shared=Path(f"/var/lib/{app}/shared"),
            pip_cache=Path(f"/var/cache/{app}/build/pip"), app_root=config.get("app_root") or "",
            wsgi_app=config.get("wsgi_app"), release_command=config.get("release_command"),
            process_settings=process_settings, static_folder=config.get("static_folder"),
            shared_dirs=config.get("shared_dirs") or [], releases=self.releases, clock=clock,
        )  # fmt: skip
        self.processes = Processes(
            app=app, instances=self.instances, srv=srv, lib=self.lib, run_dir=Path(f"/run/{app}"),
            processes_conf=Path(processes_conf_path(app)), process_settings=process_settings,
            health_path=config.get("health_path") or "/", health_timeout=health_timeout, drain_timeout=drain_timeout,
            supervisor=self.supervisor, releases=self.releases, clock=clock,
        )  # fmt: skip
        self.secrets = Secrets(
            app=app, env_file=Path(f"/etc/{app}/{app}.env"), config_file=Path(f"/etc/{app}/config.env")
        )
        self.repository = PushRepository(
            app=app, build_user=build_user, git_dir=srv / "deploy.git", deploy_branch=deploy_branch
        )


def point(link, target):
    """Make the symlink ``link`` name ``target``, atomically (a new link renamed over it)."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


# --- Commands --------------------------------------------------------------------------------------


def deploy(stack, opts):
    """Build a release from the archive on standard input, check it and (unless --prepare) run its
    release command and activate it; a release that fails before it serves is removed."""
    # The id ends in the commit's first hex digits (7 to 40), after its date and time.
    if opts.release and (
        not RELEASE_ID.match(opts.release) or not opts.commit.startswith(opts.release.rsplit("-")[-1])
    ):
        raise StepFailed("build", f"--release {opts.release}: expected YYYYMMDD-HHMMSS-{opts.commit[:7]}")
    previous = stack.releases.current()
    release = stack.build.make(opts.commit, opts.ref, opts.release)
    try:
        stack.build.check(release)
        if opts.prepare:
            stack.clock.say(f"prepared {release}: built and checked, not migrated, not serving")
            return release
        stack.build.migrate(release)
    except StepFailed as failed:
        failed.release = release
        stack.releases.remove(release, "deploy")
        raise
    return activate_release(stack, release, previous)


def kept_release(stack, release, step):
    """``release`` if it is kept here, else StepFailed naming the kept ones."""
    kept = stack.releases.kept()
    if release not in kept:
        raise StepFailed(step, f"no release {release}; kept: {', '.join(kept) or 'none'}")
    return release


def migrate(stack, opts):
    """Apply a prepared release's migrations: once per release, on one app host of a cluster."""
    release = kept_release(stack, opts.release, "migrate")
    stack.build.migrate(release)
    return release


def activate(stack, opts):
    """Switch to a prepared (and migrated) release and roll the instances onto it; on a failure the
    previous release is put back and this one removed."""
    release = kept_release(stack, opts.release, "activate")
    if release == stack.releases.current():
        stack.clock.say(f"activate: {release} is already current")
        return release
    return activate_release(stack, release, stack.releases.current())


def discard(stack, opts):
    """Remove a kept release that is not current (a cluster's release that another host failed);
    StepFailed when it is current or an instance still runs it (a put-back that failed)."""
    release = opts.release
    if not RELEASE_ID.match(release):
        raise StepFailed("discard", f"{release!r} is not a release id (YYYYMMDD-HHMMSS-<commit>)")
    if release == stack.releases.current():
        raise StepFailed("discard", f"{release} is current: roll back first")
    if release in stack.releases.kept() and (users := stack.releases.remove(release, "discard")):
        raise StepFailed("discard", f"{', '.join(users)} still run {release}: kept")
    return release


def activate_release(stack, release, previous):
    """Switch ``current`` to a built, checked and migrated release and roll the instances, then prune;
    on a failure put ``previous`` back (none: remove the programs) and remove the release, unless
    an instance still runs it (putting back failed too: Processes.roll), and raise the StepFailed."""
    stack.releases.switch(release)
    try:
        stack.processes.roll(release, previous)
    except StepFailed as failed:
        failed.release = release
        if previous is None:  # the first release: nothing served before, nothing is current now
            stack.releases.current_link.unlink()
            stack.processes.remove_programs()
        stack.releases.remove(release, failed.step)
        raise
    stack.releases.prune()
    return release


def rollback(stack, opts):
    """Switch back to opts.release, or to the release that served before the current one (by the
    history: Releases.rollback_target), and roll the instances; the schema stays."""
    current = stack.releases.current()
    if opts.release:
        target = kept_release(stack, opts.release, "rollback")
    else:
        target = stack.releases.rollback_target()
        if target is None:
            raise StepFailed("rollback", f"no kept release served before {current}")
    if target == current:
        # After a put-back that failed, some instances may still run another release: roll those.
        others = [name for name, runs in stack.supervisor.running().items() if runs != current]
        stack.clock.say(f"rollback: {target} is already current" + (f"; rolling {', '.join(others)} onto it"
                                                                     if others else ""))  # fmt: skip
        for instance in others:
            stack.processes.roll_instance(instance, current)
        return target
    stack.clock.say(f"rollback: {current} -> {target} (the database schema stays as it is)")
    stack.releases.switch(target)
    stack.processes.roll(target, current)
    stack.repository.point_branch(stack.releases.metadata(target)["commit"])
    return target


def restart(stack, opts):
    """Roll every instance onto the current release and its supervisor program config, one at a time."""
    current = stack.releases.current()
    if current is None:
        raise StepFailed("restart", "no current release: deploy one first")
    for instance in stack.instances:
        stack.processes.roll_instance(instance, current)
    return current


#: Variables the stack sets that the operator's configuration may not replace (launch.py).
RESERVED = ("PATH", "VIRTUAL_ENV", "HOME", "RELEASE_ID", "GIT_REV", "PYTHONUNBUFFERED", "SUPERVISOR_PROCESS_NAME",
            "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR")  # fmt: skip


def parse_assignments(lines):
    """[(KEY, VALUE)] from KEY=VALUE lines (the last one given wins); StepFailed("config") names a
    line without =, a name that is not an environment variable's or a name the stack sets."""
    pairs = {}
    for line in lines:
        key, eq, value = line.partition("=")
        if not eq:
            raise StepFailed("config", f"{line[:40]!r}: expected KEY=VALUE")
        if not ENV_NAME.fullmatch(key):
            raise StepFailed("config", f"{key[:40]!r} is not a valid environment variable name (letters, digits "
                                       "and _, not starting with a digit)")  # fmt: skip
        if key in RESERVED:
            raise StepFailed("config", f"{key} is set by the stack (launch.py) and cannot be configured")
        if "\0" in value or "\r" in value:
            raise StepFailed("config", f"{key}: a value holds no NUL or carriage return")
        pairs[key] = value
    return pairs


def config(stack, opts):
    """Set, unset or list the app's configuration (/etc/<app>/config.env: scripts/config); a change
    rolls the instances and process types, with no failed request; on a failure the configuration
    before is put back and rolled again."""
    before = stack.secrets.read_env(stack.secrets.config_file) if stack.secrets.config_file.exists() else {}
    if opts.action == "list":
        for key, value in sorted(before.items()):
            shown = value if opts.values else "******"
            print(f"{key}={shown}")
        if not before:
            print(f"(no configuration in {stack.secrets.config_file})", file=sys.stderr)
        return None
    after = dict(before)
    if opts.action == "set":
        pairs = parse_assignments(opts.pairs or sys.stdin.read().splitlines())
        if not pairs:
            raise StepFailed("config", "nothing to set: give KEY=VALUE (or KEY=VALUE lines on standard input)")
        after.update(pairs)
    else:
        if unknown := [key for key in opts.pairs if key not in before]:
            raise StepFailed("config", f"not set: {', '.join(unknown)} (config list names what is set)")
        for key in opts.pairs:
            del after[key]
    if after == before:
        stack.clock.say("config: no change; nothing rolled")
        return stack.releases.current()
    stack.secrets.write_env(after, stack.secrets.config_file)
    changed = sorted(key for key in set(after) | set(before) if after.get(key) != before.get(key))
    stack.clock.say(f"config: {opts.action} {', '.join(changed)}")
    release = stack.releases.current()
    if release is None:
        return None
    try:
        stack.processes.roll_all("the configuration changed", step="config")
    except StepFailed:
        stack.clock.say("config: putting the configuration before back")
        stack.secrets.write_env(before, stack.secrets.config_file)
        stack.processes.roll_all("the configuration before", step="config")
        raise
    return release


def run_command(stack, opts):
    """Run a command as the app user in the current release's directory and environment; its output
    and exit status are the command's (the process is replaced: nothing here runs after it)."""
    if stack.releases.current() is None:
        print(f"{NAME}-release run: no current release: release one first", file=sys.stderr)
        return 2
    command = opts.cmd[1:] if opts.cmd[:1] == ["--"] else opts.cmd
    if not command:
        print(f"{NAME}-release run: give a command: run -- CMD [ARG...]", file=sys.stderr)
        return 2
    os.execvp("runuser", ["runuser", "-u", stack.app, "--", str(stack.lib / "launch"), "--", *command])


def scram_verifier(password, rounds=4096):
    """The SCRAM-SHA-256 verifier of ``password`` as PostgreSQL stores it (RFC 5802 and 7677; 4096
    rounds and a 16-byte salt as PostgreSQL's src/common/scram-common.c); hex passwords need no
    SASLprep. The same as deploy/tasks/postgresql.py's SCRAM_VERIFIER, which runs where this tool is not."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    client, server = (hmac.new(salted, name, "sha256").digest() for name in (b"Client Key", b"Server Key"))
    stored = hashlib.sha256(client).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${rounds}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


def rotate(stack, opts):
    """Replace the secret key or the database password with no failed request (the module docstring says how)."""
    env = stack.secrets.read_env()
    if opts.secret == "secret-key":
        old, new = env["SECRET_KEY"], secrets.token_hex(32)
        env["SECRET_KEY_FALLBACKS"] = new
        stack.secrets.write_env(env)
        stack.processes.roll_all("1/2: the new key accepted beside the old one")
        env["SECRET_KEY"], env["SECRET_KEY_FALLBACKS"] = new, old
        stack.secrets.write_env(env)
        return stack.processes.roll_all("2/2: signing with the new key, the old one still accepted")
    current = env.get("DATABASE_USER", stack.app)
    idle = stack.app if current != stack.app else f"{stack.app}_b"
    password = secrets.token_hex(24)
    stack.clock.say(f"rotate: a new password for {idle} (the instances log in as {current})")
    # Its SCRAM verifier, never the password: the statement shows in pg_stat_activity (pg_monitor)
    # and in the log (log_statement=ddl).
    stack.secrets.psql(f"ALTER ROLE {idle} WITH LOGIN PASSWORD '{scram_verifier(password)}';", "rotate")
    env["DATABASE_USER"], env["DATABASE_PASSWORD"] = idle, password
    stack.secrets.write_env(env)
    release = stack.processes.roll_all(f"they log in as {idle} from now on")
    stack.clock.say(f"rotate: {current} loses its password")
    stack.secrets.psql(
        f"ALTER ROLE {current} WITH PASSWORD NULL; SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE usename = '{current}' AND datname = '{stack.app}';",
        "rotate",
    )
    return release


def list_releases(stack):
    """Print the kept releases, newest first by the history (Releases.ordered), the current one marked
    ``*``; the release a rollback goes to; and the last five actions."""
    current = stack.releases.current()
    print(f"  {'RELEASE':<31} {'COMMIT':<12} {'BUILT (UTC)':<26} REF")
    for release in reversed(stack.releases.ordered()):
        meta = stack.releases.metadata(release)
        mark = "*" if release == current else " "
        print(f"{mark} {release:<31} {meta['commit'][:12]:<12} {meta['built_at']:<26} {meta.get('ref', '')}")
    target = stack.releases.rollback_target()
    print(f"\nA rollback goes to: {target} (it served before the current one)" if target else
          "\nA rollback goes to: none (no kept release served before the current one)")  # fmt: skip
    if stack.history.exists():
        print("\nLast actions (newest last):")
        for e in stack.history.entries()[-5:]:
            release = e.get("release") or "-"
            print(f"  {e.get('time')}  {e.get('action'):<8} {release:<31} {e.get('outcome'):<7} {e.get('seconds')} s"
                  f"  by {e.get('by')}")  # fmt: skip


def what_serves(current, running):
    """In words: "X is serving" when every instance runs the current release X (or none runs and none
    is current), else what each instance of ``running`` (Supervisor.running) runs and which is current."""
    if all(release == current for release in running.values()):
        return f"{current or 'no release'} is serving"
    each = ", ".join(f"{name} runs {release}" if release else f"{name} is down" for name, release in running.items())
    return f"{each}; {current or 'no release'} is current"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser("deploy", help="build (from a tar on stdin), check, migrate, switch and roll a release")
    d.add_argument("--commit", required=True, help="the commit the archive was made from (40 hex digits)")
    d.add_argument("--ref", default="", help="the ref that was pushed, for the history")
    d.add_argument("--release", help="the release id (YYYYMMDD-HHMMSS-<commit>; default: now and the commit)")
    d.add_argument("--prepare", action="store_true", help="build and check only: no migration, not serving")
    for command, text in (("migrate", "apply a prepared release's migrations"),
                          ("activate", "switch to a prepared release and roll the instances onto it"),
                          ("discard", "remove a kept release that is not current")):  # fmt: skip
        commands.add_parser(command, help=text).add_argument("release")
    r = commands.add_parser("rollback", help="back to the previous or a named release")
    r.add_argument("release", nargs="?")
    commands.add_parser("restart", help="roll every instance onto the current release")
    c = commands.add_parser("config", help="set, unset or list the app's configuration (its environment)")
    c.add_argument("action", choices=["set", "unset", "list"])
    c.add_argument("pairs", nargs="*", metavar="KEY[=VALUE]", help="set: KEY=VALUE (none: lines on stdin); unset: KEY")
    c.add_argument("--values", action="store_true", help="list: show the values (masked otherwise)")
    x = commands.add_parser("run", help="run a command as the app user in the current release's environment")
    x.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    commands.add_parser("seal", help="seal every kept release the build user still owns (provisioning)")
    commands.add_parser("list", help="kept releases, the current one marked *")
    rot = commands.add_parser("rotate", help="replace a secret with no failed request")
    rot.add_argument("secret", choices=["secret-key", "database-password"])
    opts = parser.parse_args(argv)
    if opts.command == "deploy" and not re.fullmatch(r"[0-9a-f]{40}", opts.commit):
        parser.error(f"--commit {opts.commit!r}: expected 40 hex digits")
    # Before anything is touched: run as another user it would fail halfway (closed sockets).
    if not require_root(f"{NAME}-release", f"sudo {sys.argv[0]} {opts.command} ..."):
        return 2

    clock = Clock()
    stack = Stack(read_settings(NAME, "release"), clock)
    if opts.command == "list":
        list_releases(stack)
        return 0
    if opts.command == "run":
        return run_command(stack, opts)
    if opts.command == "config" and opts.action == "list":
        try:
            config(stack, opts)
        except StepFailed as failed:
            print(f"{NAME}-release config: {failed.reason}", file=sys.stderr)
            return 1
        return 0
    lock_path = RELEASE_LOCK.format(app=stack.app)
    lock = take_lock(lock_path)  # held until the process ends
    if lock is None:
        print(f"{NAME}-release: another release is running (lock {lock_path})", file=sys.stderr)
        return 2
    if opts.command == "seal":
        stack.releases.seal_kept()
        return 0
    action = {"deploy": deploy, "rollback": rollback, "restart": restart, "rotate": rotate, "migrate": migrate,
              "activate": activate, "discard": discard, "config": config}[opts.command]  # fmt: skip
    before = stack.releases.current()
    command = "prepare" if getattr(opts, "prepare", False) else opts.command  # the history's name of it
    try:
        release = action(stack, opts)
    except StepFailed as failed:
        serving, running = stack.releases.current(), stack.supervisor.running()
        clock.say(f"FAILED at step {failed.step}: {failed}")
        print(f"{opts.command} failed at step '{failed.step}'; {what_serves(serving, running)}.", file=sys.stderr)
        commit = getattr(opts, "commit", None)
        stack.history.record(command, failed.release or getattr(opts, "release", None), "failed", step=failed.step,
                             serving=serving, instances=running, commit=commit)  # fmt: skip
        return 1
    stack.history.record(command, release, "ok", previous=before)
    if command in ("prepare", "migrate", "discard"):
        serving = stack.releases.current() or "no release"
        clock.say(f"done: {command} {release}; {serving} is serving ({clock.elapsed():.1f} s)")
    else:
        clock.say(f"done: release {release} is serving on {len(stack.instances)} instances ({clock.elapsed():.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
