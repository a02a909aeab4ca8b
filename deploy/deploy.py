"""Converge a Debian 12 host to the todo stack: nginx -> gunicorn (supervisor) -> PostgreSQL.

Run through scripts/provision (``pyinfra INVENTORY deploy/deploy.py``). Every step is
"ensure X"; services reload only when something they depend on changed, so a second
run reports no changes. Settings and their defaults: deploy/settings.py. pyinfra runs
from the repo root (scripts/provision), which it puts on sys.path for `deploy.*`.
"""

import io
import json

from pyinfra import host
from pyinfra.facts.files import File, Link
from pyinfra.operations import apt, files, git, postgres, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import CpuCount, FirewallLoaded, LoginUser
from deploy.settings import server_names, setting, subject_alt_names, workers_per_instance

APP = setting("app_name")
INSTANCES = int(setting("instances"))
SRV, ETC, LOG = f"/srv/{APP}", f"/etc/{APP}", f"/var/log/{APP}"
ENV_FILE = f"{ETC}/{APP}.env"
RELEASE_TOOL = f"/usr/local/sbin/{APP}-release"
DEPLOY_GROUP = f"{APP}-deploy"
GIT_DIR = f"{SRV}/deploy.git"
PG_CONF = f"/etc/postgresql/{setting('postgresql_version')}/main"
TLS_DIR = f"/etc/ssl/{APP}"
TLS_CERT, TLS_KEY = f"{TLS_DIR}/{APP}.crt", f"{TLS_DIR}/{APP}.key"
TEMPLATE_DATA = {
    "app_name": APP,
    "instances": INSTANCES,
    "workers": workers_per_instance(host.get_fact(CpuCount)),
    "server_names": server_names(),
    "max_body_bytes": int(setting("max_body_bytes")),
    "deploy_branch": setting("deploy_branch"),
    "deploy_group": DEPLOY_GROUP,
    "release_tool": RELEASE_TOOL,
    "tls_certificate": TLS_CERT,
    "tls_certificate_key": TLS_KEY,
    "post_rate_per_second": int(setting("post_rate_per_second")),
    "post_burst": int(setting("post_burst")),
    "rate_limit_exempt": list(setting("rate_limit_exempt")),
    "firewall_tcp_ports": [int(port) for port in setting("firewall_tcp_ports")],
}


def config_file(name, src, dest, mode, then, then_name, **template_data):
    """Ensure ``dest`` from ``src`` (a Jinja2 template when ``template_data`` is given), and run
    the shell command ``then`` (a check or an apply; it must fail on a bad file) only when the
    file changed. Returns the file operation, for follow-ups such as a reload."""
    put = files.template if template_data else files.put
    config = put(name=name, src=src, dest=dest, mode=mode, **template_data)
    server.shell(name=then_name, commands=[then], _if=config.did_change)
    return config


# --- Packages -----------------------------------------------------------------------------------

files.put(
    name="Ensure apt waits for the dpkg lock (an unattended upgrade may hold it).",
    src="hardening/90lock-timeout",
    dest="/etc/apt/apt.conf.d/90todo-lock-timeout",
    mode="644",
)
apt.packages(
    name="Ensure nginx, supervisor, PostgreSQL, Python and the release tool's needs are installed.",
    packages=["nginx", "supervisor", "postgresql", "python3-venv", "libpq5", "ca-certificates"]
    + ["git", "sudo", "iproute2", "openssl", "nftables", "unattended-upgrades"],
    no_recommends=True,
    update=True,
    cache_time=3600,
)

# --- Host hardening (README, "Security") ---------------------------------------------------------

SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-todo-hardening.conf"
sshd = config_file(
    "Ensure the SSH hardening drop-in (keys only, no root, no forwarding, strong algorithms).",
    "hardening/sshd.conf",
    SSHD_DROPIN,
    "600",
    then=f"sshd -t || {{ rm -f {SSHD_DROPIN}; exit 1; }}",
    then_name="Validate sshd's configuration (sshd -t); remove the drop-in again if it is refused.",
)
systemd.service(
    name="Reload sshd: its configuration changed and is valid.", service="ssh", reloaded=True, _if=sshd.did_change
)
files.file(name="Ensure sshd_config is root-only (dev-sec sshd-02).", path="/etc/ssh/sshd_config", mode="600")

