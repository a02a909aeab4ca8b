"""The server tools' shared module (deploy/server/server_common.py), without a machine: environment
files, the processes conf, atomic writes, the release lock, HTTP over a unix socket, and every tool
finding the module beside it in a checkout."""

import errno
import http.server
import importlib.util
import os
import socketserver
import threading
from pathlib import Path

import pytest

from deploy.server import server_common
from tests.conftest import REPO


def test_env_files_are_key_value_lines_without_comments_or_quoting():
    text = '# a comment\n  # INDENTED=comment\nA=1\n  B = two words \nC=x=y\nnot a pair\n\nA=again\nD="q"\n'
    assert server_common.parse_env(text) == {"A": "again", "B": "two words", "C": "x=y", "D": '"q"'}


def test_a_missing_env_file_is_empty_unless_it_must_exist(tmp_path):
    assert server_common.read_env_file(tmp_path / "missing") == {}
    with pytest.raises(FileNotFoundError):
        server_common.read_env_file(tmp_path / "missing", missing_ok=False)
    (tmp_path / "app.env").write_text("SECRET_KEY=abc\n", encoding="utf-8")
    assert server_common.read_env_file(tmp_path / "app.env", missing_ok=False) == {"SECRET_KEY": "abc"}


def test_env_names_are_valid_variable_names_sorted_once_never_values():
    text = "B=1\nA=x=y\n# C=3\n\nnot an assignment\n1X=2\nA=again\nexport D=4\n  E = spaced \n"
    assert server_common.parse_env_names(text) == ["A", "B", "E"]


def test_the_processes_conf_gives_each_program_its_type_in_the_files_order():
    text = (
        "; Managed by shop-release: the process types of the current release (its Procfile).\n\n"
        "[program:shop-worker-1]\ncommand=/usr/local/lib/shop/launch --process worker\nuser=shop\n\n"
        "[program:shop-worker-0]\ncommand=/usr/local/lib/shop/launch --process worker\n\n"
        "  [program:shop-clock-0]  \ncommand = /usr/local/lib/shop/launch --process clock\n"
    )
    conf = server_common.parse_processes_conf(text, "shop")
    assert conf == {"shop-worker-1": "worker", "shop-worker-0": "worker", "shop-clock-0": "clock"}
    assert list(conf) == ["shop-worker-1", "shop-worker-0", "shop-clock-0"]


def test_a_process_type_comes_from_the_program_name_when_its_command_names_none():
    text = "[program:shop-my-worker-3]\ncommand=/bin/true\n[group:x]\ncommand=x --process nope\n[program:other]\n"
    assert server_common.parse_processes_conf(text, "shop") == {"shop-my-worker-3": "my-worker", "other": None}
    assert server_common.parse_processes_conf("", "shop") == {}


def test_the_processes_conf_is_in_supervisors_conf_d_named_after_the_app():
    assert server_common.processes_conf_path("shop") == "/etc/supervisor/conf.d/shop-processes.conf"


def test_a_file_is_replaced_whole_with_its_mode_whatever_the_umask(tmp_path):
    target = tmp_path / "todo.prom"
    target.write_text("old\n")
    old_umask = os.umask(0o077)
    try:
        server_common.write_atomically(target, "new\n", 0o640)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["todo.prom"]


def test_a_failed_write_leaves_the_file_as_it_was_and_no_new_copy(tmp_path):
    target = tmp_path / "config.env"
    target.write_text("A=1\n")
    with pytest.raises(UnicodeEncodeError):
        server_common.write_atomically(target, "A=\udc80\n")
    assert target.read_text() == "A=1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.env"]


def test_a_write_never_goes_through_a_symlink_planted_at_its_new_copy(tmp_path):
    target, elsewhere = tmp_path / "snippet.conf", tmp_path / "elsewhere"
    elsewhere.write_text("untouched\n")
    (tmp_path / f"snippet.conf.tmp.{os.getpid()}").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        server_common.write_atomically(target, "return 503;\n")
    assert elsewhere.read_text() == "untouched\n" and not target.exists()


def test_a_fifo_is_refused_as_not_regular_and_a_symlink_as_a_loop(tmp_path):
    """The release tool tells the two apart in its message (read_app_file)."""
    (tmp_path / "real").write_text("text")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(server_common.NotRegularFile):
        server_common.read_regular(tmp_path / "fifo")
    with pytest.raises(OSError) as refused:
        server_common.read_regular(tmp_path / "link")
    assert refused.value.errno == errno.ELOOP and not isinstance(refused.value, server_common.NotRegularFile)


def test_the_release_lock_is_held_by_one_process_at_a_time(tmp_path):
    path = tmp_path / "shop-release.lock"
    held = server_common.take_lock(path)
    assert held is not None and path.stat().st_mode & 0o777 == 0o600
    assert server_common.take_lock(path) is None  # flock(2): another open file is refused
    held.close()
    assert server_common.take_lock(path) is not None
    assert server_common.RELEASE_LOCK.format(app="shop") == "/run/shop-release.lock"


def test_only_root_may_run_a_tool(monkeypatch, capsys):
    monkeypatch.setattr(server_common.os, "geteuid", lambda: 1000)
    assert not server_common.require_root("shop-status")
    assert not server_common.require_root("shop-maintenance", how="")
    assert capsys.readouterr().err == "shop-status: run as root (sudo)\nshop-maintenance: run as root\n"
    monkeypatch.setattr(server_common.os, "geteuid", lambda: 0)
    assert server_common.require_root("shop-status") and capsys.readouterr().err == ""


def test_the_app_of_a_lib_directory_is_its_name(monkeypatch):
    monkeypatch.setenv("STACK_APP", "other")
    assert server_common.app_of_lib(Path("/usr/local/lib/shop")) == "shop"
    assert server_common.app_of_lib(REPO / "deploy/server") == "other"
    monkeypatch.delenv("STACK_APP")
    assert server_common.app_of_lib(REPO / "deploy/server") == "todo"


def test_times_are_utc_text():
    assert server_common.stamp(1795377618) == "2026-11-22 20:00:18+00"


@pytest.fixture
def unix_server(tmp_path):
    """An HTTP server on a unix socket that answers GET /healthz 200 and anything else 503; its path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path == "/healthz" else 503
            body = f"{self.path} from {self.headers['Host']}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

        def address_string(self):
            return "unix"

    path = str(tmp_path / "shop-0.sock")
    server = socketserver.UnixStreamServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_a_get_over_a_unix_socket_returns_the_status_and_body(unix_server):
    assert server_common.unix_get(unix_server, "/healthz") == (200, "/healthz from localhost")
    assert server_common.unix_get(unix_server, "/") == (503, "/ from localhost")


def test_a_get_to_a_missing_socket_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        server_common.unix_get(str(tmp_path / "none.sock"), "/healthz", timeout=0.5)


@pytest.mark.parametrize("tool", ["release", "status", "logs", "backup", "maintenance", "launch", "healthcheck"])
def test_every_server_tool_finds_the_shared_module_beside_it_in_a_checkout(tool):
    """Loaded by path as on the server (not as a package), each tool imports server_common."""
    spec = importlib.util.spec_from_file_location(f"{tool}_tool", REPO / f"deploy/server/{tool}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main
