"""Backups with pgBackRest on the local machine (deploy/tasks/backups.py, scripts/backup): a
point-in-time restore after a disaster brings back exactly what was acknowledged before the
chosen moment, and verify proves the newest backup and fails on a damaged one. These tests
replace the database and break the repository for a moment: destructive."""

import shlex
import subprocess
import time

import pytest

from tests.conftest import REPO
from tests.helpers import add_todo, new_session, query, wait_until

pytestmark = pytest.mark.destructive


def backup(*args):
    """scripts/backup ARGS against the local machine; (exit status, output)."""
    run = subprocess.run([str(REPO / "scripts/backup"), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=REPO, timeout=900)  # fmt: skip
    return run.returncode, run.stdout


def server_now(host):
    """The server's clock, as --time takes it."""
    return host.check_output("date -u '+%Y-%m-%d %H:%M:%S+00'")


def stored(host, texts):
    """Which of ``texts`` are in the todo table (an empty set when the table is gone)."""
    listed = ",".join(f"'{text}'" for text in texts)
    return set(query(host, f"SELECT text FROM todo WHERE text IN ({listed})").split())


def test_point_in_time_restore_brings_back_what_was_acknowledged_before_the_moment(host, machine_address, report):
    """Writes before and after a backup, a moment, writes after it, then the disaster (DROP
    TABLE): restored to the moment, every todo acknowledged before it is back, none after."""
    session = new_session(machine_address)
    before_backup = [add_todo(session) for _ in range(5)]
    code, out = backup("now", "--type=diff")
    assert code == 0, out
    after_backup = [add_todo(session) for _ in range(5)]
    time.sleep(1.5)  # the moment lies strictly between the writes (the clock has whole seconds)
    moment = server_now(host)
    time.sleep(1.5)
    after_moment = [add_todo(session) for _ in range(5)]
    host.check_output("runuser -u postgres -- psql -d todo -qc 'DROP TABLE todo'")  # the disaster
    started = time.monotonic()
    code, out = backup("restore", f"--time={moment}", "--yes")
    assert code == 0, out
    wait_until(lambda: session.get(f"{session.base}/", timeout=5).status_code == 200, timeout=120)
    report("point-in-time restore, from the command to 200 again (RTO)", f"{time.monotonic() - started:.1f} s")
    assert stored(host, before_backup + after_backup) == set(before_backup + after_backup), out
    assert not stored(host, after_moment), "writes after the moment came back"
    add_todo(session)  # the restored database takes writes again


def test_verify_proves_the_newest_backup_and_fails_on_a_damaged_one(host, report):
    started = time.monotonic()
    code, out = backup("verify")
    assert code == 0 and "as live" in out, out
    report("verify (restore into a scratch cluster and compare)", f"{time.monotonic() - started:.1f} s")
    # Damage one file of the newest backup, then put it back as it was.
    newest = host.check_output("ls -d /var/lib/pgbackrest/backup/todo/2*[FDI] | tail -1")
    victim = host.check_output(f"find {newest}/pg_data -type f -size +8k | head -1")
    host.check_output(f"cp -p {victim} /root/.todo-verify-victim")
    try:
        host.check_output(f"printf 'damaged' | dd of={victim} bs=1 seek=100 conv=notrunc status=none")
        code, out = backup("verify")
        assert code != 0, out
    finally:
        host.check_output(f"mv -f /root/.todo-verify-victim {victim}")
    code, out = backup("verify")
    assert code == 0, out


def test_backup_status_has_no_warning_after_a_backup(host):
    code, out = backup("now")
    assert code == 0, out
    code, out = backup("status")
    assert code == 0 and "WARNING" not in out, out


#: What postgres plants in verify's scratch cluster once pgBackRest has restored it (pg_control
#: comes last): postgresql.conf as a symlink to a root-owned file, kept there until the scratch
#: cluster is gone (at most 600 s).
PLANTER = """
import os, sys, time
scratch, target = sys.argv[1], sys.argv[2]
planted, deadline = False, time.monotonic() + 600
while time.monotonic() < deadline:
    if not planted and os.path.exists(os.path.join(scratch, "global", "pg_control")):
        try:  # over whatever is there (a file written first): a rename, atomic
            os.symlink(target, os.path.join(scratch, ".planted"))
            os.replace(os.path.join(scratch, ".planted"), os.path.join(scratch, "postgresql.conf"))
            planted = True
            open(os.path.expanduser("~/.todo-planted"), "w").close()
        except OSError:
            pass
    elif planted and not os.path.exists(scratch):
        break
    time.sleep(0.0005)
"""


#: Where the planter says it planted (postgres's home).
PLANTED = "/var/lib/postgresql/.todo-planted"


def test_verify_never_writes_as_root_through_a_symlink_postgres_planted(host, app_name):
    """verify writes its scratch cluster's config in a directory postgres owns: a symlink postgres
    plants there must not make root rewrite (and hand to postgres) the file it points to."""
    target, scratch = "/etc/.todo-verify-probe", f"/var/lib/postgresql/15/{app_name}-verify"
    host.check_output(f"printf 'untouched\\n' > {target} && chmod 644 {target}")
    planter = host.check_output(
        f"runuser -u postgres -- python3 -c {shlex.quote(PLANTER)} {scratch} {target} >/dev/null 2>&1 & echo $!"
    )
    try:
        code, out = backup("verify")
        probe = host.file(target)
        assert (probe.user, probe.content_string) == ("root", "untouched\n"), f"root wrote through the symlink:\n{out}"
        assert host.file(PLANTED).exists, "the symlink was never planted: the test proved nothing"
        assert not host.file(scratch).exists
    finally:
        host.run(f"kill {planter}; rm -f {target} {PLANTED}")
