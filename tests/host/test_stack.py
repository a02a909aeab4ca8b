"""The provisioned host, checked the way a tester checks a Vagrant VM (pytest-testinfra)."""

import json
import re

import pytest

APP = "todo"
INSTANCES = [f"{APP}-0", f"{APP}-1"]


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


def test_app_user_is_a_system_user_without_login(host):
    user = host.user(APP)
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == f"/srv/{APP}"
    assert "www-data" in user.groups


def test_nginx_is_not_in_the_app_group(host):
    assert APP not in host.user("www-data").groups


@pytest.mark.parametrize("instance", INSTANCES)
def test_gunicorn_instance_running_under_supervisor(host, instance):
    assert host.supervisor(instance).is_running


@pytest.mark.parametrize("instance", INSTANCES)
def test_gunicorn_socket_owned_by_app_and_nginx_group(host, instance):
    sock = host.file(f"/run/{APP}/{instance}.sock")
    assert sock.is_socket
    assert (sock.user, sock.group) == (APP, "www-data")
    assert sock.mode == 0o660


@pytest.mark.parametrize("instance", INSTANCES)
def test_gunicorn_socket_is_listening(host, instance):
    assert host.socket(f"unix:///run/{APP}/{instance}.sock").is_listening


def test_run_dir_only_app_and_nginx_group(host):
    run_dir = host.file(f"/run/{APP}")
    assert run_dir.is_directory
    assert (run_dir.user, run_dir.group, run_dir.mode) == (APP, "www-data", 0o750)


def _gunicorn_masters(host):
    """gunicorn master processes: children of supervisord running gunicorn."""
    supervisord = host.process.get(comm="supervisord")
    return [p for p in host.process.filter(ppid=supervisord.pid) if "gunicorn" in p.args]


def test_one_gunicorn_master_per_instance_as_app_user(host):
    masters = _gunicorn_masters(host)
    assert len(masters) == len(INSTANCES)
    assert {m.user for m in masters} == {APP}


def test_gunicorn_workers_run_as_app_user(host):
    for master in _gunicorn_masters(host):
        workers = host.process.filter(ppid=master.pid)
        assert len(workers) >= 2
        assert {w.user for w in workers} == {APP}


def test_nginx_workers_run_as_www_data(host):
    master = host.process.get(user="root", comm="nginx")
    workers = host.process.filter(ppid=master.pid)
    assert workers and {w.user for w in workers} == {"www-data"}


def test_only_ssh_http_https_and_postgres_loopback_listen(host):
    listening = set(host.socket.get_listening_sockets())
    tcp = {s for s in listening if s.startswith("tcp://")}
    # PostgreSQL: loopback only (Debian's default listen_addresses=localhost).
    allowed = {"tcp://0.0.0.0:22", "tcp://:::22", "tcp://0.0.0.0:80", "tcp://:::80", "tcp://0.0.0.0:443",
               "tcp://:::443", "tcp://127.0.0.1:5432", "tcp://::1:5432"}  # fmt: skip
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
        "/etc/nginx/sites-available/todo.conf",
        "/etc/nginx/snippets/todo/gzip.conf",
        "/etc/nginx/snippets/todo/proxy.conf",
        "/etc/nginx/snippets/todo/tls.conf",
        "/etc/nginx/snippets/todo/security-headers.conf",
        "/etc/supervisor/conf.d/todo.conf",
        "/etc/systemd/system/supervisor.service.d/todo.conf",
        "/etc/systemd/system/nginx.service.d/todo.conf",
        "/etc/systemd/system/postgresql@.service.d/todo.conf",
        "/etc/tmpfiles.d/todo.conf",
        "/etc/postgresql/15/main/pg_hba.conf",
        "/etc/ssh/sshd_config.d/10-todo-hardening.conf",
        "/etc/sysctl.d/90-todo-hardening.conf",
        "/etc/nftables.conf",
        "/etc/apt/apt.conf.d/20auto-upgrades",
        "/etc/apt/apt.conf.d/90todo-lock-timeout",
    ],
)
def test_config_file_in_place_and_says_where_from(host, path):
    config = host.file(path)
    assert config.exists and config.user in ("root", "postgres")
    assert config.contains("Managed by the deploy")


