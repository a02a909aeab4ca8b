"""Shared test settings: where the machine under test is, the guard against leaks, what the
machine runs (read from the machine itself), and the check that a tester's suites leave it as found."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra

from tests import helpers

REPO = Path(__file__).resolve().parent.parent
#: Address of the machine under test (the local machine or a Vagrant VM).
ADDRESS = os.environ.get("TODO_TEST_ADDRESS", "192.168.56.10")
#: Markers of tests that change the machine's state (and restore it).
CHANGES_STATE = ("destructive", "chaos", "reboot")
#: Suites (folders under tests/) that talk to the machine, and those a tester runs against a live server.
MACHINE_SUITES = ("host", "e2e", "chaos", "release", "browser")
TESTER_SUITES = ("host", "e2e", "browser")


def _route_is_local(address=ADDRESS):
    """Stop the run unless a machine's address (default the machine under test's) is on a local
    link (scripts/machine check-route).

    With the machine down, packets to 192.168.56.10 would follow the default route off
    this box, which is forbidden; scripts/machine check-route is the one guard for that.
    """
    check = subprocess.run([str(REPO / "scripts/machine"), "check-route", address], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.exit(check.stderr.strip(), returncode=3)


def named_machine(name, address):
    """Machine ``name`` of scripts/machine (its directory /var/lib/todo-machine-NAME) at ``address``
    as a testinfra host (root through sudo), once its route is proven local: a second machine
    beside the one under test (the backup host, the cluster's)."""
    _route_is_local(address)
    return testinfra.get_host("ssh://default", ssh_config=f"/var/lib/todo-machine-{name}/ssh-config", sudo=True)


def run_script(*args, timeout=900, stdin=None):
    """Run a script of the repo (``args[0]``, a path in it) with ``stdin`` (text) as its input;
    (exit status, stdout and stderr together)."""
    done = subprocess.run([str(REPO / args[0]), *args[1:]], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO, timeout=timeout)  # fmt: skip
    return done.returncode, done.stdout


def machine(config):
    """The machine under test as a testinfra host (root through sudo), once its route is proven local."""
    if not hasattr(config, "_todo_machine"):
        _route_is_local()
        spec = config.getoption("hosts").split(",")[0]
        config._todo_machine = testinfra.get_host(spec, ssh_config=config.getoption("ssh_config"), sudo=True)
    return config._todo_machine


def deployed(config):
    """What the machine runs, read from it: {"app": name, "instances": [names], "certificate": path}.

    The app name is the release tool's (/usr/local/sbin/<app>-release), the instances are those
    of the release tool's settings (/etc/<app>/release.json): no test hard-codes either.
    """
    if not hasattr(config, "_todo_deployed"):
        host = machine(config)
        tools = host.check_output("ls /usr/local/sbin/ | grep -- '-release$' || true").split()
        if len(tools) != 1:
            pytest.exit(f"expected one /usr/local/sbin/<app>-release on the machine, found {tools}: provision it")
        app = helpers.APP = tools[0].removesuffix("-release")
        settings = json.loads(host.check_output(f"cat /etc/{app}/release.json"))
        config._todo_deployed = {
            "app": app,
            "instances": [f"{app}-{n}" for n in range(int(settings["instances"]))],
            "certificate": f"/etc/ssl/{app}/{app}.crt",
        }
    return config._todo_deployed


def pytest_generate_tests(metafunc):
    """Parametrize ``instance`` over the instances the machine runs (one result per instance)."""
    if "instance" in metafunc.fixturenames:
        metafunc.parametrize("instance", deployed(metafunc.config)["instances"])


def _suite(item):
    """The folder under tests/ that holds ``item`` (its suite)."""
    return Path(item.path).relative_to(REPO / "tests").parts[0]


def pytest_runtest_setup(item):
    """Before anything of a machine suite runs (fixtures included), prove the route is local, once."""
    if _suite(item) in MACHINE_SUITES and not hasattr(item.config, "_todo_route_checked"):
        _route_is_local()
        item.config._todo_route_checked = True


@pytest.fixture(autouse=True)
def _machine_suite(request):
    """Machine suites get the machine's certificate trusted; the tester's suites must leave it as found."""
    suite = _suite(request.node)
    if suite in MACHINE_SUITES:
        request.getfixturevalue("machine_address")
    if suite in TESTER_SUITES:
        request.getfixturevalue("leaves_host_as_found")


@pytest.fixture(scope="session")
def app_name(request):
    """The deploy's app_name, read from the machine."""
    return deployed(request.config)["app"]


@pytest.fixture(scope="session")
def instances(request):
    """The machine's instance names (<app>-0 ... <app>-N-1), read from it."""
    return deployed(request.config)["instances"]


@pytest.fixture(scope="session")
def machine_address(request, tmp_path_factory):
    """The machine's address, once its route is proven local (no gateway): else stop the run."""
    _route_is_local()
    _trust_certificate(request.config, tmp_path_factory.mktemp("tls") / "machine.crt")
    return ADDRESS


def _trust_certificate(config, path):
    """Make every ``requests`` call of the run trust the machine's TLS certificate.

    The certificate is read over SSH (whose host key is pinned), never taken from the TLS
    handshake it is meant to check; requests reads REQUESTS_CA_BUNDLE on every call.
    """
    path.write_text(machine(config).check_output(f"cat {deployed(config)['certificate']}") + "\n")
    os.environ["REQUESTS_CA_BUNDLE"] = str(path)


@pytest.fixture
def retrust(request, machine_address):
    """For a test that makes the machine's certificate anew: trust the new one from then on."""
    yield
    _trust_certificate(request.config, Path(os.environ["REQUESTS_CA_BUNDLE"]))


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


def stack_state(host, app, instances):
    """What a non-destructive suite must leave as it found it: the serving release, the PIDs of
    nginx, supervisord, the postmaster and every instance, and whether each is open to nginx."""
    state = {
        "current": host.file(f"/srv/{app}/current").linked_to,
        "nginx": host.process.get(user="root", comm="nginx").pid,
        "supervisord": host.process.get(comm="supervisord").pid,
        "postmaster": host.check_output("head -1 /var/lib/postgresql/*/main/postmaster.pid"),
    }
    for name in instances:
        sock = host.file(f"/run/{app}/{name}.sock")
        state[name] = (host.check_output(f"supervisorctl pid {name}"), sock.exists and oct(sock.mode))
    return state


@pytest.fixture(scope="session")
def leaves_host_as_found(request, machine_address):
    """Fail the run when a session of non-destructive tests (host, e2e, browser) changed the host.

    Recorded before the first test and compared after the last; todos the tests added are
    deleted first. Sessions that select tests marked destructive, chaos or reboot are exempt:
    those restart things on purpose.
    """
    changes = [i for i in request.session.items if any(i.get_closest_marker(m) for m in CHANGES_STATE)]
    host, stack = machine(request.config), deployed(request.config)
    before = None if changes else stack_state(host, stack["app"], stack["instances"])
    yield
    helpers.forget_added(host, stack["app"])
    if before is not None:
        after = stack_state(host, stack["app"], stack["instances"])
        assert after == before, f"the suite changed the host: before {before}, after {after}"
