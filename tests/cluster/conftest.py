"""The cluster suite: deploy/inventories/cluster.py on three local machines (scripts/up
--cluster): lb and app at 192.168.56.10 (machine "app"; the tests' ``host``), PostgreSQL at
192.168.56.20 (machine "db"), pgBackRest's repository at 192.168.56.30 (machine "backup")."""

import subprocess

import pytest
import testinfra

from tests.conftest import REPO

INVENTORY = "deploy/inventories/cluster.py"
DB_ADDRESS, BACKUP_ADDRESS = "192.168.56.20", "192.168.56.30"


def _machine(name, address):
    """The machine ``name`` as a testinfra host (root through sudo), once its route is proven local."""
    check = subprocess.run([str(REPO / "scripts/machine"), "check-route", address], capture_output=True, text=True)
    if check.returncode:
        pytest.exit(check.stderr.strip(), returncode=3)
    return testinfra.get_host("ssh://default", ssh_config=f"/var/lib/todo-machine-{name}/ssh-config", sudo=True)


@pytest.fixture(scope="session")
def db_host():
    """The database host."""
    return _machine("db", DB_ADDRESS)


@pytest.fixture(scope="session")
def backup_host():
    """The backup host."""
    return _machine("backup", BACKUP_ADDRESS)


def run(*args, timeout=900):
    """Run a script of the repo; (exit status, stdout and stderr)."""
    done = subprocess.run([str(REPO / args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=REPO, timeout=timeout)  # fmt: skip
    return done.returncode, done.stdout
