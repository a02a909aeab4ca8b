"""Shared test settings: where the machine under test is, and the guard against leaks."""

import os
import subprocess
from pathlib import Path

import pytest
import testinfra

REPO = Path(__file__).resolve().parent.parent
#: Address of the machine under test (the local machine or a Vagrant VM).
ADDRESS = os.environ.get("TODO_TEST_ADDRESS", "192.168.56.10")
#: The site's TLS certificate on the machine (self-signed unless the inventory supplies one).
CERTIFICATE = "/etc/ssl/todo/todo.crt"


@pytest.fixture(scope="session")
def machine_address(request, tmp_path_factory):
    """The machine's address, once its route is proven local (no gateway): else stop the run.

    With the machine down, packets to 192.168.56.10 would follow the default route off
    this box, which is forbidden; scripts/machine check-route is the one guard for that.
    """
    check = subprocess.run([str(REPO / "scripts/machine"), "check-route", ADDRESS], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.exit(check.stderr.strip(), returncode=3)
    _trust_certificate(request.config, tmp_path_factory.mktemp("tls") / "machine.crt")
    return ADDRESS


def _trust_certificate(config, path):
    """Make every ``requests`` call of the run trust the machine's TLS certificate.

    The certificate is read over SSH (whose host key is pinned), never taken from the TLS
    handshake it is meant to check; requests reads REQUESTS_CA_BUNDLE on every call.
    """
    spec = config.getoption("hosts").split(",")[0]
    machine = testinfra.get_host(spec, ssh_config=config.getoption("ssh_config"), sudo=True)
    path.write_text(machine.check_output(f"cat {CERTIFICATE}") + "\n")
    os.environ["REQUESTS_CA_BUNDLE"] = str(path)


@pytest.fixture
def report(capsys):
    """Print a measurement next to the test's result (recovery times, request counts)."""

    def _report(what, value):
        with capsys.disabled():
            print(f"\n    [measured] {what}: {value}", end="")

    return _report


def pytest_collection_modifyitems(items):
    """Run tests marked ``reboot`` first among the host tests, so that every other host test
    (idempotence, the stack, resilience) checks the rebooted machine, as a tester would."""
    reboots = [item for item in items if item.get_closest_marker("reboot")]
    rest = [item for item in items if item not in reboots]
    host = next((i for i, item in enumerate(rest) if "tests/host/" in item.nodeid), len(rest))
    items[:] = rest[:host] + reboots + rest[host:]
