"""The in-run login proofs (deploy/tasks/ssh.py), on this workstation with no host: logins are
stood in for, pyinfra's operations are recorded instead of run, and known_hosts is a file here
(``ssh -G`` and ``ssh-keygen -F`` only read configuration and files)."""

import shutil
import subprocess
import types

import pytest

import deploy.tasks.ssh as task
from deploy.tasks.ssh import (
    AdminLoginFailed,
    LoginLost,
    SshPortUnreachable,
    known_hosts_name,
    prove_admin_login,
    prove_login,
    proven,
    trust_moved_port,
)

HOST = "203.0.113.5"
needs_openssh = pytest.mark.skipif(not shutil.which("ssh") or not shutil.which("ssh-keygen"), reason="no OpenSSH here")
#: A run that moves SSH from 22 to 2222 as root (first contact).
S = {"login_user": "root", "login_port": 22, "sshd_port": 2222, "ssh_port_move": True, "ssh_ports": [2222]}
S |= {"admin_user": "admin"}


def login(returncode=0, stdout="", stderr=""):
    """What try_login returns for a login that ended with ``returncode``."""
    return ["ssh", HOST], subprocess.CompletedProcess(["ssh"], returncode, stdout, stderr)


@pytest.fixture
def logins(monkeypatch):
    """try_login answering from a list (the last answer repeats); records the users and commands."""
    answers, calls = [], []

    def try_login(data, destination, user, *command):
        calls.append((user, command))
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(task, "try_login", try_login)
    monkeypatch.setattr(task.time, "sleep", lambda seconds: None)
    return types.SimpleNamespace(answers=answers, calls=calls)


@pytest.fixture
def operations(monkeypatch):
    """pyinfra's operations recorded as (kind, name) in the order the task adds them; this host at HOST."""
    added = []

    def record(kind):
        def operation(**kwargs):
            added.append((kind, kwargs["name"]))
            return types.SimpleNamespace(did_change=lambda: True)

        return operation

    monkeypatch.setattr(task, "config_files", record("config_files"))
    monkeypatch.setattr(task, "systemd", types.SimpleNamespace(service=record("systemd.service")))
    monkeypatch.setattr(task, "python", types.SimpleNamespace(call=record("python.call")))
    monkeypatch.setattr(task, "this_host", lambda port=None: ({"ssh_port": port}, HOST))
    monkeypatch.setattr(task, "trust_moved_port", lambda *args: [])
    return added


