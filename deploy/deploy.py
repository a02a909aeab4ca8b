"""Converge a Debian 12 host to the todo stack: nginx -> gunicorn (supervisor) -> PostgreSQL.

Run through scripts/provision (``pyinfra INVENTORY deploy/deploy.py``). Every step is
"ensure X"; services reload only when something they depend on changed, so a second
run reports no changes. Settings and their defaults: deploy/settings.py. pyinfra runs
from the repo root (scripts/provision), which it puts on sys.path for `deploy.*`.
"""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, postgres, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import AppliedMigrations, CpuCount, SymlinkTarget
from deploy.settings import migration_ids, release_id, server_names, setting, workers_per_instance

APP = setting("app_name")
INSTANCES = int(setting("instances"))
SRV, ETC, LOG = f"/srv/{APP}", f"/etc/{APP}", f"/var/log/{APP}"
ENV_FILE = f"{ETC}/{APP}.env"
RELEASE = release_id()
RELEASE_DIR = f"{SRV}/releases/{RELEASE}"
PG_CONF = f"/etc/postgresql/{setting('postgresql_version')}/main"
TEMPLATE_DATA = {
    "app_name": APP,
    "instances": INSTANCES,
    "workers": workers_per_instance(host.get_fact(CpuCount)),
    "server_names": server_names(),
    "max_body_bytes": int(setting("max_body_bytes")),
}

# --- Packages -----------------------------------------------------------------------------------

apt.packages(
    name="Ensure nginx, supervisor, PostgreSQL and Python are installed.",
    packages=["nginx", "supervisor", "postgresql", "python3-venv", "libpq5", "ca-certificates"],
    no_recommends=True,
    update=True,
    cache_time=3600,
)

# --- The app's user and directories -------------------------------------------------------------

server.group(name=f"Ensure the {APP} group exists.", group=APP, system=True)
server.user(
    name=f"Ensure the {APP} system user exists.",
    user=APP,
    group=APP,
    # Member of nginx's group only to hand its sockets to that group (gunicorn.conf.py, when_ready).
    groups=["www-data"],
    home=SRV,
    shell="/usr/sbin/nologin",
    system=True,
    ensure_home=False,
)
for path, owner, group, mode in [
    (SRV, "root", "root", "755"),
    (f"{SRV}/releases", "root", "root", "755"),
    (ETC, "root", APP, "750"),
    (LOG, "root", APP, "750"),
]:
    files.directory(name=f"Ensure {path} exists.", path=path, user=owner, group=group, mode=mode)

tmpfiles = files.template(
    name=f"Ensure /run/{APP} is recreated at boot (tmpfiles.d).",
    src="systemd/tmpfiles.d/todo.conf.j2",
    dest=f"/etc/tmpfiles.d/{APP}.conf",
    mode="644",
    **TEMPLATE_DATA,
)
server.shell(
    name=f"Create /run/{APP} now.",
    commands=[f"systemd-tmpfiles --create /etc/tmpfiles.d/{APP}.conf"],
    _if=tmpfiles.did_change,
)

# --- Secrets, generated on the server once ------------------------------------------------------

secrets = server.shell(
    name=f"Ensure {ENV_FILE} holds the secrets (generated once, root:{APP} 0640).",
    commands=[
        f"umask 027; rand() {{ od -An -tx1 -N\"$1\" /dev/urandom | tr -d ' \\n'; }}; "
        f'printf \'TODO_SECRET_KEY=%s\\nTODO_DATABASE_PASSWORD=%s\\n\' "$(rand 32)" "$(rand 24)" > {ENV_FILE}.new '
        f"&& chown root:{APP} {ENV_FILE}.new && chmod 0640 {ENV_FILE}.new && mv {ENV_FILE}.new {ENV_FILE}"
    ],
    _if=lambda: host.get_fact(File, path=ENV_FILE) is None,
)

# --- PostgreSQL ---------------------------------------------------------------------------------

pg_hba = files.template(
    name="Ensure pg_hba.conf lets only the app's role in, with scram-sha-256.",
    src="deploy/templates/pg_hba.conf.j2",
    dest=f"{PG_CONF}/pg_hba.conf",
    user="postgres",
    group="postgres",
    mode="640",
    **TEMPLATE_DATA,
)
systemd.service(
    name="Ensure PostgreSQL is running and enabled.",
    service="postgresql",
    running=True,
    enabled=True,
)
systemd.service(
    name="Reload PostgreSQL: pg_hba.conf changed.",
    service="postgresql",
    reloaded=True,
    _if=pg_hba.did_change,
)
role = postgres.role(
    name=f"Ensure the {APP} role exists (no superuser, no createdb, no createrole).",
    role=APP,
    login=True,
    _sudo_user="postgres",
)
postgres.database(
    name=f"Ensure the {APP} database exists, owned by {APP}.",
    database=APP,
    owner=APP,
    encoding="UTF8",
    _sudo_user="postgres",
)
server.shell(
    name=f"Set the {APP} role's password from {ENV_FILE}.",
    # printf is a shell builtin: the password never appears in a process's arguments.
    commands=[
        f'. {ENV_FILE} && printf "ALTER ROLE {APP} WITH LOGIN PASSWORD \'%s\';\\n" "$TODO_DATABASE_PASSWORD" '
        "| runuser -u postgres -- psql -q -v ON_ERROR_STOP=1"
    ],
    _if=any_changed(secrets, role),
)

# --- The release --------------------------------------------------------------------------------

