"""The backup host suite: the local machine (192.168.56.10) provisioned with
deploy/inventories/local-backup.py, whose repository is on a second local machine, the backup
host (192.168.56.30). scripts/test starts both and provisions them before this suite."""

import pytest

from tests.conftest import named_machine
from tests.conftest import run_script as run

#: The backup host's address (scripts/machine --name backup).
BACKUP_ADDRESS = "192.168.56.30"
INVENTORY = "deploy/inventories/local-backup.py"


@pytest.fixture(scope="session")
def backup_host():
    """The backup host as a testinfra host (root through sudo), once its route is proven local."""
    return named_machine("backup", BACKUP_ADDRESS)


def backup(*args):
    """scripts/backup ARGS against the inventory with the backup host."""
    return run("scripts/backup", *args, "--target", INVENTORY)


def backup_machine(command):
    """scripts/machine start|stop for the backup host; fails the test when it fails."""
    code, out = run("scripts/machine", "--name", "backup", "--address", BACKUP_ADDRESS, command, timeout=300)
    assert code == 0, out
