#!/usr/bin/python3 -I
"""Ship, roll back and list releases of the app on this server, with no failed request.

Installed by the deploy as /usr/local/sbin/<app>-release (root 0755); its settings are
in /etc/<app>/release.json (written by the deploy from deploy/settings.py; a fixed path,
no option names another). Runs as root and refuses to start otherwise: the git push hook
calls it through sudo (the deploy group may run deploy, rollback, list and a cluster release's
migrate, activate and discard, nothing else:
hardening/sudoers.d/deploy-group.j2), scripts/release and scripts/rollback through SSH.
Only the Python standard library: it runs before any virtualenv exists.

Pushed content never runs as root: <app>-build unpacks it, makes its virtualenv, installs
its requirements (an sdist runs code while it builds) and compresses its static files;
<app>, the app user, checks and migrates it. Root only switches ``current``, calls
supervisor and deletes old releases.

Commands:
  deploy --commit SHA [--ref REF] [--release ID] [--prepare]
        Build /srv/<app>/releases/<id> from a tar of the repo's app/ directory on standard
        input (``git archive COMMIT app``), check it, apply its migrations, switch
        /srv/<app>/current to it atomically, then roll the instances one at a time.
        <id> is UTC time + short commit, e.g. 20261121-101502-dcb3499, so ids sort
        by deploy time; --release gives it (every app host of a cluster builds the same id).
        --prepare stops after the check: the release is kept, not migrated, not serving.
  migrate RELEASE
        Apply a prepared release's migrations (a cluster migrates once, on one app host).
  activate RELEASE
        Switch to a prepared release and roll the instances onto it, as deploy does.
  discard RELEASE
        Remove a kept release that is not current.
  rollback [RELEASE]
        Switch back to RELEASE, or to the newest kept release older than the current
        one, and roll the instances. The database schema is left as it is.
  restart
        Roll every instance onto the current release and its supervisor program
        config, one at a time (what provision runs when the program config changes).
  list  The kept releases, newest first, the current one marked with "*".
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
supervisor program config, start it, and wait until it answers /healthz with 200,
/version names the expected release and its socket is open to nginx again (the
instance opens it itself once healthy: app/gunicorn.conf.py), health_timeout seconds.
The other instances serve meanwhile and nginx is never reloaded, so no request
reaches a stopping or unhealthy instance and no client connection is closed.

A failed step stops the command: a release that fails to build, check or migrate is
removed and never served; one that fails while rolling is rolled back on the instances
it reached and ``current`` is put back. Exit status: 0 done; 1 a step failed (named on
stderr, the previous release keeps serving); 2 bad usage or another release running.
"""

import argparse
import fcntl
import grp
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path

RELEASE_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{7,40}$")
NAME = Path(sys.argv[0]).name.removesuffix("-release") or "todo"
#: The app's Python package in a release (its code, templates and static files).
PACKAGE = "todo"


class StepFailed(Exception):
    """A release step failed; ``step`` names it, the message says why."""

    def __init__(self, step, reason):
        super().__init__(f"{step}: {reason}")
        self.step = step


