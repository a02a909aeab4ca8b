"""The logs tool's parsers, window reader, merge and follow (deploy/server/logs.py, loaded by path):
every log format of the stack to its UTC time, lines without a time of their own kept after the
line before them, a window read from the end of a big file, files merged by time, and a followed
file that is appended to, truncated and replaced (no machine needed, no root)."""

import importlib.util
import io
import json
import os
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("logs_tool", REPO / "deploy/server/logs.py")
logs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(logs)

RID = "0123456789abcdef0123456789abcdef"


def at(*wall, ms=0):
    """Epoch seconds of a UTC wall-clock time."""
    return datetime(*wall, tzinfo=UTC).timestamp() + ms / 1000


@pytest.fixture
def berlin(monkeypatch):
    """The process's local time zone is Europe/Berlin (UTC+1 in November) for the test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def access(epoch, uri="/?x", rid=RID, **extra):
    """A line of nginx's access log (log_format todo_json), as nginx writes it."""
    entry = {
        "time": datetime.fromtimestamp(int(epoch), UTC).isoformat(),
        "msec": f"{epoch:.3f}",
        "remote_addr": "192.168.56.2",
        "request_id": rid,
        "host": "192.168.56.10",
        "method": "GET",
        "uri": uri,
        "protocol": "HTTP/1.1",
        "status": "200",
        "bytes": "16026",
        "referer": "",
        "user_agent": "python-requests/2.32.3",
        "upstream": "unix:/run/todo/todo-0.sock",
        "upstream_status": "200",
        "rt": "0.004",
        "urt": "0.004",
        "cache": "",
        **extra,
    }
    return json.dumps(entry, separators=(",", ":"))


# --- One line of each format -----------------------------------------------------------------------


def test_nginx_access_lines_are_timed_by_msec_and_shortened():
    epoch = at(2026, 11, 22, 19, 40, 6, ms=792)
    assert logs.parse_line("nginx-access", access(epoch)) == (
        pytest.approx(epoch),
        f"192.168.56.2 GET /?x 200 rt=0.004 upstream=unix:/run/todo/todo-0.sock cache= rid={RID}",
    )


def test_nginx_access_lines_without_msec_are_timed_by_time_iso8601():
    line = access(at(2026, 11, 22, 19, 40, 6), msec="-")
    assert logs.parse_line("nginx-access", line)[0] == at(2026, 11, 22, 19, 40, 6)


@pytest.mark.parametrize(
    "line",
    [
        '192.168.56.2 - - [22/Nov/2026:19:40:06 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.88.1"',
        '["a JSON list"]',
        '{"broken": ',
        '{"msec": "nan", "time": "not a time"}',
    ],
)
def test_nginx_access_lines_that_are_not_its_json_have_no_time(line):
    epoch, _ = logs.parse_line("nginx-access", line)
    assert epoch is None


def test_nginx_error_lines_are_in_local_time(berlin):
    line = "2026/11/22 19:29:14 [error] 121127#121127: *59570 client intended to send too large body"
    assert logs.parse_line("nginx-error", line) == (
        at(2026, 11, 22, 18, 29, 14),  # 19:29:14 CET
        "[error] 121127#121127: *59570 client intended to send too large body",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[2026-11-22 19:35:10 +0000] [100] [INFO] Control socket listening at /run/todo/todo-0.ctl",
            (at(2026, 11, 22, 19, 35, 10), "[100] [INFO] Control socket listening at /run/todo/todo-0.ctl"),
        ),
        (
            "[2026-11-22 20:35:10 +0100] [100] [INFO] Booting worker with pid: 107",
            (at(2026, 11, 22, 19, 35, 10), "[100] [INFO] Booting worker with pid: 107"),
        ),
        (
            f'192.168.56.2 [22/Nov/2026:19:40:06 +0000] "GET /?x HTTP/1.0" 200 16026 5ms pid=107 rid={RID} '
            "xff=192.168.56.2",
            (
                at(2026, 11, 22, 19, 40, 6),
                f'192.168.56.2 "GET /?x HTTP/1.0" 200 16026 5ms pid=107 rid={RID} xff=192.168.56.2',
            ),
        ),
        (
            ' [01/Feb/2026:03:04:05 -0500] "GET /healthz HTTP/1.0" 200 2 1ms pid=107 rid=- xff=-',
            (at(2026, 2, 1, 8, 4, 5), '"GET /healthz HTTP/1.0" 200 2 1ms pid=107 rid=- xff=-'),
        ),
        (
            "healthy after 0.5 s: /run/todo/todo-0.sock open to group www-data (0660)",
            (None, "healthy after 0.5 s: /run/todo/todo-0.sock open to group www-data (0660)"),
        ),
        ("Traceback (most recent call last):", (None, "Traceback (most recent call last):")),
    ],
)
def test_app_lines_are_parsed(line, expected):
    assert logs.parse_line("app", line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "2026-11-22 19:40:06.792 UTC [57] LOG:  checkpoint starting: time",
            (at(2026, 11, 22, 19, 40, 6, ms=792), "LOG:  checkpoint starting: time"),
        ),
        (
            '2026-11-22 20:40:06.792 +01 [1234] todo@todo ERROR:  relation "x" does not exist',
            (at(2026, 11, 22, 19, 40, 6, ms=792), 'todo@todo ERROR:  relation "x" does not exist'),
        ),
        ("\tFROM todo WHERE id = 1", (None, "\tFROM todo WHERE id = 1")),
        ("pg_ctl: another server might be running", (None, "pg_ctl: another server might be running")),
    ],
)
def test_postgresql_lines_are_parsed(line, expected):
    epoch, text = logs.parse_line("postgresql", line)
    assert text == expected[1]
    assert epoch == (None if expected[0] is None else pytest.approx(expected[0]))