config_file(
    "Ensure the network sysctl hardening (dev-sec linux-baseline).",
    "hardening/sysctl.conf",
    "/etc/sysctl.d/90-todo-hardening.conf",
    "644",
    then="sysctl -q -p /etc/sysctl.d/90-todo-hardening.conf",
    then_name="Apply the network sysctl hardening.",
)

firewall = config_file(
    "Ensure the firewall rules (nftables: inbound SSH, HTTP, HTTPS only).",
    "hardening/nftables.conf.j2",
    "/etc/nftables.conf",
    "755",
    then="nft -c -f /etc/nftables.conf",
    then_name="Validate the firewall rules (nft -c).",
    **TEMPLATE_DATA,
)
systemd.service(
    name="Load the firewall rules: they changed (or were flushed) and are valid.",
    service="nftables",
    running=True,
    reloaded=True,
    # Also when the rules were flushed by hand: the file alone does not show that drift.
    _if=lambda: firewall.did_change() or not host.get_fact(FirewallLoaded),
)
systemd.service(name="Ensure the firewall is loaded at boot.", service="nftables", running=True, enabled=True)

files.put(
    name="Ensure security updates are installed every day (unattended-upgrades).",
    src="hardening/20auto-upgrades",
    dest="/etc/apt/apt.conf.d/20auto-upgrades",
    mode="644",
)
for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
    systemd.service(name=f"Ensure {timer} is enabled.", service=timer, running=True, enabled=True)

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
    (f"/var/cache/{APP}", "root", "root", "700"),
]:
    files.directory(name=f"Ensure {path} exists.", path=path, user=owner, group=group, mode=mode)

