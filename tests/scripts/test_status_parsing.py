"""The status tool's parsers and renderers (deploy/server/status.py, loaded by path): supervisorctl
lines, openssl's end date, supervisord's spawn lines since boot, the access log's window (JSON lines,
other lines skipped), a collection whose every command fails, and the textfile's exposition format
(no machine needed, no root)."""

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
    written by the status tool (its textfile) or by the app (todo/metrics.py)."""
    rules = (REPO / "monitoring/alerts.yml").read_text()
    writers = (REPO / "deploy/server/status.py").read_text() + (REPO / "app/todo/metrics.py").read_text()
    read = set(re.findall(r"\btodo_[a-z_]+", re.sub(r"(?m)^\s*#.*$", "", rules)))
    for suffix in ("_bucket", "_count", "_sum"):  # a histogram's series
        read = {name.removesuffix(suffix) for name in read}
    read = {name.removesuffix("_total") if name.startswith("todo_http_requests") else name for name in read}
    assert read and all(f'"{name}"' in writers for name in read), sorted(n for n in read if f'"{n}"' not in writers)