def test_stock_default_site_disabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/sites-enabled/todo.conf").linked_to == "/etc/nginx/sites-available/todo.conf"


def test_secrets_file_root_owned_readable_by_app_group_only(host):
    env = host.file(f"/etc/{APP}/{APP}.env")
    assert (env.user, env.group, env.mode) == ("root", APP, 0o640)
    assert re.search(r"^TODO_SECRET_KEY=[0-9a-f]{64}$", env.content_string, re.M)


def test_current_points_to_a_built_release(host):
    current = host.file(f"/srv/{APP}/current")
    assert current.is_symlink
    release = current.linked_to  # resolved, absolute
    assert release.startswith(f"/srv/{APP}/releases/")
    assert host.file(f"{release}/.release.json").exists
    assert host.file(f"{release}/venv/bin/gunicorn").exists


def test_release_code_not_writable_by_app_user(host):
    assert host.run(f"runuser -u {APP} -- test -w /srv/{APP}/current/{APP}/__init__.py").rc != 0


def test_gunicorn_version_free_of_request_smuggling_cves(host):
    version = host.check_output(f"/srv/{APP}/current/venv/bin/gunicorn --version").split()[-1].strip("()")
    assert tuple(int(x) for x in version.split(".")[:2]) >= (23, 0)


def test_static_files_precompressed(host):
    assert host.file(f"/srv/{APP}/current/{APP}/static/style.css.gz").exists


def test_database_role_is_not_privileged(host):
    out = host.check_output(
        "runuser -u postgres -- psql -Atc "
        "\"SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname='todo'\""
    )
    assert out == "f|f|f"


def test_database_owned_by_app_role_with_migrations_applied(host):
    owner = host.check_output(
        "runuser -u postgres -- psql -Atc \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='todo'\""
    )
    assert owner == APP
    applied = host.check_output("runuser -u postgres -- psql -d todo -Atc 'SELECT migration_id FROM _yoyo_migration'")
    assert "0001.create-todo" in applied.split()


def test_app_role_needs_its_password(host):
    # No peer/trust for the app role: without the password the connection is refused.
    result = host.run(
        f"runuser -u {APP} -- env -u PGPASSWORD psql -w -h /var/run/postgresql -U {APP} -d {APP} -c 'SELECT 1'"
    )
    assert result.rc != 0 and "password" in result.stderr


@pytest.mark.parametrize("instance", INSTANCES)
def test_instance_health_check_on_socket(host, instance):
    cmd = f"cd /srv/{APP}/current && venv/bin/python -m {APP}.healthcheck /run/{APP}/{instance}.sock --timeout 5"
    assert host.run(cmd).rc == 0


def test_release_tool_installed_root_only(host):
    tool = host.file(f"/usr/local/sbin/{APP}-release")
    assert (tool.user, tool.group, tool.mode) == ("root", "root", 0o755)
    assert host.run(f"runuser -u {APP} -- /usr/local/sbin/{APP}-release restart").rc != 0  # not as the app user


def test_release_settings_match_the_deploy(host):
    settings = json.loads(host.file(f"/etc/{APP}/release.json").content_string)
    assert settings["keep_releases"] == 5 and settings["instances"] == len(INSTANCES)


def test_push_repository_is_shared_with_the_deploy_group(host):
    repo = host.file(f"/srv/{APP}/deploy.git")
    assert repo.group == f"{APP}-deploy" and repo.mode & 0o2070 == 0o2070
    hook = host.file(f"/srv/{APP}/deploy.git/hooks/pre-receive")
    assert hook.user == "root" and hook.mode == 0o755
    assert f"{APP}-deploy" in host.user("vagrant").groups


def test_deploy_group_may_run_only_the_release_tool(host):
    sudoers = host.file(f"/etc/sudoers.d/{APP}-deploy")
    assert (sudoers.user, sudoers.mode) == ("root", 0o440)
    assert host.run(f"visudo -cqf /etc/sudoers.d/{APP}-deploy").rc == 0
    rules = [line for line in sudoers.content_string.splitlines() if line and not line.startswith("#")]
    assert rules == [f"%{APP}-deploy ALL=(root) NOPASSWD: /usr/local/sbin/{APP}-release"]