class Clock:
    """Prints progress lines with the seconds since the command started."""

    def __init__(self):
        self.started = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.started

    def say(self, message):
        """Print a progress line; a pusher who went away (broken pipe) must not stop the release."""
        try:
            print(f"[{self.elapsed():6.1f}s] {message}", flush=True)
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def run(cmd, step, *, user=None, group=None, cwd=None, env=None, stdin=None, input=None, quiet=False):  # noqa: A002
    """Run ``cmd`` (a list); raise StepFailed(step) with its output's tail when it fails.

    ``user``: run as that user (runuser), ``group`` as its group. ``quiet``: capture output,
    show it only on failure.
    """
    if user:
        cmd = ["runuser", "-u", user, *(["-g", group] if group else []), "--", *cmd]
    proc = subprocess.run(
        cmd,
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
        raise StepFailed(step, f"`{' '.join(cmd)}` exited {proc.returncode}" + (f"\n{tail}" if tail else ""))
    return proc.stdout or ""


class Stack:
    """The app's paths and settings on this server (from release.json)."""

    def __init__(self, config, clock):
        self.app = config["app_name"]
        self.build_user = f"{self.app}-build"
        self.instances = [f"{self.app}-{n}" for n in range(int(config["instances"]))]
        self.keep = int(config["keep_releases"])
        self.health_timeout = float(config["health_timeout"])
        self.drain_timeout = float(config["drain_timeout"])
        self.srv = Path(f"/srv/{self.app}")
        self.releases = self.srv / "releases"
        self.current_link = self.srv / "current"
        self.git_dir = self.srv / "deploy.git"
        self.deploy_branch = config["deploy_branch"]
        # PostgreSQL: its unix socket directory here, or the database host's address over TLS with
        # that host's pinned certificate (sslmode=verify-full).
        query = {"host": config.get("database_host") or "/var/run/postgresql"}
        if config.get("database_sslrootcert"):
            query.update(sslmode="verify-full", sslrootcert=config["database_sslrootcert"])
        self.database_query = urllib.parse.urlencode(query, safe="/")
        self.env_file = Path(f"/etc/{self.app}/{self.app}.env")
        self.run_dir = Path(f"/run/{self.app}")
        self.history = Path(f"/var/log/{self.app}/releases.log")
        self.pip_cache = Path(f"/var/cache/{self.app}/build/pip")
        self.clock = clock

    # --- Releases on disk ---------------------------------------------------------------------

    def current(self):
        """The current release id, or None before the first release."""
        try:
            return Path(os.readlink(self.current_link)).name
        except FileNotFoundError:
            return None

    def kept(self):
        """Built release ids, oldest first."""
        if not self.releases.is_dir():
            return []
        return sorted(
            p.name for p in self.releases.iterdir() if RELEASE_ID.match(p.name) and (p / ".release.json").is_file()
        )

    def metadata(self, release):
        """The release's .release.json; never through a symlink (the build user wrote it)."""
        fd = os.open(self.releases / release / ".release.json", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as meta:
            return json.loads(meta.read())

    def record(self, action, release, outcome, **extra):
        """Append one JSON line to the release history (/var/log/<app>/releases.log)."""
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "action": action,
            "release": release,
            "outcome": outcome,
            "seconds": round(self.clock.elapsed(), 1),
            "by": os.environ.get("SUDO_USER") or os.environ.get("USER") or "root",
            **extra,
        }
        with self.history.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    # --- Build, check, migrate ----------------------------------------------------------------

    def build(self, commit, ref, release=None):
        """Unpack the app from standard input, make its virtualenv, gzip and brotli its static files, all as
        the build user; return the release id: ``release`` when given (every app host of a cluster
        builds the same one, so its static URLs resolve on each), else UTC now + the short commit."""
        stamp = datetime.now(UTC)
        release = release or f"{stamp:%Y%m%d-%H%M%S}-{commit[:7]}"
        path = self.releases / release
        if path.exists():
            raise StepFailed("build", f"{path} exists already (one release per commit per second)")
        self.clock.say(f"build: {release} from {commit[:12]} ({ref}), as {self.build_user}")
        path.mkdir(mode=0o755)
        shutil.chown(path, self.build_user, self.build_user)

        def as_builder(cmd, **kwargs):
            return run(cmd, "build", user=self.build_user, cwd=path, **kwargs)

        try:
            unpack = ["tar", "-x", "--strip-components=1", "--no-same-owner", "--no-same-permissions", "-C", str(path)]
            as_builder(unpack, stdin=sys.stdin.buffer)
            for required in ("requirements.txt", "gunicorn.conf.py", PACKAGE):
                if not os.path.lexists(path / required):
                    raise StepFailed("build", f"the archive has no app/{required}")
            as_builder(["python3", "-m", "venv", str(path / "venv")], quiet=True)
            self.clock.say("build: installing hash-pinned requirements")
            as_builder(
                [str(path / "venv/bin/pip"), "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--require-hashes", "-r", "requirements.txt"],
                env={"PIP_CACHE_DIR": str(self.pip_cache), "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
                     "HOME": str(self.pip_cache.parent)},
                quiet=True,
            )  # fmt: skip
            texts = ["find", f"{PACKAGE}/static", "-type", "f", "(", "-name", "*.css", "-o", "-name", "*.js",
                     "-o", "-name", "*.svg", "-o", "-name", "*.txt", ")", "-exec"]  # fmt: skip
            as_builder([*texts, "gzip", "-9", "-k", "-n", "-f", "{}", "+"])
            if shutil.which("brotli"):  # nginx's brotli_static serves these .br copies
                as_builder([*texts, "brotli", "-q", "11", "-k", "-f", "{}", "+"])
            meta = {"release": release, "commit": commit, "ref": ref, "built_at": stamp.isoformat(timespec="seconds")}
            as_builder(["sh", "-c", "umask 022 && cat > .release.json"], input=json.dumps(meta, indent=1) + "\n")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return release

    def check(self, release):
        """Import the app and validate gunicorn's config as the app user, as an instance would."""
        path = self.releases / release
        self.clock.say("check: gunicorn --check-config (imports the app, validates settings)")
        run(
            ["venv/bin/gunicorn", "--check-config", "--config", "gunicorn.conf.py"],
            "check",
            user=self.app,
            cwd=path,
            env={"TODO_APP_NAME": self.app, "TODO_INSTANCE": f"{self.app}-check"},
            quiet=True,
        )

    def migrate(self, release):
        """Apply the release's pending migrations (yoyo; each in a transaction, so a failure changes nothing,
        but one that says `-- transactional: false`, as CREATE INDEX CONCURRENTLY must be)."""
        self.clock.say("migrate: yoyo apply (expand only: the serving release must keep working)")
        run(
            ["sh", "-c", f". {self.env_file} && PGPASSWORD=$TODO_DATABASE_PASSWORD exec venv/bin/yoyo apply --batch "
             f"--no-config-file --database \"postgresql+psycopg://${{TODO_DATABASE_USER:-{self.app}}}@/{self.app}"
             f"?{self.database_query}\" "
             "migrations"],
            "migrate",
            user=self.app,
            cwd=self.releases / release,
            quiet=True,
        )  # fmt: skip

    def switch(self, release):
        """Point ``current`` at ``release`` with one atomic rename."""
        self.clock.say(f"switch: current -> releases/{release}")
        tmp = self.srv / "current.new"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f"releases/{release}")
        os.replace(tmp, self.current_link)

    # --- Rolling the instances ----------------------------------------------------------------

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
        """Wait until ``instance`` answers /healthz 200 and /version names ``release``."""
        sock = str(self.run_dir / f"{instance}.sock")
        deadline, last = time.monotonic() + self.health_timeout, "no answer"
        while time.monotonic() < deadline:
            try:
                status, body = get(sock, "/healthz")
                if status != 200:
                    last = f"/healthz answered {status}: {body[:200]}"
                else:
                    serving = json.loads(get(sock, "/version")[1]).get("release")
                    if serving != release:
                        last = f"/version says release {serving}, expected {release}"
                    elif not self.is_open(instance):
                        last = f"{sock} is healthy but not open to nginx yet"
                    else:
                        return
            except Exception as exc:  # noqa: BLE001 (any answer but a healthy one is "not yet": a bad
                # status line or a /version that is not JSON must not escape the roll's recovery)
                last = f"{sock}: {exc!r}"
            time.sleep(0.2)
        raise StepFailed("health check", f"{instance} not healthy after {self.health_timeout:.0f} s: {last}")

    def supervisorctl(self, *args, step):
        out = subprocess.run(["supervisorctl", *args], capture_output=True, text=True, check=False)
        text = (out.stdout + out.stderr).strip()
        benign = ("already started", "not running", "no such process")  # stop before the first start
        if out.returncode != 0 and not any(phrase in text for phrase in benign):
            raise StepFailed(step, f"supervisorctl {' '.join(args)}: {text}")
        return text

    def roll_instance(self, instance, release):
        """Restart one instance onto the current release; nginx sends it nothing until it is healthy."""
        note = " (the only instance: a brief outage)" if len(self.instances) == 1 else ""
        self.clock.say(f"roll: {instance}: closed to nginx, draining{note}")
        self.close(instance)
        self.supervisorctl("stop", instance, step="stop")
        self.supervisorctl("update", instance, step="start")
        self.supervisorctl("start", instance, step="start")
        self.healthy(instance, release)
        self.clock.say(f"roll: {instance}: healthy on {release}, open to nginx")

    def roll(self, release, previous):
        """Roll every instance onto ``release``; on a failure, put ``previous`` back everywhere it went."""
        for n, instance in enumerate(self.instances):
            try:
                self.roll_instance(instance, release)
            except StepFailed as failed:
                if previous is None:
                    raise
                self.clock.say(f"FAILED {failed}; putting {previous} back")
                self.switch(previous)
                for reached in self.instances[: n + 1]:
                    self.roll_instance(reached, previous)
                raise

    def remove_programs(self):
        """Stop and unload every instance's program (a failed first release: nothing to serve).

        supervisor would otherwise restart them against a release that no longer exists.
        """
        for instance in self.instances:
            self.supervisorctl("stop", instance, step="stop")
            self.supervisorctl("remove", instance, step="stop")
        self.clock.say(f"no release serves: stopped and removed {', '.join(self.instances)} from supervisor")

    # --- Secrets --------------------------------------------------------------------------------

    def read_env(self):
        """The secrets file as {KEY: value}."""
        pairs = (line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line)
        return {key.strip(): value.strip() for key, value in pairs}

    def write_env(self, env):
        """Replace the secrets file atomically: root:<app> 0640, written beside it, then renamed."""
        new = self.env_file.with_name(self.env_file.name + ".new")
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchown(out.fileno(), 0, grp.getgrnam(self.app).gr_gid)
            os.fchmod(out.fileno(), 0o640)
            out.write("".join(f"{key}={value}\n" for key, value in env.items()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(new, self.env_file)

    def psql(self, sql, step):
        """Run SQL as postgres in the app's database; passwords go through stdin, never argv."""
        run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.app], step,
            input=sql, quiet=True)  # fmt: skip

    def roll_all(self, why):
        """Roll every instance onto the current release (each reads the secrets file as it starts)."""
        release = self.current()
        if release is None:
            raise StepFailed("rotate", "no current release: deploy one first")
        self.clock.say(f"rotate: rolling the instances ({why})")
        for instance in self.instances:
            self.roll_instance(instance, release)
        return release

    def prune(self):
        """Keep the newest ``keep_releases`` releases, always counting the current one; delete the rest."""
        releases, current = self.kept(), self.current()
        keep = set(releases[-self.keep :])
        if current and current not in keep:
            keep = {current, *releases[-(self.keep - 1) :]} if self.keep > 1 else {current}
        for release in releases:
            if release not in keep:
                shutil.rmtree(self.releases / release)
                self.clock.say(f"prune: removed {release}")

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


