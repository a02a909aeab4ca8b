#!/usr/bin/python3 -I
"""Back up, check and restore the app's database on this server with pgBackRest.

Installed by the deploy as /usr/local/sbin/<app>-backup (root 0755); its settings are in
/etc/<app>/backup.json (written by the deploy from deploy/settings.py). Runs as root and
refuses to start otherwise; scripts/backup calls it through SSH and sudo. pgBackRest runs
as postgres with /etc/pgbackrest/pgbackrest.conf (stanza <app>, the encrypted repository).
Only the Python standard library and the tools' shared module (/usr/local/lib/<app>/server_common.py).

Commands:
  now [--type full|diff|incr]
        Take a backup now (default full) and print its label and size (bytes).
  list  The backups (label, type, end time UTC, size in bytes), the window a restore can
        reach (the oldest backup's end to the last archived WAL), and warnings.
  status [--json]
        The newest backup's and the last archived WAL's times and ages (seconds), and a
        WARNING line when the newest backup is older than backup_max_age seconds or WAL
        archiving fails or lags; exit 1 then. --json: one JSON object instead,
        {"newest_backup": epoch|null, "newest_backup_label": str|null, "last_archived_wal":
        epoch|null, "max_age": seconds, "warnings": [str]}, same exit status, and without
        the release lock (it only reads), so <app>-status may call it at any time without
        making a release that starts meanwhile fail.
  verify
        Prove the newest backup restores: in the live database, with writes to the todo
        table held for a moment, count its rows, checksum them and mark a restore point;
        restore the backup and the archived WAL up to that point into a scratch cluster
        (another directory and port, archiving off), start it, compare, and remove it.
        pgBackRest's own verify (checksums of every file in the repository) runs first.
  restore --yes [--time 'YYYY-MM-DD HH:MM:SS+00']
        Stop the instances (nginx answers its 503 page), stop PostgreSQL, restore the
        newest backup and replay the archived WAL to the end or to --time, start
        PostgreSQL and the instances, and print what was recovered. Without --yes it
        refuses (scripts/backup asks first).

Exit status: 0 done; 1 a step failed (named on stderr; a failed restore leaves PostgreSQL
and the instances stopped, with the message saying how to retry); 2 bad usage, not root,
or a release or another backup command running (they share the release lock).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

NAME = Path(sys.argv[0]).name.removesuffix("-backup") or "todo"
# The module the server tools share: in /usr/local/lib/<app> once installed, else beside this file.
HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ beside server_common.py: the directory is root's
sys.path.insert(0, f"/usr/local/lib/{NAME}" if str(HERE) == "/usr/local/sbin" else str(HERE))
from server_common import RELEASE_LOCK, read_settings, require_root, stamp, take_lock  # noqa: E402

#: The scratch cluster of ``verify``: its port (unused by the stack) and directory.
VERIFY_PORT = 5499
#: The todo table's row count and the md5 of every row in id order (what verify compares).
CHECKSUM = "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t.id)), '') FROM todo t"


class StepFailed(Exception):
    """A step failed; the message names it and says why."""


def run(*args, check=True, input=None):  # noqa: A002
    """Run a command (``input``: text for its stdin); return its stdout. Raise StepFailed (with its
    stderr) when it fails and ``check``."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, input=input)
    if check and done.returncode:
        raise StepFailed(f"`{' '.join(args)}` exited {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    return done.stdout


#: What every status says while the repository is on the database server's own disk.
SAME_DISK = (
    "SAME DISK: the repository {repo} is on this server: it undoes a DROP TABLE or a bad migration, not the "
    "loss of the server. Copy it and its passphrase off the server (docs/operations.md, Backups)."
)


class Backups:
    """The stanza of this server, its PostgreSQL cluster and its instances (from backup.json)."""

    def __init__(self, config):
        self.app = self.stanza = config["app_name"]
        # [name, address] of the backup host holding the repository; None: it is on this server.
        self.backup_host = config.get("backup_host")
        self.version = config["postgresql_version"]
        self.data = config["pg_data"]
        self.instances = config["instance_names"]
        self.max_age = config["backup_max_age"]
        # On this server (a lost server loses its backups with it, and every status says so), or
        # on the backup host, where backups and pgBackRest's verify run (over postgres's SSH key).
        self.repo = config.get("backup_repo", "/var/lib/pgbackrest")
        if self.backup_host:
            self.repo = f"{self.backup_host[0]} ({self.backup_host[1]}):{self.repo}"
        self.unit = f"postgresql@{self.version}-main"
        self.scratch = f"/var/lib/postgresql/{self.version}/{self.app}-verify"

    def pgbackrest(self, *args, check=True, on_repository=False):
        """Run pgBackRest as postgres; ``on_repository``: where the repository is (backup and
        verify must run there), over SSH to the backup host when there is one."""
        where = ["ssh", self.backup_host[1]] if on_repository and self.backup_host else []
        return run("runuser", "-u", "postgres", "--", *where, "pgbackrest", f"--stanza={self.stanza}", *args,
                   check=check)  # fmt: skip

    def sql(self, query, port=5432, database=None):
        """The rows of ``query`` (run as postgres), ``|`` between columns."""
        out = run("runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-p", str(port),
                  "-d", database or self.app, "-c", query)  # fmt: skip
        return out.strip()

    def info(self):
        """pgBackRest's info for the stanza (the JSON object), its backups oldest first."""
        return json.loads(self.pgbackrest("info", "--output=json"))[0]

    def unreachable(self, info):
        """pgBackRest's message when it could not read the repository (info's status 99, "other":
        e.g. the backup host is down), else None. Its lists are empty then: no "no backup" warning."""
        if info.get("status", {}).get("code") != 99:
            return None
        messages = [repo.get("status", {}).get("message", "") for repo in info.get("repo", [])]
        return "; ".join(m for m in messages if m) or info["status"].get("message", "unknown")

    # -- now, list, status --------------------------------------------------------------

    def now(self, kind):
        started = time.monotonic()
        self.pgbackrest(f"--type={kind}", "backup", on_repository=True)
        last = self.info()["backup"][-1]
        print(f"backup: {last['label']} ({last['type']}), {last['info']['size']} bytes of database, "
              f"{last['info']['repository']['delta']} bytes stored, in {time.monotonic() - started:.1f} s")  # fmt: skip

    def newest_wal(self, info):
        """When the newest WAL segment in the repository was written there (epoch seconds, 0: none)."""
        archive = (info.get("archive") or [{}])[-1]
        if not archive.get("max"):
            return 0
        folder = f"archive/{self.stanza}/{archive['id']}/{archive['max'][:16]}"
        listing = json.loads(self.pgbackrest("repo-ls", "--output=json", folder))
        return max((entry["time"] for name, entry in listing.items() if name.startswith(archive["max"])), default=0)

    def archiver(self, info):
        """(last archived WAL time as epoch seconds or None, failing now, segments waiting).

        pg_stat_archiver's times can be older than the truth after PostgreSQL restarts (its
        statistics are those last saved), so the time is the later of its and the newest WAL
        file's in the repository (``info``: pgBackRest's), and the segments waiting are
        PostgreSQL's own queue: the .ready files in pg_wal/archive_status.
        """
        row = self.sql(
            "SELECT coalesce(extract(epoch FROM last_archived_time)::bigint, 0), "
            "coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver",
            database="postgres",
        )
        archived, failing = row.split("|")
        newest = self.newest_wal(info)
        waiting = sum(name.endswith(".ready") for name in os.listdir(Path(self.data, "pg_wal", "archive_status")))
        return int(max(int(archived), newest)) or None, failing == "t", waiting

    def warnings(self, info, now, archiver=None):
        """What is late or failing: no backup, the newest older than max_age, WAL archiving failing
        or behind (``archiver``: archiver()'s answer, read again when not given)."""
        found = []
        backups = info.get("backup", [])
        if error := self.unreachable(info):
            found.append(f"the repository {self.repo} cannot be read ({error}): backups wait until it can")
        elif not backups:
            found.append("no backup yet: run `now`")
        elif now - backups[-1]["timestamp"]["stop"] > self.max_age:
            found.append(f"the newest backup is {now - backups[-1]['timestamp']['stop']:.0f} s old "
                         f"(more than backup_max_age, {self.max_age} s): are the timers running?")  # fmt: skip
        _, failing, waiting = archiver or self.archiver(info)
        if failing:
            found.append("WAL archiving fails (pg_stat_archiver.last_failed_time): writes since are in no backup yet")
        if waiting > 1:
            found.append(f"{waiting} WAL segments wait to be archived: the repository is behind")
        return found

    def status(self, as_json=False):
        info, now = self.info(), time.time()
        archiver = self.archiver(info)
        backups = info.get("backup", [])
        if as_json:
            found = self.warnings(info, now, archiver)
            print(json.dumps({
                "newest_backup": backups[-1]["timestamp"]["stop"] if backups else None,
                "newest_backup_label": backups[-1]["label"] if backups else None,
                "last_archived_wal": archiver[0],
                "max_age": self.max_age,
                "warnings": found,
                "repository": self.repo,
                "same_disk": not self.backup_host,
            }))  # fmt: skip
            return 1 if found else 0
        if backups:
            stop = backups[-1]["timestamp"]["stop"]
            print(f"newest backup: {backups[-1]['label']} at {stamp(stop)} ({now - stop:.0f} s ago)")
        archived = archiver[0]
        if archived:
            print(f"last archived WAL: at {stamp(archived)} ({now - archived:.0f} s ago)")
        print(f"repository: {self.repo}" if self.backup_host else SAME_DISK.format(repo=self.repo))
        found = self.warnings(info, now, archiver)
        for warning in found:
            print(f"WARNING: {warning}")
        return 1 if found else 0

    def list(self):
        info, now = self.info(), time.time()
        for backup in info.get("backup", []):
            print(f"{backup['label']:<26} {backup['type']:<5} {stamp(backup['timestamp']['stop'])}  "
                  f"{backup['info']['size']:>12} bytes")  # fmt: skip
        backups = info.get("backup", [])
        archived = self.archiver(info)[0]
        if backups:
            end = stamp(max(archived or 0, backups[-1]["timestamp"]["stop"]))
            print(f"restorable: from {stamp(backups[0]['timestamp']['stop'])} to {end}")
        for warning in self.warnings(info, now):
            print(f"WARNING: {warning}")

    # -- verify ---------------------------------------------------------------------------

    def remove_scratch(self):
        """Remove verify's scratch cluster, as postgres: it lies in postgres's directory."""
        run("runuser", "-u", "postgres", "--", "rm", "-rf", "--", self.scratch)

    def wait_archived(self, timeout=120):
        """Switch to a new WAL segment and wait until the previous one is in the repository."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())", database="postgres")
        deadline = time.monotonic() + timeout
        while self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", database="postgres") < segment:
            if time.monotonic() > deadline:
                raise StepFailed(f"archive: WAL segment {segment} not archived within {timeout} s")
            time.sleep(0.5)

    def promoted(self, port=5432):
        """True once the cluster on ``port`` accepts connections and is out of recovery."""
        try:
            return self.sql("SELECT pg_is_in_recovery()", port, "postgres") == "f"
        except StepFailed:
            return False  # still starting up or replaying WAL (no connections meanwhile)

    def checksum(self, port=5432):
        """(rows, md5 of every row in id order) of the todo table."""
        rows, digest = self.sql(CHECKSUM, port).split("|")
        return int(rows), digest

    def verify(self):
        started = time.monotonic()
        out = self.pgbackrest("verify", "--output=text", check=False, on_repository=True)
        if "status: error" in out or not out.strip():
            raise StepFailed(f"verify: pgBackRest found the repository damaged:\n{out.strip()[-1500:]}")
        point = f"{self.app}-verify-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        # SHARE mode: writes to the table wait (milliseconds) until the point is marked, so the
        # count, the checksum and the restore point see the same rows.
        expected = self.sql(
            f"BEGIN; LOCK TABLE todo IN SHARE MODE; {CHECKSUM}; SELECT pg_create_restore_point('{point}'); COMMIT;"
        ).splitlines()[0]
        rows, digest = expected.split("|")
        self.wait_archived()
        self.remove_scratch()
        try:
            self.pgbackrest(f"--pg1-path={self.scratch}", "--archive-mode=off", "--type=name", f"--target={point}",
                            "--target-action=promote", "restore")  # fmt: skip
            # Debian keeps a cluster's configuration in /etc: the scratch one gets a minimal one.
            for name, text in (
                # hot_standby off: no connection before recovery has reached the point and promoted
                # (else pg_ctl -w returns, and a query sees, a cluster still replaying WAL).
                (
                    "postgresql.conf",
                    f"port = {VERIFY_PORT}\nlisten_addresses = ''\narchive_mode = off\nhot_standby = off\n",
                ),
                ("pg_hba.conf", "local all postgres peer\n"),
            ):
                # As postgres, never root: the directory is postgres's, which may have planted a
                # symlink there (through the repository's forced command, a backup host can act as
                # postgres), and root would write and chown through it.
                run("runuser", "-u", "postgres", "--", "tee", f"{self.scratch}/{name}", input=text)
            pg_ctl = f"/usr/lib/postgresql/{self.version}/bin/pg_ctl"
            run("runuser", "-u", "postgres", "--", pg_ctl, "-D", self.scratch, "-l", f"{self.scratch}/verify.log",
                "-w", "-t", "300", "start")  # fmt: skip
            try:
                deadline = time.monotonic() + 600
                while not self.promoted(VERIFY_PORT):
                    if time.monotonic() > deadline:
                        raise StepFailed(f"verify: the scratch cluster still replays WAL after 600 s ({self.scratch})")
                    time.sleep(0.5)
                got = self.checksum(VERIFY_PORT)
            finally:
                run("runuser", "-u", "postgres", "--", pg_ctl, "-D", self.scratch, "-m", "fast", "stop", check=False)
        finally:
            self.remove_scratch()
        if got != (int(rows), digest):
            raise StepFailed(f"verify: the restored todo table has {got[0]} rows (md5 {got[1]}), "
                             f"the live one had {rows} (md5 {digest}) at {point}")  # fmt: skip
        label = self.info()["backup"][-1]["label"]
        print(f"verify: {label} restored to {point}: {rows} rows, md5 {digest}, as live; "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip

    # -- restore --------------------------------------------------------------------------

    def new_cluster(self):
        """True when the running cluster's system identifier is not the stanza's: a new server (its
        WAL cannot be archived, and it holds nothing to keep). False when they match or PostgreSQL is down."""
        try:
            ours = self.sql("SELECT system_identifier FROM pg_control_system()", database="postgres")
        except StepFailed:
            return False
        info = self.info()
        if not info.get("db"):
            raise StepFailed(f"restore: cannot read the stanza in {self.repo}: {self.unreachable(info) or 'none'}")
        return ours != str(info["db"][-1]["system-id"])

    def supervisorctl(self, action):
        if self.instances:  # none when the app runs on another host
            run("supervisorctl", action, *self.instances)

    def restore(self, target_time):
        started = time.monotonic()
        if self.new_cluster():
            print("restore: this server's cluster is not the one the repository backs up (a new server): "
                  "restoring the repository's")  # fmt: skip
        else:
            try:
                self.wait_archived(timeout=30)  # the newest writes into the repository, if PostgreSQL runs
            except StepFailed as error:
                print(f"restore: not all WAL could be archived first ({error}); restoring what the repository has")
        if self.instances:
            print(f"restore: stopping the instances {', '.join(self.instances)} (nginx answers its 503 page)")
        self.supervisorctl("stop")
        print(f"restore: stopping {self.unit}")
        run("systemctl", "stop", self.unit)
        target = ["--type=time", f"--target={target_time}", "--target-action=promote"] if target_time else []
        print(f"restore: pgBackRest restore to {target_time or 'the end of the archived WAL'}")
        try:
            self.pgbackrest("--delta", *target, "restore")
        except StepFailed as error:
            raise StepFailed(f"{error}\nPostgreSQL and the instances are stopped; fix the cause and run "
                             "restore again, or start them as they were: systemctl start "
                             f"{self.unit} && supervisorctl start {' '.join(self.instances)}") from None  # fmt: skip
        run("systemctl", "start", self.unit)
        deadline = time.monotonic() + 600
        while not self.promoted():
            if time.monotonic() > deadline:
                raise StepFailed(f"restore: {self.unit} still replays WAL after 600 s (see its log)")
            time.sleep(0.5)
        rows, _ = self.checksum()
        newest = self.sql("SELECT coalesce(max(created)::text, 'none') FROM todo")
        self.supervisorctl("start")
        print(f"restore: done in {time.monotonic() - started:.1f} s: {rows} todos, the newest created {newest}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See the module docstring.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    now = commands.add_parser("now", allow_abbrev=False)
    now.add_argument("--type", choices=["full", "diff", "incr"], default="full")
    commands.add_parser("list", allow_abbrev=False)
    status = commands.add_parser("status", allow_abbrev=False)
    status.add_argument("--json", action="store_true", help="one JSON object (no lock taken: it only reads)")
    commands.add_parser("verify", allow_abbrev=False)
    restore = commands.add_parser("restore", allow_abbrev=False)
    restore.add_argument("--time", help="'YYYY-MM-DD HH:MM:SS+00': recover up to this moment")
    restore.add_argument("--yes", action="store_true", help="really: the database goes back in time")
    opts = parser.parse_args(argv)
    if not require_root(f"{NAME}-backup"):
        return 2
    if opts.command == "restore" and not opts.yes:
        print(f"{NAME}-backup: restore replaces the database: add --yes", file=sys.stderr)
        return 2
    if opts.command == "restore" and opts.time:
        try:
            if datetime.fromisoformat(opts.time).tzinfo is None:
                raise ValueError("no time zone")
        except ValueError:
            print(f"{NAME}-backup: --time {opts.time!r}: expected 'YYYY-MM-DD HH:MM:SS+00'", file=sys.stderr)
            return 2
    backups = Backups(read_settings(NAME, "backup"))
    if opts.command == "status" and opts.json:
        try:
            return backups.status(as_json=True)
        except StepFailed as error:
            print(f"{NAME}-backup: {error}", file=sys.stderr)
            return 1
    # The release lock: no release, rollback or other backup command meanwhile.
    lock = take_lock(RELEASE_LOCK.format(app=NAME))  # held until the process ends
    if lock is None:
        print(f"{NAME}-backup: a release or backup command is running; try again when it is done", file=sys.stderr)
        return 2
    try:
        if opts.command == "now":
            backups.now(opts.type)
        elif opts.command == "list":
            backups.list()
        elif opts.command == "status":
            return backups.status()
        elif opts.command == "verify":
            backups.verify()
        else:
            backups.restore(opts.time)
    except StepFailed as error:
        print(f"{NAME}-backup: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
