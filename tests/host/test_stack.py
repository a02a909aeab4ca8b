"""The provisioned host, checked the way a tester checks a Vagrant VM (pytest-testinfra)."""

import json
import re

import pytest


@pytest.mark.parametrize("name", ["nginx", "supervisor", "postgresql-15", "python3-venv", "libpq5"])
def test_package_installed(host, name):
    assert host.package(name).is_installed


@pytest.mark.parametrize("name", ["nginx", "supervisor", "postgresql", "postgresql@15-main"])
def test_service_running_and_enabled(host, name):
    service = host.service(name)
    assert service.is_running
    if name != "postgresql@15-main":  # an instance of a template, enabled through postgresql.service
        assert service.is_enabled


@pytest.mark.parametrize(
    ("unit", "restart", "kill_mode"),
    [("nginx", "on-failure", "mixed"), ("supervisor", "on-failure", "control-group"),
     ("postgresql@15-main", "on-failure", "control-group")],
)  # fmt: skip
def test_service_restarts_on_failure(host, unit, restart, kill_mode):
    props = host.service(unit).systemd_properties
    assert (props["Restart"], props["KillMode"]) == (restart, kill_mode)
    assert props["RestartUSec"] in ("1s", "2s")


def test_app_user_is_a_system_user_without_login(host, app_name):
    user = host.user(app_name)
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == f"/srv/{app_name}"
    assert "www-data" in user.groups


def test_nginx_is_not_in_the_app_group(host, app_name):
    assert app_name not in host.user("www-data").groups


def test_gunicorn_instance_running_under_supervisor(host, instance):
    assert host.supervisor(instance).is_running


def test_gunicorn_socket_owned_by_app_and_nginx_group(host, instance, app_name):
    sock = host.file(f"/run/{app_name}/{instance}.sock")
    assert sock.is_socket
    assert (sock.user, sock.group) == (app_name, "www-data")
    assert sock.mode == 0o660


def test_gunicorn_socket_is_listening(host, instance, app_name):
    assert host.socket(f"unix:///run/{app_name}/{instance}.sock").is_listening


def test_run_dir_only_app_and_nginx_group(host, app_name):
    run_dir = host.file(f"/run/{app_name}")
    assert run_dir.is_directory
    assert (run_dir.user, run_dir.group, run_dir.mode) == (app_name, "www-data", 0o750)


def _gunicorn_masters(host):
    """gunicorn master processes: children of supervisord running gunicorn."""
    supervisord = host.process.get(comm="supervisord")
    return [p for p in host.process.filter(ppid=supervisord.pid) if "gunicorn" in p.args]


def test_one_gunicorn_master_per_instance_as_app_user(host, app_name, instances):
    masters = _gunicorn_masters(host)
    assert len(masters) == len(instances)
    assert {m.user for m in masters} == {app_name}


def test_gunicorn_workers_run_as_app_user(host, app_name):
    for master in _gunicorn_masters(host):
        workers = host.process.filter(ppid=master.pid)
        assert len(workers) >= 2
        assert {w.user for w in workers} == {app_name}


def test_nginx_workers_run_as_www_data(host):
    master = host.process.get(user="root", comm="nginx")
    workers = host.process.filter(ppid=master.pid)
    assert workers and {w.user for w in workers} == {"www-data"}


def test_only_ssh_http_https_listen_publicly_and_the_rest_on_loopback(host):
    listening = set(host.socket.get_listening_sockets())
    tcp = {s for s in listening if s.startswith("tcp://")}
    # PostgreSQL: loopback only (Debian's default listen_addresses=localhost). Prometheus, its
    # exporters, mtail and nginx's metrics server: loopback only (tests/host/test_monitoring.py).
    allowed = {"tcp://0.0.0.0:22", "tcp://:::22", "tcp://0.0.0.0:80", "tcp://:::80", "tcp://0.0.0.0:443",
               "tcp://:::443", "tcp://127.0.0.1:5432", "tcp://::1:5432"}  # fmt: skip
    allowed |= {f"tcp://127.0.0.1:{port}" for port in (9090, 9100, 9113, 9187, 9180, 3903)}
    assert tcp <= allowed, tcp - allowed


def test_gunicorn_not_on_any_tcp_port(host):
    masters = {m.pid for m in _gunicorn_masters(host)}
    out = host.check_output("ss -Hltnp")
    assert not any(f"pid={pid}," in out for pid in masters)


def test_nginx_config_is_valid(host):
    assert host.run("nginx -t").rc == 0