files.sync(
    name=f"Ensure release {RELEASE} has the app's files.",
    src="app",
    dest=RELEASE_DIR,
    user="root",
    group="root",
    exclude=["*.pyc"],
    exclude_dir=["__pycache__"],
)
build = server.shell(
    name=f"Build release {RELEASE}: virtualenv from hash-pinned requirements, gzip static files, check it.",
    commands=[
        f"cd {RELEASE_DIR} && rm -rf venv && python3 -m venv venv "
        "&& PIP_CERT=/etc/ssl/certs/ca-certificates.crt venv/bin/pip install --quiet --no-cache-dir "
        "--disable-pip-version-check --no-deps --require-hashes -r requirements.txt "
        f"&& find {APP}/static -type f \\( -name '*.css' -o -name '*.js' -o -name '*.svg' \\) "
        "-exec gzip -9 -k -n -f {} + "
        f"&& runuser -u {APP} -- venv/bin/gunicorn --check-config --config gunicorn.conf.py "
        "&& touch .built"
    ],
    _if=lambda: host.get_fact(File, path=f"{RELEASE_DIR}/.built") is None,
)
server.shell(
    name="Apply pending database migrations (yoyo).",
    commands=[
        f"cd {RELEASE_DIR} && runuser -u {APP} -- sh -c '. {ENV_FILE} && PGPASSWORD=$TODO_DATABASE_PASSWORD "
        f"exec venv/bin/yoyo apply --batch --no-config-file "
        f'--database "postgresql+psycopg://{APP}@/{APP}?host=/var/run/postgresql" migrations\''
    ],
    _if=lambda: host.get_fact(AppliedMigrations, database=APP) != migration_ids(),
)
switch = server.shell(
    name=f"Switch {SRV}/current to release {RELEASE} (atomic rename).",
    commands=[f"ln -sfn releases/{RELEASE} {SRV}/current.new && mv -T {SRV}/current.new {SRV}/current"],
    _if=lambda: host.get_fact(SymlinkTarget, path=f"{SRV}/current") != f"releases/{RELEASE}",
)

# --- systemd ------------------------------------------------------------------------------------

# Drop-ins only where the stock Debian units need them (each file says why).
dropins = [
    files.put(
        name=f"Ensure the systemd drop-in for {unit}.",
        src=f"systemd/{unit}.d/todo.conf",
        dest=f"/etc/systemd/system/{unit}.d/{APP}.conf",
        mode="644",
    )
    for unit in ("supervisor.service", "nginx.service", "postgresql@.service")
]
systemd.daemon_reload(name="Reload systemd units.", _if=any_changed(*dropins))

# --- supervisor and gunicorn --------------------------------------------------------------------

program = files.template(
    name=f"Ensure the supervisor program {APP} ({INSTANCES} gunicorn instances).",
    src="supervisor/conf.d/todo.conf.j2",
    dest=f"/etc/supervisor/conf.d/{APP}.conf",
    mode="644",
    **TEMPLATE_DATA,
)
systemd.service(name="Ensure supervisor is running and enabled.", service="supervisor", running=True, enabled=True)
server.shell(
    name=f"Apply the changed supervisor program {APP} (reread, update).",
    commands=["supervisorctl reread", f"supervisorctl update {APP}"],
    _if=program.did_change,
)


def health_check(n):
    """Shell command: wait (health_timeout seconds) until instance ``n`` answers /healthz on its socket."""
    return (
        f"cd {SRV}/current && venv/bin/python -m {APP}.healthcheck /run/{APP}/{APP}-{n}.sock "
        f"--timeout {setting('health_timeout')}"
    )


server.shell(
    name="Restart the gunicorn instances one at a time, each healthy before the next.",
    commands=[f"supervisorctl restart {APP}:{APP}-{n} && {health_check(n)}" for n in range(INSTANCES)],
    _if=lambda: (switch.did_change() or build.did_change()) and not program.did_change(),
)
server.shell(
    name="Check every gunicorn instance answers its health check.",
    commands=[health_check(n) for n in range(INSTANCES)],
    _if=any_changed(program, switch, build),
)

# --- nginx --------------------------------------------------------------------------------------

nginx_files = [
    files.put(name="Ensure /etc/nginx/nginx.conf.", src="nginx/nginx.conf", dest="/etc/nginx/nginx.conf", mode="644"),
    *(
        files.put(
            name=f"Ensure nginx snippet {snippet}.",
            src=f"nginx/snippets/todo/{snippet}",
            dest=f"/etc/nginx/snippets/todo/{snippet}",
            mode="644",
        )
        for snippet in ("gzip.conf", "proxy.conf")
    ),
    files.template(
        name=f"Ensure the nginx site {APP}.",
        src="nginx/sites-available/todo.conf.j2",
        dest=f"/etc/nginx/sites-available/{APP}.conf",
        mode="644",
        **TEMPLATE_DATA,
    ),
    files.link(
        name=f"Ensure the nginx site {APP} is enabled.",
        path=f"/etc/nginx/sites-enabled/{APP}.conf",
        target=f"/etc/nginx/sites-available/{APP}.conf",
    ),
    files.link(
        name="Ensure the stock default site is disabled.", path="/etc/nginx/sites-enabled/default", present=False
    ),
]
nginx_changed = any_changed(*nginx_files)
server.shell(name="Validate the nginx configuration (nginx -t).", commands=["nginx -t -q"], _if=nginx_changed)
systemd.service(
    name="Reload nginx: its configuration changed and is valid.",
    service="nginx",
    running=True,
    reloaded=True,
    _if=nginx_changed,
)
systemd.service(name="Ensure nginx is running and enabled.", service="nginx", running=True, enabled=True)
