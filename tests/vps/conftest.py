"""A fresh VPS (only root has a key): the machine scripts/machine start --vps makes, in the
machine directory TODO_VPS_DIR (scripts/test sets it; without it these tests are skipped)."""

import os
import subprocess
from pathlib import Path

import pytest

from deploy.ssh import try_login
from tests.conftest import ADDRESS, REPO, _route_is_local

VPS_DIR = os.environ.get("TODO_VPS_DIR")


@pytest.fixture(scope="session")
def vps():
    """The VPS machine's directory (key, known_hosts), once its route is proven local."""
    if not VPS_DIR:
        pytest.skip("no fresh VPS machine: scripts/test makes one (TODO_VPS_DIR)")
    _route_is_local()
    return Path(VPS_DIR)


def inventory(vps, path, user, **settings):
    """Write a pyinfra inventory for the VPS logging in as ``user``; return its path."""
    data = {
        "ssh_user": user,
        "ssh_key": str(vps / "id_ed25519"),
        "ssh_known_hosts_file": str(vps / "known_hosts"),
        "server_names": [ADDRESS],
        "rate_limit_exempt": ["192.168.56.2"],
        "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"],
        **({"_sudo": True} if user != "root" else {}),
        **settings,
    }
    path.write_text(f"hosts = [({ADDRESS!r}, {data!r})]\n")
    return path


def provision(target):
    """scripts/provision TARGET; return (exit status, output)."""
    run = subprocess.run(
        [str(REPO / "scripts/provision"), str(target)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    return run.returncode, run.stdout


def ssh(vps, user, command, port=None):
    """Run ``command`` on the VPS as ``user`` over a new SSH connection (the deploy's own
    try_login), on ``port`` (default 22); return the CompletedProcess."""
    data = {"ssh_key": str(vps / "id_ed25519"), "ssh_known_hosts_file": str(vps / "known_hosts"), "ssh_port": port}
    return try_login(data, ADDRESS, user, command)[1]