@pytest.mark.parametrize(
    "path",
    [
        "/etc/nginx/nginx.conf",
        "/etc/nginx/sites-available/{app}.conf",
        "/etc/nginx/snippets/{app}/gzip.conf",
        "/etc/nginx/snippets/{app}/proxy.conf",
        "/etc/nginx/snippets/{app}/tls.conf",
        "/etc/nginx/snippets/{app}/security-headers.conf",
        "/etc/supervisor/conf.d/{app}.conf",
        "/etc/systemd/system/supervisor.service.d/{app}.conf",
        "/etc/systemd/system/nginx.service.d/{app}.conf",
        "/etc/systemd/system/postgresql@.service.d/{app}.conf",
        "/etc/tmpfiles.d/{app}.conf",
        "/etc/postgresql/15/main/pg_hba.conf",
        "/etc/ssh/sshd_config.d/10-todo-hardening.conf",
        "/etc/sysctl.d/90-todo-hardening.conf",
        "/etc/nftables.conf",
        "/etc/apt/apt.conf.d/20auto-upgrades",
        "/etc/apt/apt.conf.d/90todo-lock-timeout",
    ],
)
def test_config_file_in_place_and_says_where_from(host, app_name, path):
    config = host.file(path.format(app=app_name))
    assert config.exists and config.user in ("root", "postgres")
    assert config.contains("Managed by the deploy")


def test_stock_default_site_disabled(host, app_name):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    site = host.file(f"/etc/nginx/sites-enabled/{app_name}.conf")
    assert site.linked_to == f"/etc/nginx/sites-available/{app_name}.conf"


def test_secrets_file_root_owned_readable_by_app_group_only(host, app_name):
    env = host.file(f"/etc/{app_name}/{app_name}.env")
    assert (env.user, env.group, env.mode) == ("root", app_name, 0o640)
    assert re.search(r"^SECRET_KEY=[0-9a-f]{64}$", env.content_string, re.M)


def test_current_points_to_a_built_release(host, app_name):
    current = host.file(f"/srv/{app_name}/current")
    assert current.is_symlink
    release = current.linked_to  # resolved, absolute
    assert release.startswith(f"/srv/{app_name}/releases/")
    assert host.file(f"{release}/.release.json").exists
    assert host.file(f"{release}/venv/bin/gunicorn").exists


def test_release_code_not_writable_by_app_user(host, app_name):
    assert host.run(f"runuser -u {app_name} -- test -w /srv/{app_name}/current/todo/__init__.py").rc != 0


def test_gunicorn_version_free_of_request_smuggling_cves(host, app_name):
    version = host.check_output(f"/srv/{app_name}/current/venv/bin/gunicorn --version").split()[-1].strip("()")
    assert tuple(int(x) for x in version.split(".")[:2]) >= (23, 0)


def test_static_files_precompressed(host, app_name):
    assert host.file(f"/srv/{app_name}/current/{app_name}/static/style.css.gz").exists


@pytest.mark.parametrize("suffix", ["", "_b"], ids=["app-role", "second-login-role"])
def test_database_role_is_not_privileged(host, app_name, suffix):
    out = host.check_output(
        "runuser -u postgres -- psql -Atc "
        f"\"SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname='{app_name}{suffix}'\""
    )
    assert out == "f|f|f"


def test_second_login_role_acts_as_the_app_role(host, app_name):
    """<app>_b (a password rotation's other login role) is a member of <app> and sets its role to it."""
    sql = (
        f"SELECT pg_has_role('{app_name}_b', '{app_name}', 'MEMBER'), "
        f"(SELECT setconfig FROM pg_db_role_setting WHERE setrole = '{app_name}_b'::regrole)"
    )
    assert host.check_output(f'runuser -u postgres -- psql -Atc "{sql}"') == f"t|{{role={app_name}}}"


def test_database_owned_by_app_role_with_migrations_applied(host, app_name):
    sql = f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='{app_name}'"
    assert host.check_output(f'runuser -u postgres -- psql -Atc "{sql}"') == app_name
    applied = host.check_output(
        f"runuser -u postgres -- psql -d {app_name} -Atc 'SELECT migration_id FROM _yoyo_migration'"
    )
    assert "0001.create-todo" in applied.split()


def test_app_role_needs_its_password(host, app_name):
    # No peer/trust for the app role: without the password the connection is refused.
    psql = f"psql -w -h /var/run/postgresql -U {app_name} -d {app_name} -c 'SELECT 1'"
    result = host.run(f"runuser -u {app_name} -- env -u PGPASSWORD {psql}")
    assert result.rc != 0 and "password" in result.stderr


def test_instance_health_check_on_socket(host, instance, app_name):
    """The stack's health checker (stdlib only, Debian's python3, isolated), as gunicorn.conf.py runs it."""
    check = (f"/usr/bin/python3 -I /usr/local/lib/{app_name}/healthcheck.py /run/{app_name}/{instance}.sock "
             "--path /healthz --timeout 5")  # fmt: skip
    result = host.run(check)
    assert result.rc == 0, result.stdout + result.stderr


def test_release_tool_refuses_other_users_before_touching_anything(host, app_name, instances):
    """As the app user it stops at once with a clear message (it used to close a socket first)."""
    tool = host.file(f"/usr/local/sbin/{app_name}-release")
    assert (tool.user, tool.group, tool.mode) == ("root", "root", 0o755)
    modes = [host.file(f"/run/{app_name}/{name}.sock").mode for name in instances]
    refused = host.run(f"runuser -u {app_name} -- /usr/local/sbin/{app_name}-release restart")
    assert refused.rc == 2 and "run as root" in refused.stderr, refused.stderr
    assert [host.file(f"/run/{app_name}/{name}.sock").mode for name in instances] == modes == [0o660] * len(instances)


