"""scripts/machine: a second machine runs beside the local one on the same private network, and
goes without taking the network from it; a machine never takes the address of a running one.
Needs the local machine running (scripts/test runs this with it); the second machine lives in a
directory of the test's own and is destroyed at the end."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import MACHINE, connects

#: An address no inventory or test uses.
SECOND = "192.168.56.99"


def machine(*args, state, name="pytest"):
    """scripts/machine --name NAME ARGS with its directory in ``state``; (exit status, output)."""
    env = {**os.environ, "TODO_MACHINE_DIR": str(state)}
    run = subprocess.run([str(REPO / "scripts/machine"), "--name", name, *args], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    return run.returncode, run.stdout + run.stderr


@pytest.fixture
def second(machine_address):
    """A second machine's directory (short: its SSH control socket's path lives in it), destroyed
    after the test whatever happened."""
    state = Path(tempfile.mkdtemp(prefix="todo-m-"))
    yield state
    machine("destroy", state=state)
    shutil.rmtree(state, ignore_errors=True)
    # Destroying it (even one refused the address of the running machine) leaves that one's network.
    assert connects(22), "destroying the second machine took the network from the first"


def test_a_second_machine_reaches_the_first_and_stops_without_it(second):
    code, out = machine("--address", SECOND, "start", state=second)
    assert code == 0, out
    code, out = machine("ssh", f"python3 -c \"import socket; socket.create_connection(('{MACHINE}', 22), timeout=3)\"",
                        state=second)  # fmt: skip
    assert code == 0, out
    assert machine("status", state=second)[1].strip().endswith(f"at {SECOND}")
    code, out = machine("stop", state=second)
    assert code == 0, out
    assert connects(22), "stopping the second machine took the network from the first"


def test_a_machine_never_takes_the_address_of_a_running_one(second):
    code, out = machine("--address", MACHINE, "start", state=second)
    assert code == 1 and "another machine holds the address" in out, out
    assert not (second / "rootfs").exists()
    assert connects(22)
