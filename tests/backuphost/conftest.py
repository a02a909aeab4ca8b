"""The backup host suite: the local machine (192.168.56.10) provisioned with
deploy/inventories/local-backup.py, whose repository is on a second local machine, the backup
host (192.168.56.30). scripts/test starts both and provisions them before this suite."""

import subprocess

import pytest
import testinfra

from tests.conftest import REPO

#: The backup host's address and its machine directory (scripts/machine --name backup).
BACKUP_ADDRESS = "192.168.56.30"
BACKUP_DIR = "/var/lib/todo-machine-backup"
INVENTORY = "deploy/inventories/local-backup.py"


@pytest.fixture(scope="session")
def backup_host():
    """The backup host as a testinfra host (root through sudo), once its route is proven local."""
    check = subprocess.run([str(REPO / "scripts/machine"), "check-route", BACKUP_ADDRESS], capture_output=True,
                           text=True)  # fmt: skip
    if check.returncode:
        pytest.exit(check.stderr.strip(), returncode=3)
    return testinfra.get_host("ssh://default", ssh_config=f"{BACKUP_DIR}/ssh-config", sudo=True)


def run(*args, timeout=900, stdin=None):
    """Run a script of the repo; (exit status, stdout and stderr)."""
    done = subprocess.run([str(REPO / args[0]), *args[1:]], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO, timeout=timeout)  # fmt: skip
    return done.returncode, done.stdout


def backup(*args):
    """scripts/backup ARGS against the inventory with the backup host."""
    return run("scripts/backup", *args, "--target", INVENTORY)


def backup_machine(command):
    """scripts/machine start|stop for the backup host; fails the test when it fails."""
    code, out = run("scripts/machine", "--name", "backup", "--address", BACKUP_ADDRESS, command, timeout=300)
    assert code == 0, out
