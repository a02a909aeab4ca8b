"""PostgreSQL: who may connect, the app's role and database, and self-healing of the server."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import postgres, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import PostgresValue
from deploy.operations import config_files, dropin


@deploy("PostgreSQL")
def postgresql(s, secrets):
    """Ensure PostgreSQL runs (restarted on failure), and the app's role and database with its password."""
    app = s["app_name"]
    dropin("postgresql@.service", s)
    systemd.service(name="Ensure PostgreSQL is running and enabled.", service="postgresql", running=True, enabled=True)
    pg_hba = config_files(
        name="Ensure pg_hba.conf lets only the app's role in, with scram-sha-256.",
        files=[("postgresql/pg_hba.conf.j2", f"{s['pg_conf']}/pg_hba.conf", "640", s)],
        # The server reads pg_hba.conf only on a reload, and pg_hba_file_rules parses the file on
        # disk: swapped in, checked there, and the previous file put back if any line has an error.
        check='[ "$(runuser -u postgres -- psql -Atc '
        "'SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL')\" = 0 ]",
        user="postgres",
        group="postgres",
    )
    systemd.service(
        name="Reload PostgreSQL: pg_hba.conf changed.", service="postgresql", reloaded=True, _if=pg_hba.did_change
    )
    role = postgres.role(
        name=f"Ensure the {app} role exists (no superuser, no createdb, no createrole).",
        role=app,
        login=True,
        _sudo=True,  # also when logged in as root (first contact), which has no sudo of its own
        _sudo_user="postgres",
    )
    postgres.database(
        name=f"Ensure the {app} database exists, owned by {app}.",
        database=app,
        owner=app,
        encoding="UTF8",
        _sudo=True,  # also when logged in as root (first contact), which has no sudo of its own
        _sudo_user="postgres",
    )
    # The second login role a password rotation switches to (scripts/secrets): it acts as the app's
    # role (SET role), so what it creates belongs to that role; no password until a rotation gives it one.
    postgres.role(
        name=f"Ensure the {app}_b login role exists (member of {app}, acts as {app}).",
        role=f"{app}_b",
        login=True,
        _sudo=True,  # also when logged in as root (first contact), which has no sudo of its own
        _sudo_user="postgres",
    )
    acts_as_app = (
        f"SELECT pg_has_role('{app}_b', '{app}', 'MEMBER'), array_to_string((SELECT setconfig FROM "
        f"pg_db_role_setting WHERE setrole = '{app}_b'::regrole AND setdatabase = 0), ',')"
    )
    server.shell(
        name=f"Ensure {app}_b is a member of {app} and acts as it.",
        commands=[
            f"runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d {app} "
            f"-c 'GRANT {app} TO {app}_b' -c \"ALTER ROLE {app}_b SET role = '{app}'\""
        ],
        # The membership and the setting themselves, not only the role's creation: a run that
        # stopped between the two steps is repaired by the next one.
        _if=lambda: host.get_fact(PostgresValue, database=app, sql=acts_as_app) != f"t|role={app}",
    )
    server.shell(
        name=f"Set the password of the login role in {s['env_file']} ({app}, or {app}_b after a rotation).",
        # printf is a shell builtin: the password never appears in a process's arguments.
        commands=[
            f". {s['env_file']} && printf \"ALTER ROLE %s WITH LOGIN PASSWORD '%s';\\n\" "
            f'"${{TODO_DATABASE_USER:-{app}}}" "$TODO_DATABASE_PASSWORD" '
            "| runuser -u postgres -- psql -q -v ON_ERROR_STOP=1"
        ],
        _if=any_changed(secrets, role),
    )
