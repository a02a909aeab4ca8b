#!/usr/bin/python3 -I
"""Run one of the app's commands in a release's directory and environment.

Installed by the deploy as /usr/local/lib/<app>/launch (root 0755). Every process of the app
starts through it: the gunicorn instances and the Procfile's other process types (supervisor's
programs), the release command (the release tool), one-off commands (``<app>-release run``).
Only the Python standard library and server_common.py beside it; it ends by exec'ing the command,
so the command keeps its PID.

Usage: launch [--release ID] [--process TYPE | -- CMD [ARG...]]
  --release ID    the release to run (default: the one /srv/<app>/current names, read once)
  --process TYPE  run the Procfile's (or the processes setting's) command of TYPE, as
                  ``bash -c`` does (Heroku's way), e.g. ``worker``
  CMD [ARG...]    run CMD, found on the release's PATH (its virtualenv's bin first)

The environment, later sources overriding earlier ones:
  1. the caller's (supervisor gives HOME and SUPERVISOR_PROCESS_NAME, the instance's name);
  2. what the stack sets: RELEASE_ID (the release id), GIT_REV (its commit), VIRTUAL_ENV and
     PATH, PYTHONUNBUFFERED=1, and PostgreSQL's: libpq's PGHOST, PGDATABASE, PGUSER,
     PGPASSWORD, PGCONNECT_TIMEOUT (3 s) and, for a database on its own host, PGSSLMODE
     (verify-full) and PGSSLROOTCERT; DATABASE_URL
     (``postgresql://USER@/DB?host=...``, no password: libpq reads PGPASSWORD); SECRET_KEY
     and SECRET_KEY_FALLBACKS (a comma-separated list of earlier keys, after a rotation);
  3. the inventory's ``app_environment`` (/etc/<app>/environment, root 0644, in git);
  4. the operator's configuration (/etc/<app>/config.env, root:<app> 0640, ``scripts/config``),
     which may override any of the above (DATABASE_URL for a database elsewhere, say).
The stack's secrets come from /etc/<app>/<app>.env (root:<app> 0640). Files are KEY=VALUE lines;
blank lines and lines starting with # are skipped; no quoting (a value is the rest of its line).

Exit status: the command's; 127 when it is not found; 2 bad usage, no such release or process
type, or a file above that cannot be read (the message names it).
"""

import argparse
import json
import os
import sys
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, str(HERE))  # server_common.py is beside this file
from server_common import app_of_lib, read_env_file, read_settings  # noqa: E402

APP = app_of_lib(HERE)


def database_environment(settings, secrets):
    """libpq's variables and DATABASE_URL for the app's database (no password in the URL)."""
    app = settings["app_name"]
    user = secrets.get("DATABASE_USER") or app
    host = settings.get("database_host") or "/var/run/postgresql"
    env = {"PGHOST": host, "PGDATABASE": app, "PGUSER": user, "PGCONNECT_TIMEOUT": "3"}
    query = {"host": host, "connect_timeout": "3"}
    if settings.get("database_sslrootcert"):
        env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=settings["database_sslrootcert"])
        query.update(sslmode="verify-full", sslrootcert=settings["database_sslrootcert"])
    if secrets.get("DATABASE_PASSWORD"):
        env["PGPASSWORD"] = secrets["DATABASE_PASSWORD"]
    env["DATABASE_URL"] = f"postgresql://{urllib.parse.quote(user)}@/{app}?{urllib.parse.urlencode(query, safe='/')}"
    return env


def environment(release_dir, meta, app=APP, base=None):
    """The environment the app's commands run in (see the module docstring), as a dict."""
    etc = Path(f"/etc/{app}")
    settings = read_settings(app, "release")
    secrets = read_env_file(etc / f"{app}.env")
    env = dict(os.environ if base is None else base)
    venv = release_dir / "venv"
    env.update(
        RELEASE_ID=meta.get("release", release_dir.name),
        GIT_REV=meta.get("commit", ""),
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        PYTHONUNBUFFERED="1",
    )
    env.update(database_environment(settings, secrets))
    for key in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        if secrets.get(key):
            env[key] = secrets[key]
    env.update(read_env_file(etc / "environment"))
    env.update(read_env_file(etc / "config.env"))
    return env


def release_dir(app, release=None):
    """The directory of ``release`` (default: the current one), resolved once: the process's working
    directory then names its release, whatever ``current`` names later."""
    srv = Path(f"/srv/{app}")
    if release:
        if "/" in release or release.startswith("."):
            raise SystemExit(f"launch: {release!r} is not a release id")
        path = srv / "releases" / release
    else:
        try:
            path = srv / "releases" / Path(os.readlink(srv / "current")).name
        except FileNotFoundError:
            raise SystemExit(f"launch: no current release ({srv}/current): release one first") from None
    if not (path / ".release.json").is_file():
        raise SystemExit(f"launch: no release at {path}")
    return path


def main(argv=None):
    """Parse the command line, build the environment, exec the command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--release", help="release id (default: the current release)")
    parser.add_argument("--process", metavar="TYPE", help="the command of process type TYPE (Procfile)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    opts = parser.parse_args(argv)
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if bool(command) == bool(opts.process):
        parser.error("give either --process TYPE or -- CMD [ARG...]")
    path = release_dir(APP, opts.release)
    meta = json.loads((path / ".release.json").read_text(encoding="utf-8"))
    if opts.process:
        line = meta.get("processes", {}).get(opts.process)
        if not line:
            raise SystemExit(f"launch: release {path.name} has no process type {opts.process!r} "
                             f"(it has: {', '.join(meta.get('processes', {})) or 'none'})")  # fmt: skip
        command = ["/bin/bash", "-c", line]
    try:
        env = environment(path, meta)
    except OSError as error:
        raise SystemExit(f"launch: {error}") from None
    os.chdir(path)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"launch: {command[0]}: not found on the release's PATH ({env['PATH']})", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
