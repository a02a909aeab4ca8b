"""The status tool's parsers and renderers (deploy/server/status.py, loaded by path): supervisorctl
lines, openssl's end date, supervisord's spawn lines since boot, the access log's window (JSON lines,
other lines skipped), a collection whose every command fails, and the textfile's exposition format;
for any app: sizes in binary units, the release tool's processes conf, the configuration's names
(never values), shared directories (never through a symlink), maintenance mode, and a whole
collection of an app with process types (no machine needed, no root)."""

import importlib.util
import json
import os
import re
import socket
from datetime import UTC, datetime

import pytest

from tests.conftest import REPO
from tests.helpers import assert_exposition

spec = importlib.util.spec_from_file_location("status_tool", REPO / "deploy/server/status.py")
status = importlib.util.module_from_spec(spec)
spec.loader.exec_module(status)

NOW = datetime(2026, 11, 22, 19, 50, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("todo-0                           RUNNING   pid 1234, uptime 0:05:12", ("todo-0", "RUNNING", 1234, 312)),
        ("todo-1   RUNNING   pid 99, uptime 1 day, 2:03:04", ("todo-1", "RUNNING", 99, 93784)),
        ("todo-1   RUNNING   pid 99, uptime 12 days, 0:00:01", ("todo-1", "RUNNING", 99, 1036801)),
        ("todo-1                           STOPPED   Nov 22 07:31 PM", ("todo-1", "STOPPED", None, None)),
        ("todo-1   FATAL     Exited too quickly (process log may have details)", ("todo-1", "FATAL", None, None)),
        ("todo-0   BACKOFF   Exited too quickly (process log may have details)", ("todo-0", "BACKOFF", None, None)),
        ("todo-0                           STARTING  ", ("todo-0", "STARTING", None, None)),
        ("todo-0   EXITED    Nov 22 07:31 PM", ("todo-0", "EXITED", None, None)),
        ("unix:///var/run/supervisor.sock no such file", None),
        ("", None),
    ],
)
def test_supervisorctl_status_lines_are_parsed(line, expected):
    assert status.parse_supervisor_line(line) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("notAfter=Nov 22 19:00:00 2027 GMT\n", datetime(2027, 11, 22, 19, 0, 0, tzinfo=UTC)),
        ("notAfter=Feb  2 03:04:05 2026 GMT", datetime(2026, 2, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_openssl_end_dates_are_parsed(text, expected):
    assert status.parse_enddate(text) == expected.timestamp()


def test_spawns_are_counted_since_boot_from_the_log_and_its_rotated_copy(tmp_path):
    boot = datetime(2026, 11, 22, 10, 0, 0).timestamp()  # local time, as supervisord writes it
    log = tmp_path / "supervisord.log"
    (tmp_path / "supervisord.log.1").write_text(
        "2026-11-21 09:00:00,001 INFO spawned: 'todo-0' with pid 10\n"  # before boot: not counted
        "2026-11-22 10:00:05,001 INFO spawned: 'todo-0' with pid 100\n"
    )
    os.utime(tmp_path / "supervisord.log.1", (boot, boot))
    log.write_text(
        "2026-11-22 10:00:06,001 INFO spawned: 'todo-1' with pid 101\n"
        "2026-11-22 10:00:09,002 INFO success: todo-1 entered RUNNING state\n"
        "2026-11-22 11:00:00,001 INFO spawned: 'todo-1' with pid 202\n"
        "2026-11-22 11:00:00,001 INFO spawned: 'todo-10' with pid 203\n"
        "2026-11-22 11:00:01,001 WARN exited: todo-1 (exit status 1; not expected)\n"
        "2026-11-22 11:00:02,001 WARN stopped: todo-10 (terminated by SIGTERM)\n"
        "2026-11-22 11:00:03,001 WARN exited: todo-10 (terminated by SIGKILL; not expected)\n"
        "2026-11-22 11:00:04,001 INFO exited: todo-0 (exit status 0; expected)\n"
    )
    assert status.spawns_since(boot, log) == {"todo-0": 1, "todo-1": 2, "todo-10": 1}
    assert status.spawns_since(boot, log, pattern=status.CRASHED) == {"todo-1": 1, "todo-10": 1}
    with pytest.raises(FileNotFoundError):  # unknown, not zero: the instances show "restarts ?"
        status.spawns_since(boot, tmp_path / "elsewhere" / "supervisord.log")


def access_line(seconds_ago, code, **extra):
    when = datetime.fromtimestamp(NOW - seconds_ago, UTC).isoformat(timespec="seconds")
    entry = {"time": when, "status": str(code), "request_id": "abc", "uri": "/", "upstream": "unix:x", "rt": "0.001"}
    return json.dumps({**entry, **extra}) + "\n"


def test_the_access_log_window_counts_recent_requests_and_skips_other_lines(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(
        '192.0.2.1 - - [22/Nov/2026:19:40:00 +0000] "GET / HTTP/1.1" 200 12 "-" "-"\n'  # the old format
        + access_line(1000, 200)  # outside the window
        + access_line(299, 200)
        + access_line(100, 502)
        + "{not json\n"
        + access_line(3, 200)
        + access_line(1, 503)
    )
    found = status.count_requests([str(log), str(tmp_path / "access.log.1")], NOW)
    assert found == {"window": 300, "requests": 4, "status_5xx": 2, "skipped_lines": 1}


def test_the_rotated_access_log_is_read_when_the_log_began_inside_the_window(tmp_path):
    (tmp_path / "access.log.1").write_text(access_line(400, 200) + access_line(200, 500) + access_line(150, 200))
    (tmp_path / "access.log").write_text(access_line(100, 200))
    found = status.count_requests([str(tmp_path / "access.log"), str(tmp_path / "access.log.1")], NOW)
    assert (found["requests"], found["status_5xx"]) == (3, 1)


def test_a_5xx_ratio_above_the_threshold_needs_attention(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("".join(access_line(10, 500 if n < 3 else 200) for n in range(30)))
    attention = []
    found = status.requests({"access_log": str(log), "error_ratio_warn": 0.05}, NOW, attention)
    assert found["ratio"] == 0.1 and len(attention) == 1 and "5xx" in attention[0], attention


def test_sockets_are_open_only_to_nginx_group_with_group_write(tmp_path):
    path = tmp_path / "todo-0.sock"
    assert status.socket_state(path) == "missing"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chmod(path, 0o660)
        # The test's own group is not www-data (the build box runs no nginx as it): closed.
        expected = "open" if os.stat(path).st_gid == _gid("www-data") else "closed"
        assert status.socket_state(path) == expected
    finally:
        server.close()


def _gid(name):
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


@pytest.fixture
def broken_server(tmp_path, monkeypatch):
    """Settings whose every command fails (no supervisorctl, systemctl, openssl or backup tool)."""

    def fails(*args, **kwargs):
        raise status.Failed(f"`{' '.join(args)}`: [Errno 2] No such file or directory")

    monkeypatch.setattr(status, "command", fails)
    return {
        "app_name": "todo",
        "instances": ["todo-0", "todo-1"],
        "srv": str(tmp_path / "srv"),
        "run_dir": str(tmp_path / "run"),
        "access_log": str(tmp_path / "access.log"),
        "tls_cert": str(tmp_path / "todo.crt"),
        "units": ["nginx.service"],
        "backups": True,
        "disk_paths": ["/", str(tmp_path / "nowhere")],
        # Where this box's own files could be (a local deploy): none of them, so the app's are missing.
        "processes_conf": str(tmp_path / "supervisor/todo-processes.conf"),
        "config_env": str(tmp_path / "etc/config.env"),
        "maintenance_snippet": str(tmp_path / "nginx/snippets/todo/maintenance.conf"),
        "shared_root": str(tmp_path / "lib/shared"),
        "release_settings": str(tmp_path / "etc/release.json"),
    }


def test_failing_commands_are_reasons_for_attention_never_a_traceback(broken_server):
    state = status.collect(broken_server, NOW)
    reasons = "\n".join(state["attention"])
    for thing in ("no current release", "supervisor:", "instance todo-1", "unit nginx.service", "backups:",
                  "certificate", "nowhere", "access log"):  # fmt: skip
        assert thing in reasons, reasons
    text = status.render_text(state)
    assert text.count("ATTENTION: ") == len(state["attention"]) and "todo-0" in text, text
    json.dumps(state)  # serialisable as --json prints it


def test_missing_app_files_mean_none_never_a_crash(broken_server):
    state = status.collect(broken_server, NOW)
    assert state["processes"] == [] and state["maintenance"] is None, state
    assert state["config"] == {"path": broken_server["config_env"], "names": [], "error": None}, state
    assert state["shared"] == {"root": broken_server["shared_root"], "dirs": []}, state
    assert not [r for r in state["attention"] if "process" in r or "shared" in r or "config" in r], state["attention"]
    lines = status.render_text(state).splitlines()
    for line in ("processes   none (web only)", f"config      none set in {broken_server['config_env']}",
                 "shared      none"):  # fmt: skip
        assert line in lines, lines
    # A host with no instances (a database or load balancer host) shows none of the app's sections.
    state = status.collect({**broken_server, "instances": []}, NOW)
    assert state["processes"] is None and state["config"] is None and state["shared"] is None, state


def test_the_textfile_is_valid_exposition_format(broken_server):
    state = status.collect(broken_server, NOW)
    state["instances"][0].update(state="RUNNING", open=True, spawns=2)
    state["release"] = {"name": "20261121-101502-dcb3499", "commit": None, "built_at": None, "deployed": NOW - 60.5}
    state["backups"] = {"newest_backup": NOW - 3600, "newest_backup_label": "x", "last_archived_wal": NOW - 30,
                        "max_age": 93600, "warnings": [], "error": None}  # fmt: skip
    state["certificate"] = {"path": '/etc/ssl/"odd"\\name', "not_after": NOW + 86400, "days_left": 1.0, "error": None}
    text = status.render_textfile(state)
    lines = text.splitlines()
    assert 'todo_instance_up{name="todo-0"} 1' in lines and 'todo_instance_up{name="todo-1"} 0' in lines, text
    assert 'todo_instance_spawns_total{name="todo-0"} 2' in lines, text
    assert 'todo_release_info{release="20261121-101502-dcb3499"} 1' in lines, text
    assert f"todo_status_attention {len(state['attention'])}" in lines, text
    assert "todo_backup_max_age_seconds 93600" in lines, text
    assert_exposition(lines)
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    assert names == {re.split(r"[{ ]", line)[0] for line in lines if not line.startswith("#")}, text


def test_the_textfile_is_written_atomically_with_mode_0644(tmp_path):
    target = tmp_path / "todo.prom"
    status.write_atomically(target, "todo_status_attention 0\n")
    status.write_atomically(target, "todo_status_attention 1\n")
    assert target.read_text() == "todo_status_attention 1\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["todo.prom"]


def test_it_refuses_to_run_as_another_user_than_root(monkeypatch, capsys):
    monkeypatch.setattr(status.os, "geteuid", lambda: 1000)
    assert status.main([]) == 2 and "run as root" in capsys.readouterr().err


def test_json_and_textfile_do_not_go_together():
    with pytest.raises(SystemExit) as exited:
        status.main(["--json", "--textfile", "/tmp/x.prom"])
    assert exited.value.code == 2


def test_every_stack_metric_the_alert_rules_read_is_one_the_stack_writes():
    """A rule on a metric nobody writes never fires: each todo_* name in monitoring/alerts.yml is
    written by the status tool (its textfile) or by mtail's program (monitoring/web.mtail); no rule
    reads the sample app's own metrics (an app of your own has none)."""
    rules = (REPO / "monitoring/alerts.yml").read_text()
    status_names = set(re.findall(r'"(todo_[a-z_]+)"', (REPO / "deploy/server/status.py").read_text()))
    mtail_names = set(
        re.findall(r"^(?:counter|histogram) (todo_[a-z_]+)", (REPO / "monitoring/web.mtail").read_text(), re.M)
    )
    read = set(re.findall(r"\btodo_[a-z_]+", re.sub(r"(?m)^\s*#.*$", "", rules)))
    for suffix in ("_bucket", "_count", "_sum"):  # a histogram's series
        read = {name.removesuffix(suffix) for name in read}
    assert mtail_names and read and read <= status_names | mtail_names, sorted(read - status_names - mtail_names)


# --- Any app: sizes, process types, configuration names, shared directories, maintenance ----------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # 1023.999 KiB rounds up to the next unit, never "1024.0 KiB"
        (5 * 1024**2 + 200 * 1024, "5.2 MiB"),
        (25324953600, "23.6 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**6, "2048.0 EiB"),
    ],
)
def test_sizes_are_shown_in_binary_units_with_one_decimal_as_df_h_does(size, expected):
    assert status.human_size(size) == expected


def test_disk_and_memory_are_shown_in_binary_units_not_bytes(broken_server):
    state = status.collect(broken_server, NOW)
    state["memory"] = {"total": 25127090176, "available": 22118793216, "used_percent": 12.0, "error": None}
    state["disks"] = [{"path": "/", "used_percent": 24.5, "total": 26843545600, "used": 6576668672,
                       "free": 20266876928, "error": None}]  # fmt: skip
    lines = status.render_text(state).splitlines()
    assert "memory used 12.0% of 23.4 GiB (20.6 GiB available)" in lines, lines
    assert "disk used   / 24.5% of 25.0 GiB (18.9 GiB available)" in lines, lines
    assert not [line for line in lines if "bytes" in line], lines


def _release_module():
    """deploy/server/release.py, loaded by path: the release tool that writes the processes conf."""
    spec = importlib.util.spec_from_file_location("release_tool", REPO / "deploy/server/release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_processes_conf_the_release_tool_writes_is_parsed():
    programs = {"flaskr-clock-0": "clock", "flaskr-my-worker-0": "my-worker", "flaskr-my-worker-1": "my-worker"}
    template = _release_module().PROCESS_PROGRAM
    text = "; Managed by flaskr-release: the process types of the current release (its Procfile).\n" + "".join(
        template.format(program=name, kind=kind, app="flaskr", lib="/usr/local/lib/flaskr", srv="/srv/flaskr")
        for name, kind in programs.items()
    )
    assert status.parse_processes_conf(text, "flaskr") == programs


def test_a_process_type_comes_from_the_program_name_when_its_command_does_not_say():
    text = "[program:todo-worker-0]\ncommand=/bin/true\n[group:x]\ncommand=x --process nope\n[program:other]\n"
    assert status.parse_processes_conf(text, "todo") == {"todo-worker-0": "worker", "other": None}
    assert status.parse_processes_conf("", "todo") == {}


def test_configuration_names_are_read_never_values():
    text = "B=1\nA=x=y\n# C=3\n\nnot an assignment\n1X=2\nA=again\nexport D=4\n  E = spaced \n"
    assert status.parse_env_names(text) == ["A", "B", "E"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["uploads", "instance/cache"], ["uploads", "instance/cache"]),
        (["/etc", "../up", "a/../../b", "", ".", "a\nb", 3, None, "uploads", "a/./b", "uploads/"], ["uploads", "a/b"]),
        ("uploads", []),
        (None, []),
    ],
)
def test_only_relative_shared_paths_inside_are_kept(value, expected):
    assert status.shared_paths(value) == expected


def test_release_files_are_never_read_through_a_symlink_nor_from_a_fifo(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    os.mkfifo(tmp_path / "fifo.json")
    assert status.read_regular(tmp_path / "real.json") == "{}"
    assert status.read_regular(tmp_path / "missing.json") is None
    for name in ("link.json", "fifo.json"):
        with pytest.raises(OSError):
            status.read_regular(tmp_path / name)


def test_shared_directory_sizes_count_regular_files_and_follow_no_symlink(tmp_path):
    root = tmp_path / "shared"
    (root / "uploads/a").mkdir(parents=True)
    (root / "uploads/one").write_bytes(b"x" * 1000)
    (root / "uploads/a/two").write_bytes(b"y" * 24)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/big").write_bytes(b"z" * 100_000)
    (root / "uploads/to-file").symlink_to(tmp_path / "outside/big")
    (root / "uploads/to-dir").symlink_to(tmp_path / "outside")
    (root / "planted").symlink_to(tmp_path / "outside")
    far = status.time.monotonic() + 60
    assert status.dir_size(str(root), "uploads", far) == {"size": 1024, "files": 2, "complete": True}
    assert status.dir_size(str(root), "uploads", 0)["complete"] is False  # out of time: "at least"
    with pytest.raises(OSError):
        status.dir_size(str(root), "planted", far)
    with pytest.raises(FileNotFoundError):
        status.dir_size(str(root), "missing", far)


SUPERVISORCTL = """\
flaskr-0                         RUNNING   pid 2001, uptime 1:00:00
flaskr-1                         RUNNING   pid 2002, uptime 1:00:00
flaskr-clock-0                   RUNNING   pid 2003, uptime 0:59:00
flaskr-my-worker-0               FATAL     Exited too quickly (process log may have details)
"""


@pytest.fixture
def any_app(tmp_path, monkeypatch):
    """A server running the app "flaskr" (not the sample): two instances, a clock and a worker
    process type (the worker FATAL), configuration, shared directories, maintenance on."""

    def command(*args, **kwargs):
        if args[:2] == ("supervisorctl", "status"):
            return 3, SUPERVISORCTL
        if args[:2] == ("systemctl", "is-active"):
            return 0, "active\n"
        raise status.Failed(f"`{' '.join(args)}`: not on this box")

    monkeypatch.setattr(status, "command", command)
    monkeypatch.setattr(status, "supervisor_counts", lambda boot: ({"flaskr-clock-0": 3}, {"flaskr-clock-0": 1}))
    release = "20261121-101502-dcb3499"
    srv = tmp_path / "srv"
    (srv / "releases" / release).mkdir(parents=True)
    (srv / "current").symlink_to(srv / "releases" / release)
    meta = {"release": release, "commit": "dcb3499" + "0" * 33, "ref": "refs/heads/main", "built_at":
            "2026-11-21T10:15:02+00:00", "web": {"wsgi_app": "flaskr:create_app()", "options": {}, "ignored": []},
            "release_command": "flask --app flaskr init-db", "processes": {"clock": "python -m clock",
            "my-worker": "python -m worker", "bad type\n": "x"}, "static_folder": "flaskr/static",
            "shared_dirs": ["instance/uploads", "/etc"]}  # fmt: skip
    (srv / "releases" / release / ".release.json").write_text(json.dumps(meta))
    conf = tmp_path / "flaskr-processes.conf"
    template = _release_module().PROCESS_PROGRAM
    programs = (("flaskr-clock-0", "clock"), ("flaskr-my-worker-0", "my-worker"))
    conf.write_text("".join(template.format(program=name, kind=kind, app="flaskr", lib="/l", srv="/srv/flaskr")
                            for name, kind in programs))  # fmt: skip
    (tmp_path / "config.env").write_text("SECRET_TOKEN=hunter2-value\nMAIL_SERVER=smtp.example.org\n")
    shared = tmp_path / "shared"
    (shared / "instance/uploads").mkdir(parents=True)
    (shared / "instance/uploads/photo.jpg").write_bytes(b"p" * 3 * 1024 * 1024)
    (tmp_path / "release.json").write_text(json.dumps({"app_name": "flaskr", "shared_dirs": ["instance/uploads",
                                                                                            "exports"]}))  # fmt: skip
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets/maintenance.conf").write_text("if ($flaskr_maintenance_refused) { return 503; }\n")
    run = tmp_path / "run"
    run.mkdir()
    return {
        "app_name": "flaskr",
        "instances": ["flaskr-0", "flaskr-1"],
        "srv": str(srv),
        "run_dir": str(run),
        "access_log": None,
        "tls_cert": None,
        "units": ["supervisor.service"],
        "backups": False,
        "disk_paths": ["/"],
        "processes_conf": str(conf),
        "config_env": str(tmp_path / "config.env"),
        "maintenance_snippet": str(tmp_path / "snippets/maintenance.conf"),
        "shared_root": str(shared),
        "release_settings": str(tmp_path / "release.json"),
    }


def test_any_app_is_described_with_its_process_types_configuration_shared_dirs_and_maintenance(any_app):
    state = status.collect(any_app, NOW)
    rel = state["release"]
    assert (rel["commit"][:7], rel["ref"], rel["wsgi_app"]) == ("dcb3499", "refs/heads/main", "flaskr:create_app()")
    assert rel["process_types"] == ["clock", "my-worker"] and rel["shared_dirs"] == ["instance/uploads"], rel
    assert [(p["name"], p["type"], p["state"]) for p in state["processes"]] == [
        ("flaskr-clock-0", "clock", "RUNNING"), ("flaskr-my-worker-0", "my-worker", "FATAL")]  # fmt: skip
    assert state["processes"][0] | {"uptime": 3540, "pid": 2003, "restarts": 2, "crashes": 1} == state["processes"][0]
    assert [i["name"] for i in state["instances"]] == ["flaskr-0", "flaskr-1"]  # process types are no instances
    assert state["config"]["names"] == ["MAIL_SERVER", "SECRET_TOKEN"]
    assert state["maintenance"] == {"snippet": any_app["maintenance_snippet"], "on": True}
    dirs = {d["path"]: d for d in state["shared"]["dirs"]}
    assert list(dirs) == ["instance/uploads", "exports"], dirs
    assert (dirs["instance/uploads"]["size"], dirs["instance/uploads"]["files"]) == (3 * 1024 * 1024, 1)
    assert dirs["exports"]["error"] == "missing"  # the next release's: not yet made, nothing needs attention
    reasons = "\n".join(state["attention"])
    assert "process flaskr-my-worker-0 (my-worker) is FATAL, not RUNNING" in reasons, reasons
    assert "maintenance mode is on" in reasons, reasons
    assert "flaskr-clock-0" not in reasons and "exports" not in reasons, reasons
    text, dumped = status.render_text(state), json.dumps(state)
    assert "hunter2" not in text and "smtp.example.org" not in text and "hunter2" not in dumped, text
    lines = text.splitlines()
    assert lines[1].startswith("release     20261121-101502-dcb3499 (commit dcb349900000, ref refs/heads/main), "
                               "deployed at "), lines  # fmt: skip
    for line in (
        "            web flaskr:create_app(); other process types: clock, my-worker",
        "processes",
        "  flaskr-clock-0     RUNNING   pid 2003     uptime 3540 s     restarts 2    crashes 1    type clock",
        "  flaskr-my-worker-0 FATAL     pid -        uptime -          restarts 0    crashes 0    type my-worker",
        f"config      2 set in {any_app['config_env']} (names only): MAIL_SERVER, SECRET_TOKEN",
        f"shared      under {any_app['shared_root']}, kept across releases (back them up)",
        "  instance/uploads 3.0 MiB in 1 file",
        "  exports          missing",
        "maintenance on: nginx answers 503 with the maintenance page",
    ):
        assert line in lines, "\n".join(lines)
    assert next(line for line in lines if line.split()[:1] == ["flaskr-0"]).endswith("closed to nginx (missing)")
    assert text.count("ATTENTION: ") == len(state["attention"])
    # A type of the release that no program runs (its count is 0) is named, not taken for web only.
    state["release"]["process_types"].append("mailer")
    assert "  (mailer)           no program (count 0)" in status.render_text(state).splitlines()
    state["processes"], state["release"]["process_types"] = [], []
    assert "processes   none (web only)" in status.render_text(state).splitlines()


def test_any_app_textfile_carries_its_process_types_and_maintenance(any_app):
    state = status.collect(any_app, NOW, textfile=True)
    assert "config" not in state and "shared" not in state  # nothing to export, and not walked every 15 s
    lines = status.render_textfile(state).splitlines()
    assert 'todo_process_up{name="flaskr-clock-0",type="clock"} 1' in lines, lines
    assert 'todo_process_up{name="flaskr-my-worker-0",type="my-worker"} 0' in lines, lines
    assert 'todo_process_crashes_total{name="flaskr-clock-0",type="clock"} 1' in lines, lines
    assert "todo_maintenance_mode 1" in lines, lines
    assert not [line for line in lines if "flaskr-clock" in line and line.startswith("todo_instance")], lines
    assert_exposition(lines)


def test_a_planted_symlink_is_never_followed_in_the_release_or_the_shared_dirs(any_app, tmp_path):
    meta = next((tmp_path / "srv/releases").iterdir()) / ".release.json"
    meta.rename(tmp_path / "elsewhere.json")
    meta.symlink_to(tmp_path / "elsewhere.json")
    uploads = tmp_path / "shared/instance/uploads"
    uploads.rename(tmp_path / "moved")
    uploads.symlink_to(tmp_path / "moved")
    state = status.collect(any_app, NOW)
    assert state["release"]["commit"] is None and state["release"]["shared_dirs"] == [], state["release"]
    dirs = {d["path"]: d for d in state["shared"]["dirs"]}
    assert dirs["instance/uploads"]["size"] is None, dirs
    assert "a symlink is not followed" in dirs["instance/uploads"]["error"], dirs
    reasons = "\n".join(state["attention"])
    assert "no readable" in reasons and "shared directory instance/uploads" in reasons, reasons
