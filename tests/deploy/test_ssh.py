"""The one TARGET parser (deploy/ssh.py) every operator script uses, scripts/provision through
``python -m deploy.ssh``: no host is contacted, and the route guard, vagrant and the local
machine are stood in for (no machine here)."""

import subprocess
import sys

import pytest

import deploy.ssh
from deploy.ssh import InventoryError, TargetError, on_port, parse, pyinfra_args, resolve
from tests.conftest import REPO

BAD_TARGETS = [
    ("nope", "bad target nope: expected local, vagrant, USER@HOST[:PORT] or an inventory .py file"),
    ("", "bad target : expected local, vagrant, USER@HOST[:PORT] or an inventory .py file"),
    ("root@", "bad target root@: expected USER@HOST[:PORT]"),
    ("@203.0.113.5", "bad target @203.0.113.5: expected USER@HOST[:PORT]"),
    ("root@:22", "bad target root@:22: expected USER@HOST[:PORT]"),
    ("root@203.0.113.5:ssh", "bad target root@203.0.113.5:ssh: expected USER@HOST[:PORT]"),
]


@pytest.fixture
def no_machine(monkeypatch):
    """The route guard as if every address were local: records the checks instead of running scripts/machine."""
    checked = []
    monkeypatch.setattr(deploy.ssh, "route_is_local", lambda: checked.append("192.168.56.10"))
    monkeypatch.setattr(
        deploy.ssh, "guard_routes", lambda datas: checked.extend(d.get("private_address") for d in datas)
    )
    return checked


def cli(*args):
    """``python -m deploy.ssh ARGS`` from the repo root, as scripts/provision runs it."""
    return subprocess.run([sys.executable, "-m", "deploy.ssh", *args], cwd=REPO, capture_output=True, text=True)


def inventory_file(tmp_path, text):
    """An inventory file holding ``text``; its path."""
    path = tmp_path / "inventory.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("local", ("inventory", "deploy/inventories/local.py")),
        ("vagrant", ("inventory", "deploy/inventories/vagrant.py")),
        ("deploy/inventories/example.py", ("inventory", "deploy/inventories/example.py")),
        ("ops@prod.py", ("inventory", "ops@prod.py")),
        ("root@203.0.113.5", ("login", ("root", "203.0.113.5", None))),
        ("admin@203.0.113.5:2222", ("login", ("admin", "203.0.113.5", 2222))),
    ],
)
def test_parse_reads_each_kind_of_target(target, parsed):
    assert parse(target) == parsed


@pytest.mark.parametrize(("target", "message"), BAD_TARGETS)
def test_parse_refuses_a_bad_target_with_status_2(target, message):
    with pytest.raises(TargetError) as refused:
        parse(target)
    assert str(refused.value) == message and refused.value.status == 2


def test_resolve_gives_user_at_host_its_login_data():
    assert resolve("admin@203.0.113.5:2222") == [("203.0.113.5", {"ssh_user": "admin", "ssh_port": 2222})]
    assert resolve("root@203.0.113.5") == [("203.0.113.5", {"ssh_user": "root"})]


def test_resolve_refuses_a_missing_inventory_file():
    with pytest.raises(TargetError, match=r"^inventory missing\.py: no such file$") as refused:
        resolve("missing.py")
    assert refused.value.status == 2


def test_resolve_checks_the_route_of_local_and_reads_its_inventory(no_machine):
    assert [name for name, _ in resolve("local")] == ["default"]
    assert no_machine[0] == "192.168.56.10"


def test_an_inventory_without_hosts_is_an_inventory_error(tmp_path, no_machine):
    with pytest.raises(InventoryError, match="no hosts"):
        resolve(str(inventory_file(tmp_path, "x = 1\n")))