def test_postgresql_lines_with_a_zone_name_are_in_local_time(berlin):
    epoch, _ = logs.parse_line("postgresql", "2026-11-22 20:40:06.500 CET [57] LOG:  checkpoint complete")
    assert epoch == pytest.approx(at(2026, 11, 22, 19, 40, 6, ms=500))


def test_supervisor_lines_are_in_local_time_with_milliseconds(berlin):
    line = "2026-11-22 19:35:13,803 INFO success: todo-0 entered RUNNING state, process has stayed up for > than 3 s"
    epoch, text = logs.parse_line("supervisor", line)
    assert epoch == pytest.approx(at(2026, 11, 22, 18, 35, 13, ms=803))
    assert text.startswith("INFO success: todo-0 entered RUNNING state")


def test_release_lines_name_action_release_outcome_seconds_user_and_the_rest():
    entry = {"time": "2026-11-22T19:28:51+00:00", "action": "restart", "release": "20261122-192714-ca3c41b"}
    line = json.dumps({**entry, "outcome": "ok", "seconds": 2.8, "by": "vagrant", "commit": "ca3c41b", "instances": 2})
    assert logs.parse_line("release", line) == (
        at(2026, 11, 22, 19, 28, 51),
        "restart 20261122-192714-ca3c41b ok 2.8 s by vagrant commit=ca3c41b instances=2",
    )


def test_output_lines_are_utc_with_milliseconds_and_the_source_padded():
    epoch = at(2026, 11, 22, 19, 40, 6, ms=792)
    line = logs.render(epoch, "postgresql", "LOG:  checkpoint starting: time", width=10)
    assert line == "2026-11-22T19:40:06.792Z postgresql  LOG:  checkpoint starting: time\n"
    assert logs.render(epoch, "nginx", "x", width=10) == "2026-11-22T19:40:06.792Z nginx       x\n"


def test_control_characters_of_a_client_are_printed_escaped():
    _, text = logs.parse_line("nginx-access", access(1.0, uri="/\u001b[2J\u009b"))
    assert "\x1b" not in logs.render(1.0, "nginx", text) and "/\\x1b[2J\\x9b" in logs.render(1.0, "nginx", text)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("0s", 0)])
def test_durations(text, seconds):
    assert logs.duration(text) == seconds


