"""The database on its own host: the app hosts' instances write to PostgreSQL on the database host
over TLS, verified against that host's pinned certificate (sslmode=verify-full); the database host
admits the app hosts only, and its backups go to the backup host. A second provision of the five
machines changes nothing."""

import json
import shlex

import pytest

import tests.host.test_idempotence as idempotence
from tests.cluster.conftest import ADDRESSES, APP_HOSTS, BACKUP_ADDRESS, DB_ADDRESS, INVENTORY, LB, run
from tests.helpers import (
    LOAD_GENERATOR,
    NOT_CONNECTED,
    OTHER_CLIENT,
    add_todo,
    connect,
    connects,
    forget_added,
    in_cgroup,
    new_session,
    query,
)


def app_connect(host, **params):
    """On the app host, with the release's psycopg (Debian's libpq), a connection to the database
    host with the app's password (PGPASSWORD, from the secrets file) and ``params`` (libpq
    keywords); (exit status, output)."""
    conninfo = " ".join(f"{k}={v}" for k, v in {"host": DB_ADDRESS, "dbname": "todo", "user": "todo", **params}.items())
    script = f"import psycopg; psycopg.connect({conninfo!r}, connect_timeout=5).execute('SELECT 1'); print('connected')"
    done = host.run("set -a; . /etc/todo/todo.env; set +a; export PGPASSWORD=$DATABASE_PASSWORD; "
                    f"/srv/todo/current/venv/bin/python -c {shlex.quote(script)}")  # fmt: skip
    return done.rc, done.stdout + done.stderr


def test_a_todo_added_through_the_load_balancer_is_stored_on_the_database_host(lb, apps, db_host):
    text = add_todo(new_session(LB))
    try:
        assert query(db_host, f"SELECT count(*) FROM todo WHERE text = '{text}'") == "1"
    finally:
        forget_added(db_host, "todo")
    for h in (lb, *apps.values()):  # nothing answers from the load balancer or an app host itself
        assert not h.package("postgresql-15").is_installed


@pytest.mark.parametrize("app", APP_HOSTS)
def test_the_instances_connect_over_tls_that_checks_the_database_hosts_certificate(apps, db_host, app):
    host = apps[app]
    rows = query(db_host, "SELECT a.client_addr, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                             "WHERE a.usename IN ('todo', 'todo_b')")  # fmt: skip
    clients = {row.split("|")[0] for row in rows.splitlines()}
    assert clients == {ADDRESSES[name] for name in APP_HOSTS}, rows
    assert all(row.endswith("|t") for row in rows.splitlines()), rows
    # What an instance connects with: libpq's variables in its environment (launch.py gives them), read
    # from its gunicorn master; those alone (its environment holds its secrets too).
    pid = host.check_output("supervisorctl pid todo-0")
    libpq = host.check_output(
        f"tr '\\0' '\\n' < /proc/{pid}/environ | grep -E '^PG(HOST|SSLMODE|SSLROOTCERT)=' || true"
    )
    assert sorted(libpq.split()) == [f"PGHOST={DB_ADDRESS}", "PGSSLMODE=verify-full",
                                     "PGSSLROOTCERT=/etc/todo/db-server.crt"], libpq  # fmt: skip
    code, out = app_connect(host, sslmode="verify-full", sslrootcert="/etc/todo/db-server.crt")
    assert code == 0 and "connected" in out, out
    # The check is real: another CA's bundle does not vouch for the database host.
    code, out = app_connect(host, sslmode="verify-full", sslrootcert="/etc/ssl/certs/ca-certificates.crt")
    assert code != 0 and "certificate verify failed" in out, out
    # And no plaintext: pg_hba.conf has hostssl lines only for the app host.
    code, out = app_connect(host, sslmode="disable")
    assert code != 0 and "no pg_hba.conf entry" in out, out


def test_the_database_host_admits_the_app_hosts_only(lb, db_host, backup_host):
    listening = db_host.run("ss -Htln sport = :5432 | awk '{print $4}'").stdout.split()
    assert sorted(listening) == sorted(["127.0.0.1:5432", "[::1]:5432", f"{DB_ADDRESS}:5432"]), listening
    for source in (LOAD_GENERATOR, OTHER_CLIENT):
        assert not connects(5432, source=source, address=DB_ADDRESS), f"{source} reached PostgreSQL"
    for name, other in (("backup host", backup_host), ("load balancer", lb)):
        probe = other.run(f"timeout 4 bash -c '</dev/tcp/{DB_ADDRESS}/5432'")
        assert probe.rc != 0, f"the {name} reached PostgreSQL"
    assert not connects(80, source=LOAD_GENERATOR, address=DB_ADDRESS)  # no web server there


def test_the_database_hosts_backups_go_to_the_backup_host(db_host):
    done = db_host.run("/usr/local/sbin/todo-backup status --json")
    found = json.loads(done.stdout)
    assert done.rc == 0 and found["same_disk"] is False and BACKUP_ADDRESS in found["repository"], found


@pytest.mark.destructive
def test_a_second_provision_of_the_cluster_changes_nothing():
    code, out = run("scripts/provision", INVENTORY)
    assert "[app2]" in out and "[lb]" in out, out[-3000:]
    assert code == 0, out[-3000:]
    assert idempotence.grand_total(out)[1] == 0, out[-3000:]


@pytest.mark.parametrize("app", APP_HOSTS)
def test_the_instances_cgroup_reaches_the_database_host_and_nothing_else(apps, app):
    """From inside supervisor's cgroup on an app host (the instances'), the kernel's IP filter admits
    the database host (IPAddressAllow=) and refuses another host that answers from outside it."""
    host = apps[app]
    assert in_cgroup(host, "supervisor.service", connect(DB_ADDRESS, 5432)) == 0
    assert host.run(connect(LB, 443)).rc == 0, "the lb does not answer the app host: no proof"
    assert in_cgroup(host, "supervisor.service", connect(LB, 443)) == NOT_CONNECTED
