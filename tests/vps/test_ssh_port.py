"""SSH moves to another port and back without a lockout (deploy/tasks/hardening.py): the firewall
opens the new port, sshd listens on both, a login on the new one is proven, then the old one
closes; a new port nobody can reach leaves SSH where it was. Runs after test_first_contact.py,
as admin, on the same VPS machine."""

import re
import subprocess

import pytest

from tests.conftest import ADDRESS
from tests.vps.conftest import inventory, provision, ssh

#: A table on this box standing in for a provider's firewall in front of the server.
PROVIDER = "todo_test_provider"


def listening(vps, port):
    """sshd's ports (sshd -T) and the firewall's SSH rule, read over SSH on ``port``."""
    answer = ssh(vps, "admin", "sudo -n sshd -T | grep '^port '; sudo -n nft list chain inet filter input", port)
    assert answer.returncode == 0, answer.stderr
    ports = sorted(int(line.split()[1]) for line in answer.stdout.splitlines() if line.startswith("port "))
    rule = re.search(r"tcp dport \{?\s*([\d, ]+?)\s*\}? ct state new add @ssh_clients4", answer.stdout)
    return ports, sorted(int(p) for p in rule.group(1).split(",")) if rule else None


def changes(out):
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", out)
    assert total, out[-2000:]
    return total.group(2)


@pytest.fixture
def provider_refuses():
    """This box refuses (TCP reset) new connections to the VPS on a port, like a provider's firewall."""
    rules = []

    def refuse(port):
        nft = (
            f"add table inet {PROVIDER}\n"
            f"add chain inet {PROVIDER} output {{ type filter hook output priority 0; policy accept; }}\n"
            f"add rule inet {PROVIDER} output ip daddr {ADDRESS} tcp dport {port} reject with tcp reset\n"
        )
        subprocess.run(["nft", "-f", "-"], input=nft, text=True, check=True)
        rules.append(port)

    yield refuse
    if rules:
        subprocess.run(["nft", "delete", "table", "inet", PROVIDER], check=True)


def test_a_new_ssh_port_nobody_can_reach_leaves_ssh_where_it_was(vps, tmp_path, provider_refuses):
    provider_refuses(2200)
    code, out = provision(inventory(vps, tmp_path / "admin.py", "admin", sshd_port=2200))
    assert code != 0 and "SSH stays on port 22" in out, out[-3000:]
    assert ssh(vps, "admin", "true").returncode == 0, "locked out of port 22"
    assert listening(vps, 22) == ([22], [22])


def test_ssh_moves_to_a_new_port_and_the_firewall_follows(vps, tmp_path, report):
    code, out = provision(inventory(vps, tmp_path / "move.py", "admin", sshd_port=2222))
    assert code == 0, out[-3000:]
    assert f"From now on: admin@{ADDRESS}:2222" in out
    assert listening(vps, 2222) == ([2222], [2222])
    old = ssh(vps, "admin", "true", 22)
    assert old.returncode == 255, "port 22 still answers"
    # The inventory that says where SSH is now (as the run told): a second run changes nothing.
    code, out = provision(inventory(vps, tmp_path / "moved.py", "admin", ssh_port=2222))
    assert code == 0 and changes(out) == "-", out[-3000:]


def test_ssh_moves_back_to_22(vps, tmp_path):
    code, out = provision(inventory(vps, tmp_path / "back.py", "admin", ssh_port=2222, sshd_port=22))
    assert code == 0, out[-3000:]
    assert listening(vps, 22) == ([22], [22])
    assert ssh(vps, "admin", "true", 2222).returncode == 255
    code, out = provision(inventory(vps, tmp_path / "admin.py", "admin"))
    assert code == 0 and changes(out) == "-", out[-3000:]