@pytest.mark.parametrize("text", ["banana", "10", "10x", "-5m", "1.5h", "m", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        logs.duration(text)


# --- Files: windows, untimed lines, merge ---------------------------------------------------------


def test_untimed_lines_take_the_previous_time_and_stay_after_it(tmp_path):
    path = tmp_path / "todo-0.log"
    path.write_text(
        "healthy after 0.1 s: nothing timed before this line, so it is left out\n"
        "[2026-11-22 19:35:10 +0000] [100] [INFO] Starting gunicorn 23.0.0\n"
        "healthy after 0.5 s: /run/todo/todo-0.sock open to group www-data (0660)\n"
        "\n"
        "[2026-11-22 19:35:12 +0000] [107] [ERROR] Exception in worker process\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
    )
    groups = list(logs.read_since(path, "app", 0))
    assert groups == [
        (at(2026, 11, 22, 19, 35, 10), ["[100] [INFO] Starting gunicorn 23.0.0",
                                         "healthy after 0.5 s: /run/todo/todo-0.sock open to group www-data (0660)"]),
        (at(2026, 11, 22, 19, 35, 12), ["[107] [ERROR] Exception in worker process",
                                         "Traceback (most recent call last):", '  File "x.py", line 1, in <module>']),
    ]  # fmt: skip


def test_postgresql_continuation_lines_stay_with_their_statement(tmp_path):
    path = tmp_path / "postgresql-15-main.log"
    path.write_text(
        "2026-11-22 19:40:06.792 UTC [57] LOG:  checkpoint starting: time\n"
        '2026-11-22 19:40:07.001 UTC [90] todo@todo ERROR:  syntax error at or near "FORM"\n'
        "2026-11-22 19:40:07.001 UTC [90] todo@todo STATEMENT:  SELECT *\n"
        "\tFORM todo\n"
    )
    groups = list(logs.read_since(path, "postgresql", at(2026, 11, 22, 19, 40, 7)))
    assert [texts for _, texts in groups] == [
        ['todo@todo ERROR:  syntax error at or near "FORM"'],
        ["todo@todo STATEMENT:  SELECT *", "\tFORM todo"],
    ]


def test_merge_orders_the_lines_of_several_files_by_time_keeping_groups_together():
    nginx = [(10.0, "nginx", ["n1"]), (12.0, "nginx", ["n2"]), (20.0, "nginx", ["n3"])]
    app = [(11.0, "todo-0", ["a1"]), (12.0, "todo-0", ["a2", "a2 continued"]), (19.5, "todo-0", ["a3"])]
    db = [(12.0, "postgresql", ["p1", "\tp1 continued"]), (12.0, "postgresql", ["p2"])]
    merged = list(logs.merge([iter(nginx), iter(app), iter(db)]))
    assert [text for _, _, text in merged] == ["n1", "a1", "n2", "a2", "a2 continued", "p1", "\tp1 continued", "p2",
                                               "a3", "n3"]  # fmt: skip
    assert [epoch for epoch, _, _ in merged] == sorted(epoch for epoch, _, _ in merged)


def test_read_since_yields_only_the_window_and_reads_a_big_file_from_its_end(tmp_path, monkeypatch):
    """10,000 access log lines, one a second; a 300 s window: its 300 lines (and a line of the old
    format inside it, with the time before it), found without parsing the whole file."""
    start = at(2026, 11, 22, 17, 0, 0)
    path = tmp_path / "access.log"
    lines = [access(start + n + 0.25, uri=f"/?n={n}", rid=f"{n:032x}") for n in range(10_000)]
    lines.insert(9_900, '192.168.56.2 - - [22/Nov/2026:19:46:40 +0000] "GET /old HTTP/1.1" 200 612 "-" "-"')
    path.write_text("\n".join(lines) + "\n")
    since = start + 9_700
    parsed = []
    real = logs.parse_line
    monkeypatch.setattr(logs, "parse_line", lambda kind, line: parsed.append(line) or real(kind, line))

    groups = list(logs.read_since(path, "nginx-access", since))

    texts = [text for _, texts in groups for text in texts]
    assert (
        len(texts) == 301
        and texts[0].startswith("192.168.56.2 GET /?n=9700 200")
        and texts[-1].endswith(f"rid={9_999:032x}")
    )
    assert all(epoch >= since for epoch, _ in groups)
    old = next(group for group in groups if "/old" in group[1][-1])
    assert old[1][0].startswith("192.168.56.2 GET /?n=9899 ") and old[0] == pytest.approx(start + 9_899.25)
    assert len(parsed) < 1_000, "the window's start was looked for from the file's end"


def test_read_since_a_window_before_every_line_yields_the_whole_file_and_a_missing_file_raises(tmp_path):
    path = tmp_path / "releases.log"
    path.write_text(json.dumps({"time": "2026-11-22T19:28:51+00:00", "action": "deploy"}) + "\nnot json\n")
    assert list(logs.read_since(path, "release", 0)) == [(at(2026, 11, 22, 19, 28, 51), ["deploy", "not json"])]
    assert list(logs.read_since(path, "release", at(2027, 1, 1, 0, 0, 0))) == []
    with pytest.raises(FileNotFoundError):
        list(logs.read_since(tmp_path / "nope.log", "release", 0))


def test_start_offset_is_found_across_blocks(tmp_path):
    """Blocks far smaller than a line: the start is still the last old line's first byte."""
    path = tmp_path / "supervisord.log"
    path.write_text("".join(f"2026-11-22 19:{m:02d}:00,000 INFO line {m}\n" for m in range(60)))
    with open(path, "rb") as file:
        offset = logs.start_offset(file, "supervisor", logs.local(2026, 11, 22, 19, 30, 0), block=7)
        file.seek(offset)
        assert file.readline() == b"2026-11-22 19:29:00,000 INFO line 29\n"


# --- Follow ---------------------------------------------------------------------------------------


def stat_of(ino=1, dev=1, size=0):
    """An os.stat_result of a regular file with these inode, device and size."""
    return os.stat_result((0o100644, ino, dev, 1, 0, 0, size, 0, 0, 0))


@pytest.mark.parametrize(
    ("new", "position", "expected"),
    [
        (stat_of(size=500), 400, None),  # grew
        (stat_of(size=400), 400, None),  # unchanged
        (stat_of(size=100), 400, "truncated"),  # copytruncate
        (stat_of(size=0), 400, "truncated"),
        (stat_of(ino=2, size=900), 400, "replaced"),  # renamed and created anew, even if longer
        (stat_of(dev=2, size=500), 400, "replaced"),
        (None, 400, None),  # renamed, not created yet: keep reading the old one
    ],
)
def test_reopen_needed(new, position, expected):
    assert logs.reopen_needed(stat_of(size=400), new, position) == expected


def line(epoch, text):
    return f"[{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M:%S} +0000] [1] [INFO] {text}\n"


def texts(groups):
    return [text for _, texts in groups for text in texts]


def test_a_followed_file_is_read_through_appends_truncation_and_replacement(tmp_path):
    now = time.time()
    path = tmp_path / "todo-0.log"
    path.write_text(line(now - 3600, "old") + line(now - 5, "recent") + line(now - 4, "partial")[:-4])
    log = logs.LogFile("todo-0", "app", path)
    assert log.open()
    assert texts(log.since(now - 60, partial=False)) == ["[1] [INFO] recent"]
    assert log.poll() == []  # the partial line waits for its newline

    with open(path, "a") as file:
        file.write("ial\n" + "healthy after 0.5 s\n" + line(now - 3, "appended"))
    assert texts(log.poll()) == ["[1] [INFO] partial", "healthy after 0.5 s", "[1] [INFO] appended"]

    with open(path, "r+") as file:  # copytruncate: the same file, emptied, then written again
        file.truncate(0)
        file.write(line(now - 2, "after truncation"))
    assert texts(log.poll()) == ["[1] [INFO] after truncation"]

    path.rename(tmp_path / "todo-0.log.1")  # rotated: renamed; the writer still writes to it until it reopens
    with open(tmp_path / "todo-0.log.1", "a") as file:
        file.write(line(now - 1, "written to the renamed file"))
    assert texts(log.poll()) == ["[1] [INFO] written to the renamed file"]  # no new file yet: the old one

    with open(tmp_path / "todo-0.log.1", "a") as file:
        file.write(line(now - 1, "last of the old file"))
    path.write_text(line(now, "first of the new file"))  # the writer reopened: a new file
    assert texts(log.poll()) == ["[1] [INFO] last of the old file", "[1] [INFO] first of the new file"]
    with open(path, "a") as file:
        file.write(line(now, "second of the new file"))
    assert texts(log.poll()) == ["[1] [INFO] second of the new file"]
    log.close()


def test_a_followed_file_that_appears_later_is_read_from_its_start(tmp_path):
    log = logs.LogFile("release", "release", tmp_path / "releases.log")
    assert not log.open() and log.poll() == []
    (tmp_path / "releases.log").write_text(json.dumps({"time": "2026-11-22T19:28:51+00:00", "action": "deploy"}) + "\n")
    assert texts(log.poll()) == ["deploy"]
    log.close()


def test_follow_prints_new_lines_of_every_file_merged_by_time(tmp_path):
    now = time.time()
    first, second = tmp_path / "todo-0.log", tmp_path / "todo-1.log"
    first.write_text("")
    second.write_text("")
    files = [logs.LogFile("todo-0", "app", first), logs.LogFile("todo-1", "app", second)]
    for log in files:
        log.open()
    first.write_text(line(now - 2, "a") + line(now, "c"))
    second.write_text(line(now - 1, "b"))
    out = io.StringIO()
    logs.follow(files, out, width=6, interval=0, rounds=1)
    assert [row.split(None, 1)[1] for row in out.getvalue().splitlines()] == [
        "todo-0  [1] [INFO] a",
        "todo-1  [1] [INFO] b",
        "todo-0  [1] [INFO] c",
    ]


# --- Which files, and the tool as a whole ----------------------------------------------------------


def test_log_files_of_each_source(tmp_path):
    log, etc = tmp_path / "log", tmp_path / "etc"
    (log / "todo").mkdir(parents=True)
    for name in ("todo-10.log", "todo-2.log", "todo-0.log", "todo-0.log.1", "releases.log", "todo-extra.log"):
        (log / "todo" / name).write_text("")
    (etc / "todo").mkdir(parents=True)
    (etc / "todo/backup.json").write_text(json.dumps({"postgresql_version": 15}))

    def files(source):
        return [(name, kind, str(path.relative_to(tmp_path))) for name, kind, path in
                logs.log_files(source, "todo", etc, log)]  # fmt: skip

    assert files("nginx") == [("nginx", "nginx-access", "log/nginx/access.log"),
                              ("nginx", "nginx-error", "log/nginx/error.log")]  # fmt: skip
    assert files("app") == [("todo-0", "app", "log/todo/todo-0.log"), ("todo-2", "app", "log/todo/todo-2.log"),
                            ("todo-10", "app", "log/todo/todo-10.log"),
                            ("supervisor", "supervisor", "log/supervisor/supervisord.log")]  # fmt: skip
    assert files("postgresql") == [("postgresql", "postgresql", "log/postgresql/postgresql-15-main.log")]
    assert files("release") == [("release", "release", "log/todo/releases.log")]
    assert len(files("all")) == 2 + 4 + 1 + 1

    (etc / "todo/backup.json").unlink()  # no settings: whichever cluster logs there are
    (log / "postgresql").mkdir()
    for name in ("postgresql-15-main.log", "postgresql-9-main.log"):
        (log / "postgresql" / name).write_text("")
    assert [path for _, _, path in files("postgresql")] == ["log/postgresql/postgresql-9-main.log",
                                                            "log/postgresql/postgresql-15-main.log"]  # fmt: skip


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(logs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(logs.signal, "signal", lambda *args: None)  # the test process keeps its handlers


def test_main_prints_every_source_merged_by_time_and_notes_missing_files(tmp_path, monkeypatch, capsys, as_root):
    now = time.time()
    (tmp_path / "access.log").write_text(access(now - 7200, uri="/too-old") + "\n" + access(now - 2) + "\n")
    (tmp_path / "todo-0.log").write_text(line(now - 3, "started") + line(now - 1, "served"))
    (tmp_path / "releases.log").write_text(
        json.dumps({"time": datetime.fromtimestamp(now - 2.5, UTC).isoformat(), "action": "deploy"}) + "\n"
    )
    monkeypatch.setattr(logs, "log_files", lambda source: [
        ("nginx", "nginx-access", tmp_path / "access.log"), ("nginx", "nginx-error", tmp_path / "error.log"),
        ("todo-0", "app", tmp_path / "todo-0.log"), ("release", "release", tmp_path / "releases.log"),
    ])  # fmt: skip

    assert logs.main(["all", "--since", "10m"]) == 0
    out, err = capsys.readouterr()
    assert [row.split(None, 1)[1] for row in out.splitlines()] == [
        "todo-0   [1] [INFO] started",
        "release  deploy",
        f"nginx    192.168.56.2 GET /?x 200 rt=0.004 upstream=unix:/run/todo/todo-0.sock cache= rid={RID}",
        "todo-0   [1] [INFO] served",
    ]
    assert "error.log: no such file, skipped" in err

    assert logs.main(["all", "--lines", "1"]) == 0
    assert capsys.readouterr().out.endswith("todo-0   [1] [INFO] served\n")


def test_main_exits_1_when_no_file_of_the_source_exists(tmp_path, monkeypatch, capsys, as_root):
    monkeypatch.setattr(logs, "log_files", lambda source: [("release", "release", tmp_path / "releases.log")])
    assert logs.main(["release"]) == 1
    assert "no log file of release" in capsys.readouterr().err


def test_main_refuses_bad_usage_and_non_root(monkeypatch, capsys):
    for argv in (["--since", "banana"], ["kernel"], ["--lines", "0"], ["--nope"]):
        with pytest.raises(SystemExit) as exited:
            logs.main(argv)
        assert exited.value.code == 2, argv
    monkeypatch.setattr(logs.os, "geteuid", lambda: 1000)
    assert logs.main([]) == 2
    assert "run as root" in capsys.readouterr().err


def test_the_tool_is_executable_with_an_isolated_python_shebang():
    tool = REPO / "deploy/server/logs.py"
    assert tool.read_text().startswith("#!/usr/bin/python3 -I\n") and os.access(tool, os.X_OK)