def test_instances_setting_reaches_supervisor_and_nginx(host, app_name, instances):
    """The one ``instances`` setting: the release tool's list, supervisor's programs and nginx's upstream agree."""
    programs = host.check_output(f"grep -o '^\\[program:[^]]*\\]' /etc/supervisor/conf.d/{app_name}.conf").split()
    assert programs == [f"[program:{name}]" for name in instances]
    upstream = host.check_output(f"grep -o 'server unix:[^ ]*' /etc/nginx/sites-available/{app_name}.conf").split("\n")
    assert upstream == [f"server unix:/run/{app_name}/{name}.sock" for name in instances]
    assert json.loads(host.file(f"/etc/{app_name}/release.json").content_string)["keep_releases"] == 5


def test_push_repository_is_shared_with_the_deploy_group(host, app_name):
    """A push writes objects and refs (the group's); the repository, its config and hooks are root's."""
    repo = f"/srv/{app_name}/deploy.git"
    for path in ("", "/hooks", "/info"):
        assert (host.file(repo + path).user, host.file(repo + path).mode & 0o777) == ("root", 0o755), path
    for path in ("/objects", "/refs"):
        shared = host.file(repo + path)
        assert (shared.user, shared.group, shared.mode) == ("root", f"{app_name}-deploy", 0o2775), path
    for path in ("/config", "/hooks/pre-receive"):
        assert host.file(repo + path).user == "root" and not host.file(repo + path).mode & 0o022, path
    assert host.check_output(f"ls {repo}/hooks") == "pre-receive"
    assert f"{app_name}-deploy" in host.user("vagrant").groups


def test_deploy_group_may_run_only_the_release_steps_rollback_and_list(host, app_name):
    sudoers = host.file(f"/etc/sudoers.d/{app_name}-deploy")
    assert (sudoers.user, sudoers.mode) == ("root", 0o440)
    assert host.run(f"visudo -cqf /etc/sudoers.d/{app_name}-deploy").rc == 0
    tool = f"/usr/local/sbin/{app_name}-release"
    alias = sudoers.content_string.split("Cmnd_Alias", 1)[1].split("%", 1)[0]
    commands = {c.strip(" \\\n") for c in alias.split("=", 1)[1].split(",")}
    assert commands == {f"{tool} deploy --commit *", f"{tool} rollback", f"{tool} rollback *", f"{tool} list",
                        f"{tool} migrate *", f"{tool} activate *", f"{tool} discard *"}  # fmt: skip
    rules = [line for line in sudoers.content_string.splitlines() if line.startswith("%")]
    assert rules == [f"%{app_name}-deploy ALL=(root) NOPASSWD: {app_name.upper()}_RELEASE"]


def test_releases_once_built_are_writable_by_neither_the_build_user_nor_the_app(host, app_name):
    """Built by the build user, then sealed: root's, group the app's, writable by root alone."""
    release = host.file(f"/srv/{app_name}/current").linked_to
    assert (host.file(release).user, host.file(release).group) == ("root", app_name)
    for user in (f"{app_name}-build", app_name):
        assert host.check_output(f"runuser -u {user} -- find {release} -writable -print -quit") == "", user
    assert host.user(f"{app_name}-build").shell == "/usr/sbin/nologin"


#: Files root-run tools or root-started services read, besides those that say "Managed by the deploy".
#: Owned by postgres where PostgreSQL's and pgBackRest's own processes (postgres) read them.
POSTGRES_MAY_OWN = ("/etc/postgresql", "/etc/pgbackrest")


def test_every_file_the_stack_owns_is_writable_by_its_owner_only(host, app_name):
    """Every file the stack writes under /etc (each says "Managed by the deploy"; and /etc/<app>'s
    settings, the secrets and pgBackRest's files) and its server tools: owned by root (or postgres,
    for PostgreSQL's and pgBackRest's), writable by no group or other user, and so is every
    directory above each. A file the deploy group or the app user could write would steer a root
    tool or a service started as root."""
    listed = host.check_output(
        f"{{ grep -rlI 'Managed by the deploy' /etc; find /etc/{app_name} /etc/pgbackrest /usr/local/sbin -type f; }} "
        "2>/dev/null | sort -u || true"
    ).split()
    assert f"/etc/{app_name}/release.json" in listed and "/etc/nginx/nginx.conf" in listed, listed
    paths = set(listed)
    for path in listed:
        parent = path.rsplit("/", 1)[0]
        while parent:
            paths.add(parent)
            parent = parent.rsplit("/", 1)[0]
    paths.add("/")
    stats = host.check_output("stat -c '%n|%U|%a' " + " ".join(sorted(paths)))
    wrong = []
    for line in stats.splitlines():
        path, owner, mode = line.split("|")
        postgres = any(path == top or path.startswith(f"{top}/") for top in POSTGRES_MAY_OWN)
        owners = ("root", "postgres") if postgres else ("root",)
        if owner not in owners or int(mode, 8) & 0o022:
            wrong.append(f"{path} {owner} {mode}")
    assert not wrong, wrong
