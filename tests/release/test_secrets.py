"""Secrets rotate with no failed request (scripts/secrets), under the releases' bounded load."""

import re
import subprocess
import uuid

import pytest

from tests.conftest import REPO
from tests.helpers import csrf_token, instance_pids, new_session, query, stored
from tests.load import Load
from tests.release.test_release import assert_clean

pytestmark = pytest.mark.destructive


def rotate(secret):
    """Run scripts/secrets rotate SECRET against the local machine; return the CompletedProcess."""
    return subprocess.run([str(REPO / "scripts/secrets"), "rotate", secret], capture_output=True, text=True)


def secrets_file(host, app_name):
    """/etc/<app>/<app>.env as {KEY: value}."""
    text = host.check_output(f"cat /etc/{app_name}/{app_name}.env")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_secret_key_rotation_under_load_keeps_sessions_and_forms_from_before(
    host, machine_address, app_name, instances, report
):
    """No request fails while the key rotates, and a form loaded before it still posts afterwards."""
    before, pids = secrets_file(host, app_name), instance_pids(host, instances)
    user = new_session(machine_address)
    token = csrf_token(user)  # a page loaded before the rotation, posted after it
    with Load(machine_address) as load:
        rotated = rotate("secret-key")
    report("secret-key rotation under load", load.summary())
    assert rotated.returncode == 0, rotated.stdout[-2000:] + rotated.stderr[-2000:]
    assert_clean(load, host)
    after = secrets_file(host, app_name)
    assert after["SECRET_KEY"] != before["SECRET_KEY"]
    assert after["SECRET_KEY_FALLBACKS"] == before["SECRET_KEY"]
    assert all(instance_pids(host, instances)[i] != pids[i] for i in instances), "every instance reads the new key"
    text = f"rotation-{uuid.uuid4().hex[:8]}"
    posted = user.post(
        f"{user.base}/todos", data={"text": text, "csrf_token": token}, allow_redirects=False, timeout=10
    )
    assert posted.status_code == 303, posted.text[:300]
    assert stored(host, text) == 1


def test_database_password_rotation_under_load_never_uses_a_rejected_password(
    host, machine_address, app_name, instances, report
):
    """Twice (to the second login role and back): no failed request, no rejected login in
    PostgreSQL's log, and the role left behind can no longer log in."""
    log = "/var/log/postgresql/postgresql-15-main.log"
    for _ in range(2):
        before = secrets_file(host, app_name)
        old_user, lines = before.get("DATABASE_USER", app_name), int(host.check_output(f"wc -l < {log}"))
        # postgres's DDL logged meanwhile: what pg_monitor sees in pg_stat_activity, kept.
        host.check_output("runuser -u postgres -- psql -qc \"ALTER ROLE postgres SET log_statement = 'ddl'\"")
        try:
            with Load(machine_address) as load:
                rotated = rotate("database-password")
        finally:
            host.check_output("runuser -u postgres -- psql -qc 'ALTER ROLE postgres RESET log_statement'")
        report("database-password rotation under load", load.summary())
        assert rotated.returncode == 0, rotated.stdout[-2000:] + rotated.stderr[-2000:]
        assert_clean(load, host)
        after = secrets_file(host, app_name)
        new_user = after["DATABASE_USER"]
        assert new_user != old_user and after["DATABASE_PASSWORD"] != before["DATABASE_PASSWORD"]
        logged = host.check_output(f"tail -n +{lines + 1} {log}")
        assert not re.search(r"password authentication failed", logged), logged[-2000:]
        assert "SCRAM-SHA-256$4096:" in logged, "the ALTER ROLE was not logged: the next check proves nothing"
        assert after["DATABASE_PASSWORD"] not in logged, "the password reached PostgreSQL's log"
        rejected = host.run(
            f"PGPASSWORD={before['DATABASE_PASSWORD']} psql -w -h /var/run/postgresql -U {old_user} -d {app_name} "
            "-Atc 'SELECT 1'"
        )
        assert rejected.rc != 0 and "password" in rejected.stderr, "the old login still works"
        assert query(host, "SELECT tableowner FROM pg_tables WHERE tablename='todo'") == app_name