@pytest.fixture
def known(tmp_path):
    """A known_hosts file that knows HOST on port 22 by a new ed25519 key: (its path, the key's "TYPE KEY")."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    key = " ".join((tmp_path / "key.pub").read_text().split()[:2])
    path = tmp_path / "known_hosts"
    path.write_text(f"{HOST} {key}\n")
    return path, key


def ssh_config(tmp_path, *lines):
    """An ssh_config of its own for the data (this box's ~/.ssh/config stays out); its path."""
    path = tmp_path / "ssh_config"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


@pytest.mark.parametrize(("port", "name"), [(None, HOST), (22, HOST), ("22", HOST), (2222, f"[{HOST}]:2222")])
def test_known_hosts_names_a_host_on_another_port_with_brackets(port, name):
    assert known_hosts_name(HOST, port) == name


@needs_openssh
def test_trust_moved_port_copies_the_known_key_to_the_new_port_once(tmp_path, known):
    path, key = known
    data = {"ssh_config_file": ssh_config(tmp_path), "ssh_known_hosts_file": str(path)}
    assert trust_moved_port(data, HOST, 22, 2222) == [f"[{HOST}]:2222 {key}\n"]
    assert trust_moved_port(data, HOST, 22, 2222) == []
    assert path.read_text() == f"{HOST} {key}\n[{HOST}]:2222 {key}\n"


@needs_openssh
def test_trust_moved_port_leaves_a_host_key_alias_alone(tmp_path, known):
    path, key = known
    data = {
        "ssh_config_file": ssh_config(tmp_path, "Host *", "  HostKeyAlias server"),
        "ssh_known_hosts_file": str(path),
    }
    assert trust_moved_port(data, HOST, 22, 2222) == []
    assert path.read_text() == f"{HOST} {key}\n"


def test_proven_takes_the_first_login_that_works(logins):
    logins.answers[:] = [login(255), login(0, f"192.0.2.1 50000 {HOST} 22\n")]
    cmd, proof = proven({}, HOST, "admin")
    assert proof.returncode == 0 and len(logins.calls) == 2
    assert logins.calls[0] == ("admin", ('echo "$SSH_CONNECTION"',))


def test_proven_gives_up_after_three_tries(logins):
    logins.answers[:] = [login(255, stderr="Connection refused")]
    cmd, proof = proven({}, HOST, "admin")
    assert proof.returncode == 255 and len(logins.calls) == 3


def test_proven_on_a_port_refuses_a_login_that_reached_sshd_on_another(logins):
    logins.answers[:] = [login(0, f"192.0.2.1 50000 {HOST} 22\n")]
    cmd, proof = proven({}, HOST, "admin", port=2222)
    assert proof.returncode == 1 and "not 2222 (NAT?)" in proof.stderr


def test_prove_login_that_fails_undoes_the_dropin_and_stops_the_run(logins, monkeypatch):
    logins.answers[:] = [login(255, stderr="Permission denied (publickey).")]
    ran = []
    monkeypatch.setattr(task, "host", types.SimpleNamespace(run_shell_command=lambda cmd, _sudo: ran.append(_sudo)))
    with pytest.raises(LoginLost, match=r"Permission denied .* only the SSH port\(s\) \[22\]"):
        prove_login("admin", {}, HOST, [22])
    assert ran == [True]


def test_prove_admin_login_runs_sudo_and_leaves_root_its_login_when_it_fails(logins):
    logins.answers[:] = [login(1, stderr="sudo: a password is required")]
    with pytest.raises(AdminLoginFailed, match="a password is required.*Root can still log in"):
        prove_admin_login("admin", {}, HOST)
    assert logins.calls == [("admin", ("sudo", "-n", "true"))]


def test_a_proven_move_closes_the_old_port_in_sshd_then_the_firewall(logins, operations, capsys):
    logins.answers[:] = [login(0, f"192.0.2.1 50000 {HOST} 2222\n")]
    walls = []
    task.finish_ssh_move(S, lambda s, name: walls.append((s["ssh_ports"], name)))
    assert operations[0] == ("config_files", "sshd listens on port 2222 only.")
    assert walls == [([2222], "The firewall lets SSH in on port 2222 only.")]
    assert f"From now on: admin@{HOST}:2222 (ssh_port 2222)" in capsys.readouterr().out


def test_an_unproven_move_keeps_the_old_port_and_stops_the_run(logins, operations):
    logins.answers[:] = [login(255, stderr="Connection refused")]
    walls = []
    with pytest.raises(SshPortUnreachable, match="SSH stays on port 22"):
        task.finish_ssh_move(S, lambda s, name: walls.append(s["ssh_ports"]))
    assert operations[0] == ("config_files", "sshd listens on port 22 only.") and walls == [[22]]


def test_root_login_closes_only_after_the_admin_user_is_proven(operations):
    task.close_root_login(S)
    assert operations == [
        ("python.call", f"Prove that admin@{HOST} can log in and use sudo (a second SSH connection)."),
        ("config_files", "Close root's SSH login: the admin user is proven."),
        ("systemd.service", "Reload sshd: its configuration changed and is valid."),
        ("python.call", "Prove that admin can still log in over a new SSH connection (else undo the drop-in)."),
        ("python.call", f"From now on, log in as admin: scripts/provision admin@{HOST}:2222"),
    ]