@pytest.mark.parametrize(
    ("target", "args"),
    [
        ("root@203.0.113.5", ["--user", "root", "203.0.113.5"]),
        ("admin@203.0.113.5", ["--user", "admin", "--sudo", "203.0.113.5"]),
        ("admin@203.0.113.5:2222", ["--user", "admin", "--sudo", "--port", "2222", "203.0.113.5"]),
    ],
)
def test_pyinfra_args_of_user_at_host_log_in_as_user_with_sudo_unless_root(target, args):
    assert pyinfra_args(target) == args


def test_pyinfra_args_of_an_inventory_file_are_its_path_once_its_routes_are_checked(tmp_path, no_machine):
    path = inventory_file(tmp_path, "hosts = [('db', {'private_address': '192.168.56.20'})]\n")
    assert pyinfra_args(str(path)) == [str(path)]
    assert no_machine == ["192.168.56.20"]


def test_pyinfra_args_of_local_need_the_local_machines_ssh_config(tmp_path, monkeypatch, no_machine):
    monkeypatch.setenv("TODO_MACHINE_DIR", str(tmp_path))
    with pytest.raises(TargetError, match="^no local machine: scripts/machine start$"):
        pyinfra_args("local")
    (tmp_path / "ssh-config").write_text("Host default\n")
    assert pyinfra_args("local") == ["deploy/inventories/local.py"]


def test_pyinfra_args_of_vagrant_need_vagrant_before_anything_runs(monkeypatch, no_machine):
    monkeypatch.setattr(deploy.ssh.shutil, "which", lambda name: None)
    monkeypatch.setattr(deploy.ssh.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    with pytest.raises(TargetError, match="^vagrant is not installed$"):
        pyinfra_args("vagrant")
    assert no_machine == []


@pytest.mark.parametrize(
    ("target", "moved"),
    [
        ("admin@203.0.113.5", "admin@203.0.113.5:2222"),
        ("admin@203.0.113.5:22", "admin@203.0.113.5:2222"),
        ("local", "local"),
        ("deploy/inventories/example.py", "deploy/inventories/example.py"),
        ("ops@prod.py", "ops@prod.py"),
    ],
)
def test_on_port_moves_only_a_user_at_host_target(target, moved):
    assert on_port(target, "2222") == moved


def test_cli_prints_pyinfra_args_each_ended_by_a_nul():
    run = cli("pyinfra-args", "admin@203.0.113.5:2222")
    args = ["--user", "admin", "--sudo", "--port", "2222", "203.0.113.5"]
    assert run.returncode == 0 and run.stdout == "".join(f"{arg}\0" for arg in args)


@pytest.mark.parametrize(("target", "message"), BAD_TARGETS)
def test_cli_refuses_a_bad_target_as_provision_does(target, message):
    run = cli("pyinfra-args", target)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", f"provision: {message}\n")


def test_cli_refuses_a_missing_inventory_with_status_2():
    run = cli("pyinfra-args", "missing-inventory.py")
    assert (run.returncode, run.stderr) == (2, "provision: inventory missing-inventory.py: no such file\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [("hosts = [\n", ": SyntaxError: "), ("x = 1\n", ": no hosts"), ("raise ValueError('bad')\n", ": ValueError: bad")],
)
def test_cli_refuses_an_inventory_it_cannot_use_with_status_1(tmp_path, text, message):
    path = inventory_file(tmp_path, text)
    run = cli("pyinfra-args", str(path))
    assert run.returncode == 1 and run.stdout == "" and run.stderr.startswith(f"provision: inventory {path}{message}")


def test_cli_prints_the_target_on_the_new_port():
    run = cli("on-port", "root@203.0.113.5", "2222")
    assert (run.returncode, run.stdout) == (0, "root@203.0.113.5:2222\n")


def test_cli_without_a_question_prints_its_usage():
    run = cli("resolve")
    assert run.returncode == 2 and run.stderr.startswith("usage: python -m deploy.ssh")


def test_provision_asks_deploy_ssh_for_its_target():
    """scripts/provision parses no TARGET of its own: the rules are deploy/ssh.py's."""
    script = (REPO / "scripts/provision").read_text()
    assert "-m deploy.ssh pyinfra-args" in script and 'case "${target}"' not in script