def get(sock, url, timeout=2.0):
    """GET ``url`` from the HTTP server on unix socket ``sock``; return (status, body)."""
    conn = HTTPConnection("localhost", timeout=timeout)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(timeout)
    try:
        conn.sock.connect(sock)
        conn.request("GET", url, headers={"Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


# --- Commands --------------------------------------------------------------------------------------


def deploy(stack, opts):
    # The id ends in the commit's first hex digits (7 to 40), after its date and time.
    if opts.release and (
        not RELEASE_ID.match(opts.release) or not opts.commit.startswith(opts.release.rsplit("-")[-1])
    ):
        raise StepFailed("build", f"--release {opts.release}: expected YYYYMMDD-HHMMSS-{opts.commit[:7]}")
    previous = stack.current()
    release = stack.build(opts.commit, opts.ref, opts.release)
    try:
        stack.check(release)
        if opts.prepare:
            stack.clock.say(f"prepared {release}: built and checked, not migrated, not serving")
            return release
        stack.migrate(release)
    except StepFailed:
        shutil.rmtree(stack.releases / release, ignore_errors=True)
        raise
    return activate_release(stack, release, previous)


def kept_release(stack, release, step):
    """``release`` if it is kept here, else StepFailed naming the kept ones."""
    kept = stack.kept()
    if release not in kept:
        raise StepFailed(step, f"no release {release}; kept: {', '.join(kept) or 'none'}")
    return release


def migrate(stack, opts):
    """Apply a prepared release's migrations: once per release, on one app host of a cluster."""
    release = kept_release(stack, opts.release, "migrate")
    stack.migrate(release)
    return release


def activate(stack, opts):
    """Switch to a prepared (and migrated) release and roll the instances onto it; on a failure the
    previous release is put back and this one removed."""
    release = kept_release(stack, opts.release, "activate")
    if release == stack.current():
        stack.clock.say(f"activate: {release} is already current")
        return release
    return activate_release(stack, release, stack.current())


def discard(stack, opts):
    """Remove a kept release that is not current (a cluster's release that another host failed)."""
    release = opts.release
    if release == stack.current():
        raise StepFailed("discard", f"{release} is current: roll back first")
    if release in stack.kept():
        shutil.rmtree(stack.releases / release)
        stack.clock.say(f"discard: removed {release}")
    return release


def activate_release(stack, release, previous):
    """Switch ``current`` to a built, checked and migrated release and roll the instances; on a
    failure put ``previous`` back (none: remove the programs) and remove the release."""
    stack.switch(release)
    try:
        stack.roll(release, previous)
    except StepFailed:
        if previous is None:  # the first release: nothing served before, nothing is current now
            stack.current_link.unlink()
            stack.remove_programs()
        shutil.rmtree(stack.releases / release, ignore_errors=True)
        raise
    stack.prune()
    return release


def rollback(stack, opts):
    current = stack.current()
    if opts.release:
        target = kept_release(stack, opts.release, "rollback")
    else:
        older = [r for r in stack.kept() if current is None or r < current]
        if not older:
            raise StepFailed("rollback", f"no kept release older than {current}")
        target = older[-1]
    if target == current:
        stack.clock.say(f"rollback: {target} is already current")
        return target
    stack.clock.say(f"rollback: {current} -> {target} (the database schema stays as it is)")
    stack.switch(target)
    stack.roll(target, current)
    stack.point_branch(stack.metadata(target)["commit"])
    return target


def restart(stack, opts):
    current = stack.current()
    if current is None:
        raise StepFailed("restart", "no current release: deploy one first")
    for instance in stack.instances:
        stack.roll_instance(instance, current)
    return current


def rotate(stack, opts):
    env = stack.read_env()
    if opts.secret == "secret-key":
        old, new = env["TODO_SECRET_KEY"], secrets.token_hex(32)
        env["TODO_SECRET_KEY_FALLBACKS"] = new
        stack.write_env(env)
        stack.roll_all("1/2: the new key accepted beside the old one")
        env["TODO_SECRET_KEY"], env["TODO_SECRET_KEY_FALLBACKS"] = new, old
        stack.write_env(env)
        return stack.roll_all("2/2: signing with the new key, the old one still accepted")
    current = env.get("TODO_DATABASE_USER", stack.app)
    idle = stack.app if current != stack.app else f"{stack.app}_b"
    password = secrets.token_hex(24)
    stack.clock.say(f"rotate: a new password for {idle} (the instances log in as {current})")
    stack.psql(f"ALTER ROLE {idle} WITH LOGIN PASSWORD '{password}';", "rotate")
    env["TODO_DATABASE_USER"], env["TODO_DATABASE_PASSWORD"] = idle, password
    stack.write_env(env)
    release = stack.roll_all(f"they log in as {idle} from now on")
    stack.clock.say(f"rotate: {current} loses its password")
    stack.psql(
        f"ALTER ROLE {current} WITH PASSWORD NULL; SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE usename = '{current}' AND datname = '{stack.app}';",
        "rotate",
    )
    return release


def list_releases(stack):
    current = stack.current()
    print(f"  {'RELEASE':<31} {'COMMIT':<12} {'BUILT (UTC)':<26} REF")
    for release in reversed(stack.kept()):
        meta = stack.metadata(release)
        mark = "*" if release == current else " "
        print(f"{mark} {release:<31} {meta['commit'][:12]:<12} {meta['built_at']:<26} {meta.get('ref', '')}")
    if stack.history.exists():
        print("\nLast actions (newest last):")
        for line in stack.history.read_text().splitlines()[-5:]:
            e = json.loads(line)
            release = e["release"] or "-"
            print(f"  {e['time']}  {e['action']:<8} {release:<31} {e['outcome']:<7} {e['seconds']} s  by {e['by']}")


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
    commands.add_parser("list", help="kept releases, the current one marked *")
    rot = commands.add_parser("rotate", help="replace a secret with no failed request")
    rot.add_argument("secret", choices=["secret-key", "database-password"])
    opts = parser.parse_args(argv)
    if opts.command == "deploy" and not re.fullmatch(r"[0-9a-f]{40}", opts.commit):
        parser.error(f"--commit {opts.commit!r}: expected 40 hex digits")
    if os.geteuid() != 0:
        # Before anything is touched: run as another user it would fail halfway (closed sockets).
        print(f"{NAME}-release: run as root (sudo {sys.argv[0]} {opts.command} ...)", file=sys.stderr)
        return 2

    clock = Clock()
    stack = Stack(json.loads(Path(f"/etc/{NAME}/release.json").read_text()), clock)
    if opts.command == "list":
        list_releases(stack)
        return 0
    # In /run, which only root may write (not /run/lock: anyone could take a lock there and hold it).
    lock_path = f"/run/{stack.app}-release.lock"
    lock = os.fdopen(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"{NAME}-release: another release is running (lock {lock_path})", file=sys.stderr)
        return 2
    action = {"deploy": deploy, "rollback": rollback, "restart": restart, "rotate": rotate, "migrate": migrate,
              "activate": activate, "discard": discard}[opts.command]  # fmt: skip
    before = stack.current()
    command = "prepare" if getattr(opts, "prepare", False) else opts.command  # the history's name of it
    try:
        release = action(stack, opts)
    except StepFailed as failed:
        serving = stack.current()
        clock.say(f"FAILED at step {failed.step}: {failed}")
        print(f"{opts.command} failed at step '{failed.step}'; {serving or 'no release'} is serving.", file=sys.stderr)
        commit = getattr(opts, "commit", None)
        stack.record(command, getattr(opts, "release", None), "failed", step=failed.step, serving=serving,
                     commit=commit)  # fmt: skip
        return 1
    stack.record(command, release, "ok", previous=before)
    if command in ("prepare", "migrate", "discard"):
        clock.say(f"done: {command} {release}; {stack.current() or 'no release'} is serving ({clock.elapsed():.1f} s)")
    else:
        clock.say(f"done: release {release} is serving on {len(stack.instances)} instances ({clock.elapsed():.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
