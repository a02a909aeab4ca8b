"""PostgreSQL: who may connect, the app's role and database, and self-healing of the server."""

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import postgres, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import Certificate, PostgresValue
from deploy.operations import config_files, dropin, peer_file

#: The check of a conf.d file: no line PostgreSQL cannot parse and no bad value (pg_file_settings);
#: "could not be applied" only means the setting waits for a restart, which the deploy does.
SETTINGS_CHECK = (
    '[ "$(runuser -u postgres -- psql -Atc "SELECT count(*) FROM pg_file_settings '
    "WHERE error IS NOT NULL AND error <> 'setting could not be applied'\")\" = 0 ]"
)

#: Prints the SCRAM-SHA-256 verifier of $DATABASE_PASSWORD, as PostgreSQL stores it
#: (RFC 5802, RFC 7677; PostgreSQL's src/common/scram-common.c: 4096 iterations, a 16-byte salt),
#: so that ALTER ROLE carries the verifier and never the password. The stack's passwords are hex:
#: SASLprep leaves them as they are.
SCRAM_VERIFIER = """
import base64, hashlib, hmac, os
password, salt, rounds = os.environ["DATABASE_PASSWORD"].encode(), os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, rounds)
client, server = (hmac.new(salted, name, "sha256").digest() for name in (b"Client Key", b"Server Key"))
b64 = lambda raw: base64.b64encode(raw).decode()
print(f"SCRAM-SHA-256${rounds}:{b64(salt)}${b64(hashlib.sha256(client).digest())}:{b64(server)}")
"""


@deploy("PostgreSQL")
def postgresql(s, secrets):
    """Ensure PostgreSQL runs (restarted on failure), and the app's role and database with its password."""
    app = s["app_name"]
    dropin("postgresql@.service", s)
    systemd.service(name="Ensure PostgreSQL is running and enabled.", service="postgresql", running=True, enabled=True)
    # TLS first: a hostssl line is an error in pg_hba_file_rules while ssl is off.
    network = network_and_tls(s) if s["db_clients"] else None
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
        name="Reload PostgreSQL: pg_hba.conf or its TLS settings changed.",
        service="postgresql",
        reloaded=True,
        _if=lambda: pg_hba.did_change() or bool(network and network.did_change()),
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
        # Only its SCRAM verifier reaches PostgreSQL: the statement is visible to pg_monitor in
        # pg_stat_activity and logged by log_statement=ddl. The password is read from the
        # environment (never a process's arguments); printf is a shell builtin.
        commands=[
            # The file's variables stay unexported (psql, as postgres, gets none of them); python3
            # alone gets the password, in its environment.
            f'. {s["env_file"]} && verifier=$(DATABASE_PASSWORD="$DATABASE_PASSWORD" '
            f"python3 -c {shlex.quote(SCRAM_VERIFIER)}) && "
            "printf \"ALTER ROLE %s WITH LOGIN PASSWORD '%s';\\n\" "
            f'"${{DATABASE_USER:-{app}}}" "$verifier" | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1'
        ],
        _if=any_changed(secrets, role),
    )


def network_and_tls(s):
    """PostgreSQL on its own host: a certificate for its private address (made here, as postgres,
    10 years: it is pinned by the app host, not trusted through a CA), the settings to listen on
    that address with TLS, and a restart when the live listen_addresses differ. Returns the
    settings' operation."""
    cert, key, address = s["pg_tls_cert"], s["pg_tls_key"], s["db_address"]
    server.shell(
        name=f"Ensure PostgreSQL's certificate for {address} ({cert}; its key postgres 0600, made here).",
        commands=[
            f"runuser -u postgres -- sh -c 'umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
            f"-nodes -days 3650 -subj /CN={address} -addext subjectAltName=IP:{address} -keyout {key} -out {cert} "
            f"2>/dev/null && chmod 644 {cert}'"
        ],
        _if=lambda: (
            host.get_fact(Certificate, path=cert) is None
            or host.get_fact(Certificate, path=cert)["names"] != [f"IP:{address}"]
        ),
    )
    network = config_files(
        name=f"Ensure PostgreSQL listens on {address} too, with TLS (pg_file_settings).",
        files=[("postgresql/network.conf.j2", f"{s['pg_conf']}/conf.d/80-{s['app_name']}-network.conf", "644", s)],
        check=SETTINGS_CHECK,
        user="postgres",
        group="postgres",
    )
    systemd.service(
        name=f"Restart PostgreSQL: it does not listen on {address} yet (listen_addresses takes effect at a start).",
        service=f"postgresql@{s['postgresql_version']}-main",
        restarted=True,
        _if=lambda: (
            host.get_fact(PostgresValue, database="postgres", sql="SHOW listen_addresses") != f"localhost,{address}"
        ),
    )
    return network


@deploy("Database client")
def database_client(s):
    """On an app host whose database is on another host: that host's certificate, pinned
    (``database_sslrootcert``, root:<app> 0644), which the app and the release tool check the
    database host against (sslmode=verify-full)."""
    peer_file(
        name=f"Ensure the database host's certificate {s['database_sslrootcert']} (pinned: verify-full).",
        peer=s["database"][0],
        src=s["pg_tls_cert"],
        dest=s["database_sslrootcert"],
        user="root",
        group=s["app_name"],
        mode="644",
    )