config_file(
    f"Ensure /run/{APP} is recreated at boot (tmpfiles.d).",
    "systemd/tmpfiles.d/todo.conf.j2",
    f"/etc/tmpfiles.d/{APP}.conf",
    "644",
    then=f"systemd-tmpfiles --create /etc/tmpfiles.d/{APP}.conf",
    then_name=f"Create /run/{APP} now.",
    **TEMPLATE_DATA,
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

# --- Releases: the tool, its settings, the push repository -------------------------------------

files.put(
    name=f"Ensure the release tool {RELEASE_TOOL}.",
    src="deploy/server/release.py",
    dest=RELEASE_TOOL,
    mode="755",
)
RELEASE_SETTINGS = ("app_name", "instances", "keep_releases", "health_timeout", "drain_timeout", "deploy_branch")
release_settings = {key: setting(key) for key in RELEASE_SETTINGS}
files.put(
    name=f"Ensure the release settings {ETC}/release.json.",
    src=io.StringIO(json.dumps(release_settings, indent=1, sort_keys=True) + "\n"),
    dest=f"{ETC}/release.json",
    mode="644",
)
server.group(name=f"Ensure the {DEPLOY_GROUP} group (may push releases) exists.", group=DEPLOY_GROUP, system=True)
login_user = host.get_fact(LoginUser)
if login_user != "root":
    server.user(
        name=f"Ensure the login user {login_user} may push releases ({DEPLOY_GROUP}).",
        user=login_user,
        groups=[DEPLOY_GROUP],
        append=True,
        ensure_home=False,
    )
config_file(
    f"Ensure {DEPLOY_GROUP} may run the release tool as root (sudoers).",
    "deploy/templates/sudoers.j2",
    f"/etc/sudoers.d/{DEPLOY_GROUP}",
    "440",
    then="visudo -cq",
    then_name="Validate sudoers (visudo -c).",
    **TEMPLATE_DATA,
)
server.shell(
    name=f"Ensure the push repository {GIT_DIR} exists (bare, shared with {DEPLOY_GROUP}).",
    commands=[
        f"git init --quiet --bare --shared=group --initial-branch={setting('deploy_branch')} {GIT_DIR} "
        # Releases may go back to an older commit; deleting the branch is refused (the hook says why).
        f"&& git -C {GIT_DIR} config receive.denyNonFastForwards false "
        f"&& git -C {GIT_DIR} config receive.denyDeletes true "
        f"&& chgrp -R {DEPLOY_GROUP} {GIT_DIR} && chmod -R g+rwX {GIT_DIR} "
        f"&& find {GIT_DIR} -type d -exec chmod g+s {{}} +"
    ],
    _if=lambda: host.get_fact(File, path=f"{GIT_DIR}/HEAD") is None,
)
git.config(
    name=f"Ensure git trusts {GIT_DIR} for every deployer (safe.directory).",
    key="safe.directory",
    value=GIT_DIR,
    multi_value=True,
    system=True,
)
files.template(
    name="Ensure the push repository's pre-receive hook (a push releases).",
    src="deploy/templates/pre-receive.j2",
    dest=f"{GIT_DIR}/hooks/pre-receive",
    mode="755",
    **TEMPLATE_DATA,
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

# --- nginx --------------------------------------------------------------------------------------

if bool(setting("tls_certificate")) != bool(setting("tls_certificate_key")):
    raise ValueError("inventory: set tls_certificate and tls_certificate_key together, or neither (self-signed)")
files.directory(name=f"Ensure {TLS_DIR} exists.", path=TLS_DIR, user="root", group="root", mode="755")
if setting("tls_certificate"):
    tls_files = [
        files.put(name=f"Ensure the operator's TLS {what}.", src=setting(key), dest=dest, mode=mode)
        for what, key, dest, mode in [
            ("certificate", "tls_certificate", TLS_CERT, "644"),
            ("key (root 0600)", "tls_certificate_key", TLS_KEY, "600"),
        ]
    ]
else:
    names = TEMPLATE_DATA["server_names"]
    tls_files = [
        server.shell(
            name="Generate a self-signed TLS certificate (ECDSA P-256, 825 days) for the server names, once.",
            commands=[
                f"umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 "
                f"-subj '/CN={names[0]}' -addext 'subjectAltName={subject_alt_names(names)}' "
                f"-keyout {TLS_KEY} -out {TLS_CERT} 2>/dev/null && chmod 644 {TLS_CERT}"
            ],
            _if=lambda: host.get_fact(File, path=TLS_KEY) is None,
        )
    ]

nginx_files = [
    *tls_files,
    files.put(name="Ensure /etc/nginx/nginx.conf.", src="nginx/nginx.conf", dest="/etc/nginx/nginx.conf", mode="644"),
    *(
        files.put(
            name=f"Ensure nginx snippet {snippet}.",
            src=f"nginx/snippets/todo/{snippet}",
            dest=f"/etc/nginx/snippets/todo/{snippet}",
            mode="644",
        )
        for snippet in ("gzip.conf", "proxy.conf", "tls.conf", "security-headers.conf")
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

# --- supervisor and gunicorn --------------------------------------------------------------------

program = files.template(
    name=f"Ensure the supervisor programs {APP}-0..{INSTANCES - 1} (one per gunicorn instance).",
    src="supervisor/conf.d/todo.conf.j2",
    dest=f"/etc/supervisor/conf.d/{APP}.conf",
    mode="644",
    **TEMPLATE_DATA,
)
systemd.service(name="Ensure supervisor is running and enabled.", service="supervisor", running=True, enabled=True)
server.shell(
    name="Roll the instances onto the changed program config, one at a time; drop removed instances.",
    # Before the first release there is nothing to roll: the release adds the programs.
    commands=[f"{RELEASE_TOOL} restart", "supervisorctl update"],
    _if=lambda: program.did_change() and host.get_fact(Link, path=f"{SRV}/current") is not None,
)
