"""What the docs promise that only a crash, a reboot or a full disk would show, checked as
properties of the host, so that a tester's non-destructive run notices when one is undone
(the destructive tests in tests/chaos and the reboot test show the behaviour itself)."""

import json
import re

import pytest

#: Log directories of the stack: every file in them must be rotated by something.
LOG_DIRS = ("/var/log/{app}", "/var/log/nginx", "/var/log/postgresql", "/var/log/supervisor")


def program_settings(host, app_name):
    """{program: {key: value}} from the stack's supervisor config."""
    programs, current = {}, None
    for line in host.file(f"/etc/supervisor/conf.d/{app_name}.conf").content_string.splitlines():
        if match := re.fullmatch(r"\[program:(.+)\]", line.strip()):
            current = programs[match.group(1)] = {}
        elif current is not None and "=" in line and not line.startswith(";"):
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return programs


def test_every_log_the_stack_writes_is_rotated(host, app_name):
    """logrotate (daily timer) or supervisor (by size) rotates each; a log nobody rotates fills the disk."""
    dirs = " ".join(d.format(app=app_name) for d in LOG_DIRS)
    logs = host.check_output(f"find {dirs} -type f -name '*.log'").split()
    considered = set(re.findall(r"considering log (\S+)", host.run("logrotate -d /etc/logrotate.conf").stderr))
    by_supervisor = {
        settings["stdout_logfile"]
        for settings in program_settings(host, app_name).values()
        if settings.get("stdout_logfile_maxbytes", "0") not in ("0", "0MB") and int(settings["stdout_logfile_backups"])
    }
    supervisord = host.file("/etc/supervisor/supervisord.conf").content_string
    if not re.search(r"^logfile_maxbytes\s*=\s*0", supervisord, re.M):  # supervisord's default: 50MB x 10
        by_supervisor.add("/var/log/supervisor/supervisord.log")
    unrotated = [log for log in logs if log not in considered | by_supervisor]
    assert logs and unrotated == [], unrotated
    assert host.service("logrotate.timer").is_enabled


def test_instances_restart_by_themselves_and_stop_gracefully(host, app_name, instances):
    """supervisor restarts a dead instance, outlasts a slow database, and stops the whole group
    only after gunicorn's graceful timeout (so no worker is orphaned or cut off mid-request)."""
    # The stack's gunicorn config sets it; the release's own gunicorn options (its Procfile's web: line,
    # in .release.json) may change it.
    stack_config = host.file(f"/usr/local/lib/{app_name}/gunicorn.conf.py").content_string
    graceful = int(re.search(r"^graceful_timeout = (\d+)", stack_config, re.M).group(1))
    release = host.file(f"/srv/{app_name}/current").linked_to
    web = json.loads(host.file(f"{release}/.release.json").content_string).get("web", {})
    graceful = int(web.get("options", {}).get("graceful_timeout", graceful))
    programs = program_settings(host, app_name)
    assert sorted(programs) == sorted(instances)
    for settings in programs.values():
        assert (settings["autostart"], settings["autorestart"]) == ("true", "true")
        assert int(settings["startretries"]) >= 20
        assert (settings["stopasgroup"], settings["killasgroup"]) == ("true", "true")
        assert int(settings["stopwaitsecs"]) > graceful


def test_supervisor_starts_after_postgresql(host):
    """At boot the instances find their database: supervisor is ordered after (and wants) PostgreSQL."""
    props = host.service("supervisor").systemd_properties
    assert "postgresql.service" in props["After"].split() and "postgresql.service" in props["Wants"].split()


def test_socket_dir_is_recreated_at_boot(host, app_name):
    """/run is a tmpfs: tmpfiles.d makes /run/<app> again, for the app and nginx's group only."""
    config = host.check_output("systemd-tmpfiles --cat-config")
    assert re.search(rf"^d /run/{app_name} 0750 {app_name} www-data -$", config, re.M)


@pytest.fixture(scope="module")
def nginx_config(host):
    """nginx's effective configuration (nginx -T)."""
    return host.check_output("nginx -T 2>/dev/null")


def test_nginx_passes_a_refused_request_on_and_never_marks_an_instance_failed(nginx_config, app_name, instances):
    """Releases and crashes cost no request: nginx tries the next instance on a refused connect
    (only within 5 s, so a slow request is not run twice) and never takes one out for fail_timeout."""
    assert "proxy_next_upstream error timeout;" in nginx_config
    assert "proxy_next_upstream_timeout 5s;" in nginx_config
    for name in instances:
        assert f"server unix:/run/{app_name}/{name}.sock max_fails=0;" in nginx_config


def static_location(nginx_config):
    """The body of the static location for URLs that name a release (snippets/static.conf)."""
    return re.search(r'location ~ "\^/static/\(\?<release>.*?\n\s*\}', nginx_config, re.S).group(0)


def test_static_files_come_from_disk_precompressed_and_cached_for_good(nginx_config):
    """gzip_static and an immutable Cache-Control in the static location (the e2e tests see the bytes),
    not on a 404 (no "always": a file a release does not have is never cached for good)."""
    static = static_location(nginx_config)
    assert "gzip_static on;" in static
    assert 'add_header Cache-Control "public, max-age=31536000, immutable";' in static


@pytest.mark.parametrize(
    ("where", "directive"),
    [
        ("static", "open_file_cache max=1000 inactive=60s;"),
        ("static", "open_file_cache_valid 60s;"),
        ("static", "open_file_cache_min_uses 2;"),
        ("static", "open_file_cache_errors on;"),
        ("http", "sendfile on;"),
        ("http", "tcp_nopush on;"),
        ("http", "worker_processes auto;"),
        ("http", "gzip on;"),
    ],
)
def test_nginx_performance_settings_are_in_effect(nginx_config, where, directive):
    """What makes static files fast, read from nginx's effective configuration: file descriptors
    and stat() results of static files cached (the release's files never change), sendfile."""
    text = nginx_config
    if where == "static":
        text = static_location(text)
    assert re.search(rf"^\s*{re.escape(directive)}", text, re.M), directive
